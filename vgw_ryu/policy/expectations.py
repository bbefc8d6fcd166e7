"""Connectivity assertions stored with the state: what the operator says must hold.

``expectations: [{from: client, to: web1, protocol: tcp, port: 80, verdict: allow}]``.
An end is a VM (``NAME`` or ``vm:NAME``), a group (``group:NAME``: every member) or a
prefix (``cidr:PREFIX``: a host outside the firewall, its first address). ``check``
evaluates them on a state with the model (the source VM's egress rules, then the
destination VM's ingress rules) and returns the violations. No Ryu here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from vgw_ryu.policy.fields import _choice, _Ctx, _join, _obj
from vgw_ryu.policy.objects import ACTIONS, IpAddr, State
from vgw_ryu.policy.ruleset import EffectiveRule, evaluate, group_members

PROTOCOLS = ("tcp", "udp", "icmp", "icmpv6")
KEYS = ("from", "to", "protocol", "port", "verdict")


@dataclass(frozen=True)
class End:
    kind: str    # vm | group | cidr
    value: str

    def __str__(self) -> str:
        return self.value if self.kind == "vm" else f"{self.kind}:{self.value}"


@dataclass(frozen=True)
class Expectation:
    src: End
    dst: End
    protocol: str
    port: int | None
    verdict: str

    def doc(self) -> dict[str, Any]:
        d: dict[str, Any] = {"from": str(self.src), "to": str(self.dst),
                             "protocol": self.protocol}
        if self.port is not None:
            d["port"] = self.port
        d["verdict"] = self.verdict
        return d


def _end(ctx: _Ctx, path: str, v: Any) -> End | None:
    if not isinstance(v, str) or not v:
        ctx.err(path, "must be a VM name, vm:NAME, group:NAME or cidr:PREFIX")
        return None
    kind, sep, value = v.partition(":")
    if not sep:
        kind, value = "vm", v
    if kind not in ("vm", "group", "cidr") or not value:
        ctx.err(path, f"{v!r} is not a VM name, vm:NAME, group:NAME or cidr:PREFIX")
        return None
    if kind == "cidr":
        try:
            value = str(ipaddress.ip_network(value, strict=False))
        except ValueError:
            ctx.err(path, f"{value!r} is not an IP prefix")
            return None
    return End(kind, value)


def parse(ctx: _Ctx, v: Any) -> tuple[Expectation, ...]:
    """The ``expectations`` list of a state document (errors collected in ``ctx``)."""
    if v is None:
        return ()
    if not isinstance(v, list):
        ctx.err("expectations", "must be a list of {from, to, protocol, port, verdict}")
        return ()
    out = []
    for i, item in enumerate(v):
        path = f"expectations[{i}]"
        d = _obj(ctx, path, item, KEYS, ("from", "to", "verdict"))
        if d is None:
            continue
        n = len(ctx.errors)
        src, dst = _end(ctx, _join(path, "from"), d.get("from")), \
            _end(ctx, _join(path, "to"), d.get("to"))
        proto = _choice(ctx, _join(path, "protocol"), d.get("protocol"), PROTOCOLS, "tcp")
        verdict = _choice(ctx, _join(path, "verdict"), d.get("verdict"), ACTIONS, "allow")
        port = d.get("port")
        if proto in ("tcp", "udp"):
            if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
                ctx.err(_join(path, "port"), f"{port!r} is not a port (1-65535); "
                        f"{proto} needs one")
        elif port is not None:
            ctx.err(_join(path, "port"), f"{proto} has no ports")
        if src and dst and src.kind == "cidr" and dst.kind == "cidr":
            ctx.err(path, "one end must be a VM or a group: two prefixes are outside "
                    "the firewall")
        if len(ctx.errors) == n and src and dst:
            out.append(Expectation(src, dst, proto, port if proto in ("tcp", "udp")
                                   else None, verdict))
    return tuple(out)


def check_references(ctx: _Ctx, state: State, items: tuple[Expectation, ...]) -> None:
    """Every VM and group an expectation names exists."""
    for i, e in enumerate(items):
        for key, end in (("from", e.src), ("to", e.dst)):
            table = {"vm": state.vms, "group": state.groups}.get(end.kind)
            if table is not None and end.value not in table:
                ctx.err(f"expectations[{i}].{key}", f"no {end.kind} named {end.value!r}")


def hosts(state: State, end: End) -> list[tuple[str | None, IpAddr | None]]:
    """(VM name or None, an address) for each host an end stands for."""
    if end.kind == "cidr":
        net = ipaddress.ip_network(end.value)
        return [(None, next(iter(net.hosts()), net.network_address))]
    names = [end.value] if end.kind == "vm" else group_members(state, end.value)
    return [(n, state.vms[n].ips[0] if state.vms[n].ips else None) for n in names]


# The connection an assertion stands for is judged as ofproto/trace sends it (the audit
# must agree with the model): an ephemeral source port, an echo request.
PROBE_SPORT = 40000
ECHO = {"icmp": (8, 0), "icmpv6": (128, 0)}


def probe(proto: str) -> tuple[int | None, tuple[int, int] | None]:
    """(source port, ICMP type/code) of the probe connection of a protocol."""
    return (PROBE_SPORT if proto in ("tcp", "udp") else None), ECHO.get(proto)


def verdict(state: State, effective: dict[str, list[EffectiveRule]], src: str | None,
            src_ip: IpAddr, dst: str | None, dst_ip: IpAddr, proto: str,
            port: int | None) -> tuple[str, str]:
    """(verdict, who decided) of a new connection from src to dst, per the model."""
    for name, direction, peer in ((src, "egress", dst_ip), (dst, "ingress", src_ip)):
        if name is None or not state.vms[name].protected:
            continue
        v = evaluate(state, effective[name], direction, peer, proto, port, *probe(proto))
        if v.verdict != "allow":
            return v.verdict, f"{name} {direction}: " + \
                (f"{v.policy}/{v.rule}" if v.policy else "default")
    return "allow", "allowed by both ends"


def check(state: State, effective: dict[str, list[EffectiveRule]]) -> list[dict[str, Any]]:
    """Every expectation, for every pair of hosts it stands for, that the state breaks."""
    out = []
    for i, e in enumerate(state.expectations):
        for src, src_ip in hosts(state, e.src):
            for dst, dst_ip in hosts(state, e.dst):
                if src is not None and src == dst:
                    continue
                if src_ip is None or dst_ip is None or src_ip.version != dst_ip.version:
                    continue   # no address to judge with: nothing can be said
                got, why = verdict(state, effective, src, src_ip, dst, dst_ip, e.protocol,
                                   e.port)
                if got != e.verdict:
                    out.append({"expectation": i, **e.doc(), "pair": [src or str(src_ip),
                                                                      dst or str(dst_ip)],
                                "got": got, "decided_by": why})
    return out
