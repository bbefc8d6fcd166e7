"""The compiler: (desired state, facts of one switch) -> the complete desired flow set.

A pure, deterministic function. The app diffs its output against the switch. How the
flows work together is written down in flows/PIPELINE.md; the short version:

* classify by in_port; protected VMs get their zone in reg6;
* egress: anti-spoofing, ``ct`` in the source VM's zone, then ``egress_state``;
* ingress: by eth_dst of a protected VM on this switch, ``ct`` in its zone;
* ``*_state``: replies pass (unless their connection is blocked); every packet in a
  connection's original direction is judged by ``rules`` (the megaflow cache makes
  that free for established traffic), so a changed policy applies to established
  connections at their next packet, in the datapath, without the controller;
* ``*_action``: allow commits new connections; deny drops, and an established
  connection it now denies is marked blocked in ct_mark, which stops its replies too;
  reject and log add a metered punt placed after the forwarding actions.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections import defaultdict
from dataclasses import dataclass, field

from vgw_ryu.pipeline import tables as P  # noqa: N812 - P.<name> reads like a table of constants
from vgw_ryu.pipeline.flows import (
    Action,
    Conjunction,
    Controller,
    Ct,
    CtClear,
    Flow,
    Load,
    Move,
    Normal,
    OutputReg,
    Resubmit,
)
from vgw_ryu.policy.ids import Ids
from vgw_ryu.policy.model import IpNet, State
from vgw_ryu.policy.ruleset import ACTION_RANK, PROTO_NUM, EffectiveRule, effective_rules

T = P.T
ETH_IP, ETH_IPV6, ETH_ARP = 0x0800, 0x86DD, 0x0806
CT_NEW, CT_EST, CT_REL, CT_RPL, CT_INV, CT_TRK = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

# Priority bands of the rules table: rule priority 1-1000 -> 1004-5003.
RULES_BASE = 1000
DEFAULT_PRIO = 1


@dataclass(frozen=True)
class PortFacts:
    """What the app knows about one switch port."""
    ofport: int
    name: str
    kind: str                 # vm | uplink | unknown
    vm: str | None = None     # VM name for kind == vm
    mac: str | None = None    # MAC seen on / attached to the port


@dataclass(frozen=True)
class SwitchFacts:
    ports: tuple[PortFacts, ...] = ()

    def vm_ports(self) -> dict[str, PortFacts]:
        return {p.vm: p for p in self.ports if p.kind == "vm" and p.vm}


def is_uplink_name(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether a port name matches one of settings.uplinks' patterns."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def rules_priority(eff: EffectiveRule) -> int:
    """OpenFlow priority of a rule: higher rule priority first, deny > reject > allow."""
    return RULES_BASE + eff.rule.priority * 4 + ACTION_RANK[eff.rule.action]


def port_masks(lo: int, hi: int) -> list[tuple[int, int]]:
    """Cover [lo, hi] with (value, mask) prefixes, as few as possible."""
    out = []
    while lo <= hi:
        size = lo & -lo if lo else 1 << 16
        while size > hi - lo + 1:
            size >>= 1
        out.append((lo, 0xFFFF & ~(size - 1)))
        lo += size
    return out


def link_local(mac: str) -> ipaddress.IPv6Address:
    """The EUI-64 link-local address of a MAC."""
    b = bytearray(int(x, 16) for x in mac.split(":"))
    b[0] ^= 0x02
    eui = bytes(b[:3]) + b"\xff\xfe" + bytes(b[3:])
    return ipaddress.IPv6Address(b"\xfe\x80" + b"\x00" * 6 + eui)


def _net_match(net: IpNet, field_v4: str, field_v6: str) -> dict:
    if net.version == 4:
        v = (str(net.network_address), str(net.netmask)) if net.prefixlen < 32 \
            else str(net.network_address)
        return {"eth_type": ETH_IP, field_v4: v}
    v = (str(net.network_address), str(net.netmask)) if net.prefixlen < 128 \
        else str(net.network_address)
    return {"eth_type": ETH_IPV6, field_v6: v}


@dataclass
class _Builder:
    flows: dict[tuple, Flow] = field(default_factory=dict)
    conj: dict[tuple, list[Conjunction]] = field(default_factory=lambda: defaultdict(list))
    conj_owner: dict[tuple, tuple[int, dict]] = field(default_factory=dict)

    def add(self, table: str, priority: int, match: dict, actions: list[Action] = (), *,
            goto: str | None = None, meter: int | None = None, kind: int = P.KIND_INFRA,
            owner: int = 0) -> None:
        f = Flow.make(T[table], priority, match, actions,
                      goto=T[goto] if goto else None, meter=meter, kind=kind, owner=owner)
        if f.key in self.flows and self.flows[f.key] != f:
            raise AssertionError(f"two different flows for one match: {f.body} / "
                                 f"{self.flows[f.key].body}")
        self.flows[f.key] = f

    def add_conj(self, priority: int, match: dict, c: Conjunction, kind: int,
                 owner: int) -> None:
        """A conjunctive clause; identical matches of several rules share one flow."""
        key = (priority, tuple(sorted(match.items())))
        self.conj[key].append(c)
        # The first rule to claim a shared clause names it; shared peer/dummy clauses
        # are owned by KIND_PEER so no single rule's delete removes them.
        self.conj_owner.setdefault(key, (kind, owner, match))
        if self.conj_owner[key][:2] != (kind, owner):
            self.conj_owner[key] = (P.KIND_PEER, 0, match)

    def result(self) -> list[Flow]:
        for key, conjs in self.conj.items():
            priority = key[0]
            kind, owner, match = self.conj_owner[key]
            acts = sorted(set(conjs), key=lambda c: (c.id, c.clause))
            self.add("rules", priority, match, acts, kind=kind, owner=owner)
        return sorted(self.flows.values(), key=lambda f: (f.table, -f.priority, f.body))


def _verdict_load(verdict: str, log: bool) -> Load:
    v = {"allow": P.VERDICT_ALLOW, "deny": P.VERDICT_DENY, "reject": P.VERDICT_REJECT}[verdict]
    return Load(P.REG_VERDICT, v | (P.LOG_BIT if log else 0), 0, 3)


def _infra(b: _Builder, state: State) -> None:
    s = state.settings
    # classify: unknown ports (not a VM, not an uplink) - punt for identification,
    # forward only if settings allow it; the punt comes last so its meter drops no
    # forwarded copy.
    unknown: list[Action] = [Resubmit(T["ingress_classify"])] if s.unknown_ports == "allow" \
        else []
    b.add("classify", 1, {}, [*unknown, Resubmit(T["punt_unknown"])])
    b.add("classify", 0, {}, [])  # a bridge forwards nothing it was not told to
    # egress_ct / ingress_ct: track IP in the zone loaded by the classifier.
    for eth in (ETH_IP, ETH_IPV6):
        b.add("egress_ct", 100, {"eth_type": eth}, [Ct(table=T["egress_state"])])
        b.add("ingress_ct", 100, {"eth_type": eth}, [Ct(table=T["ingress_state"])])
    for stage in ("egress", "ingress"):
        st, act = f"{stage}_state", f"{stage}_action"
        ingress = stage == "ingress"
        passing: list[Action] = [OutputReg(P.REG_OUT_PORT)] if ingress else []
        pass_goto = None if ingress else "ingress_classify"
        # *_state: invalid packets never pass; related ones (ICMP errors) always do.
        b.add(st, 300, {"ct_state": (CT_INV | CT_TRK, CT_INV | CT_TRK)}, [])
        b.add(st, 210, {"ct_state": (CT_REL | CT_TRK, CT_REL | CT_INV | CT_TRK)}, passing,
              goto=pass_goto)
        # Replies are never judged (their connection was, on its original direction);
        # they stop once a policy change blocked the connection.
        rpl = {"ct_state": (CT_EST | CT_RPL | CT_TRK, CT_EST | CT_RPL | CT_INV | CT_TRK)}
        b.add(st, 220, {**rpl, "ct_mark": (P.MARK_BLOCKED, P.MARK_BLOCKED)}, [])
        b.add(st, 150, rpl, passing, goto=pass_goto)
        # Original direction, new or established: judged by this stage's rules
        # (reg0[3]: 0 egress, 1 ingress), then acted on.
        b.add(st, 100, {"ct_state": (CT_TRK, CT_TRK | CT_RPL | CT_INV)},
              [Load(P.REG_VERDICT, 1 if ingress else 0, 3, 1), Resubmit(T["rules"]),
               Resubmit(T[act])])
        # *_action. Allow: commit a new connection (or unblock one allowed again) and
        # pass; a log copy of a new one goes out after the forwarding actions.
        allow = {"reg0": (P.VERDICT_ALLOW, P.VERDICT_MASK)}
        new = {"ct_state": (CT_NEW | CT_TRK, CT_NEW | CT_TRK)}
        est = {"ct_state": (CT_EST | CT_TRK, CT_EST | CT_TRK)}
        fwd: list[Action] = [OutputReg(P.REG_OUT_PORT)] if ingress else \
            [Resubmit(T["ingress_classify"])]
        for eth in (ETH_IP, ETH_IPV6):  # ct() needs an IP prerequisite in the match
            b.add(act, 100, {**allow, "eth_type": eth, **new}, [Ct(commit=True), *passing],
                  goto=pass_goto)
            b.add(act, 110, {"reg0": (P.VERDICT_ALLOW | P.LOG_BIT,
                                      P.VERDICT_MASK | P.LOG_BIT), "eth_type": eth, **new},
                  [Ct(commit=True), Move(P.REG_ZONE, P.REG_PUNT_ZONE), *fwd,
                   Resubmit(T["punt_log"])])
            b.add(act, 105, {**allow, "eth_type": eth, **est,
                             "ct_mark": (P.MARK_BLOCKED, P.MARK_BLOCKED)},
                  [Ct(commit=True, mark=0), *passing], goto=pass_goto)
        b.add(act, 99, allow, passing, goto=pass_goto)
        # Deny drops (with a log copy if asked); reject punts new connections so the
        # controller can answer. An established connection they now hit is committed
        # as blocked, which stops its replies too.
        for verdict in (P.VERDICT_DENY, P.VERDICT_REJECT):
            b.add(act, 90, {"reg0": (verdict, P.VERDICT_MASK)}, [])
            for eth in (ETH_IP, ETH_IPV6):
                b.add(act, 100, {"reg0": (verdict, P.VERDICT_MASK), "eth_type": eth, **est},
                      [Ct(commit=True, mark=P.MARK_BLOCKED)])
        b.add(act, 95, {"reg0": (P.VERDICT_DENY | P.LOG_BIT, P.VERDICT_MASK | P.LOG_BIT)},
              [Move(P.REG_ZONE, P.REG_PUNT_ZONE), Resubmit(T["punt_log"])])
        b.add(act, 95, {"reg0": (P.VERDICT_REJECT, P.VERDICT_MASK), **new},
              [Move(P.REG_ZONE, P.REG_PUNT_ZONE), Resubmit(T["punt_reject"])])
    # rules: the defaults from settings, one per connection direction.
    for d, verdict in ((0, s.default_egress), (P.DIR_BIT, s.default_ingress)):
        log = verdict == "deny" and s.log_default_deny
        b.add("rules", DEFAULT_PRIO, {"reg0": (d, P.DIR_BIT)},
              [_verdict_load(verdict, log), Load(P.REG_RULE, 0)], kind=P.KIND_DEFAULT)
    b.add("ingress_classify", 1, {}, goto="forward")
    b.add("forward", 1, {}, [Normal()])
    b.add("punt_log", 1, {}, [Controller(256)], meter=P.METER_LOG)
    b.add("punt_reject", 1, {}, [Controller(256)], meter=P.METER_REJECT)
    b.add("punt_unknown", 1, {}, [Controller(65535)], meter=P.METER_UNKNOWN)


def _vm_flows(b: _Builder, state: State, name: str, port: PortFacts, zone: int) -> None:
    vm = state.vms[name]
    mac = vm.mac or port.mac
    own = {"kind": P.KIND_VM, "owner": zone}
    p = port.ofport
    # classify: this port is the VM; its zone goes to reg6 for the whole egress stage.
    b.add("classify", 100, {"in_port": p}, [Load(P.REG_ZONE, zone)], goto="egress_guard",
          **own)
    # egress_guard: the VM may only speak as itself.
    src = {"in_port": p, **({"eth_src": mac} if mac else {})}
    v4 = [ip for ip in vm.ips if ip.version == 4]
    v6 = [ip for ip in vm.ips if ip.version == 6]
    if mac:
        v6 = [*v6, link_local(mac)]
    for ip in v4:
        b.add("egress_guard", 100, {**src, "eth_type": ETH_IP, "ipv4_src": str(ip)},
              goto="egress_ct", **own)
        arp = {**src, "eth_type": ETH_ARP, "arp_spa": str(ip)}
        if mac:
            arp["arp_sha"] = mac
        b.add("egress_guard", 110, arp, goto="ingress_classify", **own)
    for ip in v6:
        b.add("egress_guard", 100, {**src, "eth_type": ETH_IPV6, "ipv6_src": str(ip)},
              goto="egress_ct", **own)
    # DHCP/DHCPv6 clients and neighbour discovery skip the policy: without them the VM
    # cannot get or keep an address. NA must announce one of the VM's own addresses.
    b.add("egress_guard", 110, {**src, "eth_type": ETH_IP, "ip_proto": 17, "udp_src": 68,
                                "udp_dst": 67}, goto="ingress_classify", **own)
    b.add("egress_guard", 110, {**src, "eth_type": ETH_IPV6, "ip_proto": 17, "udp_src": 546,
                                "udp_dst": 547}, goto="ingress_classify", **own)
    for icmp_type in (133, 135, 143):  # RS, NS, MLDv2 report
        b.add("egress_guard", 110, {**src, "eth_type": ETH_IPV6, "ip_proto": 58,
                                    "icmpv6_type": icmp_type},
              goto="ingress_classify", **own)
    for ip in v6:
        b.add("egress_guard", 110, {**src, "eth_type": ETH_IPV6, "ip_proto": 58,
                                    "icmpv6_type": 136, "ipv6_nd_target": str(ip)},
              goto="ingress_classify", **own)
    # Any other advert, router advertisement or redirect from a VM is a spoof, even
    # from its own address (which would otherwise reach the policy below).
    for icmp_type in (134, 136, 137):
        b.add("egress_guard", 105, {"in_port": p, "eth_type": ETH_IPV6, "ip_proto": 58,
                                    "icmpv6_type": icmp_type}, [], **own)
    # ingress_classify: IP for this VM is judged in its zone; ND to it is not tracked.
    if mac:
        for eth in (ETH_IP, ETH_IPV6):
            b.add("ingress_classify", 100, {"eth_dst": mac, "eth_type": eth},
                  [Load(P.REG_ZONE, zone), Load(P.REG_OUT_PORT, p), CtClear()],
                  goto="ingress_ct", **own)
        for icmp_type in (135, 136):
            b.add("ingress_classify", 110, {"eth_dst": mac, "eth_type": ETH_IPV6,
                                            "ip_proto": 58, "icmpv6_type": icmp_type},
                  goto="forward", **own)


def _proto_clause(eff: EffectiveRule) -> list[dict]:
    """The protocol/port clause of a rule, per IP family its peers can be."""
    r = eff.rule
    if r.protocol in ("icmp", "icmpv6"):
        eth = ETH_IP if r.protocol == "icmp" else ETH_IPV6
        return [{"eth_type": eth, "ip_proto": PROTO_NUM[r.protocol]}]
    families = {4, 6} if eff.peers is None else {n.version for n in eff.peers}
    out = []
    for fam in sorted(families):
        base = {"eth_type": ETH_IP if fam == 4 else ETH_IPV6,
                "ip_proto": PROTO_NUM[r.protocol]}
        if not r.ports:
            out.append(base)
            continue
        port_field = f"{r.protocol}_dst"
        out += [{**base, port_field: m} for lo, hi in r.ports for m in port_masks(lo, hi)]
    return out


def _rule_flows(b: _Builder, eff: EffectiveRule, number: int, zones: list[int]) -> None:
    """rules: one conjunction per rule: VMs x peers x protocol/ports, summed not
    multiplied, on the packet's own fields (rules only judge the original direction)."""
    r = eff.rule
    prio = rules_priority(eff)
    d = P.DIR_BIT if r.direction == "ingress" else 0
    clauses: list[list[dict]] = [[{"reg6": z, "reg0": (d, P.DIR_BIT)} for z in zones]]
    if eff.peers is not None:
        fields = ("ipv4_src", "ipv6_src") if d else ("ipv4_dst", "ipv6_dst")
        clauses.append([_net_match(n, *fields) for n in eff.peers])
    if r.protocol != "any":
        clauses.append(_proto_clause(eff))
    if len(clauses) == 1:
        clauses.append([{}])  # a conjunction needs two clauses; this one always holds
    n = len(clauses)
    for i, clause in enumerate(clauses, 1):
        for match in clause:
            # Clause 1 names one VM (reg6): owned by it, like the rest of its flows.
            kind, owner = (P.KIND_VM, match["reg6"]) if i == 1 else (P.KIND_PEER, 0)
            b.add_conj(prio, match, Conjunction(number, i, n), kind, owner)
    b.add("rules", prio, {"conj_id": number},
          [_verdict_load(r.action, r.log), Load(P.REG_RULE, number)],
          kind=P.KIND_RULE, owner=number)


def compile_switch(state: State, facts: SwitchFacts, ids: Ids,
                   effective: dict[str, list[EffectiveRule]] | None = None,
                   cache: dict | None = None) -> list[Flow]:
    """All flows one switch should have, sorted; ``ids`` must be synced with ``state``.

    ``cache`` (any dict the caller keeps) memoises each VM's own flows, which depend
    only on the VM, its port and its zone: a rule change then rebuilds rule flows only.
    """
    b = _Builder()
    _infra(b, state)
    effective = effective if effective is not None else effective_rules(state)
    vm_ports = facts.vm_ports()
    local_protected: list[str] = []
    for p in facts.ports:
        if p.kind == "uplink" or (p.kind == "vm" and p.vm in state.vms
                                  and not state.vms[p.vm].protected):
            # Uplinks and unprotected VMs skip the egress stages; traffic to a
            # protected VM is still judged by that VM's ingress stage.
            b.add("classify", 100, {"in_port": p.ofport}, goto="ingress_classify",
                  kind=P.KIND_PORT, owner=p.ofport)
    for p in facts.ports:
        if p.kind == "unknown" and p.mac:
            # classify: an unknown port that has spoken (or carries a MAC) and is still no
            # VM gets the default without further punts: it is punted once, not forever.
            fwd = {"goto": "ingress_classify"} if state.settings.unknown_ports == "allow" \
                else {}
            b.add("classify", 100, {"in_port": p.ofport}, [], kind=P.KIND_PORT,
                  owner=p.ofport, **fwd)
    for name in sorted(vm_ports):
        if name in state.vms and state.vms[name].protected:
            local_protected.append(name)
            key = (state.vms[name], vm_ports[name], ids.zone(name))
            if cache is None or key not in cache:
                vb = _Builder()
                _vm_flows(vb, state, name, vm_ports[name], ids.zone(name))
                if cache is not None:
                    cache[key] = list(vb.flows.values())
                own = list(vb.flows.values())
            else:
                own = cache[key]
            for f in own:
                b.flows[f.key] = f
    # rules: each rule once, its first clause listing the local VMs it applies to.
    by_rule: dict[tuple[str, str], tuple[EffectiveRule, list[int]]] = {}
    for name in local_protected:
        for eff in effective[name]:
            by_rule.setdefault(eff.key, (eff, []))[1].append(ids.zone(name))
    for key in sorted(by_rule):
        eff, zones = by_rule[key]
        if eff.peers is not None and not eff.peers:
            continue  # the peer set is empty: the rule can match nothing
        _rule_flows(b, eff, ids.rule(*key), sorted(zones))
    return b.result()


def render(flows: list[Flow]) -> str:
    """The flows as an ``ovs-ofctl add-flows`` file."""
    return "".join(f.ofctl() + "\n" for f in flows)
