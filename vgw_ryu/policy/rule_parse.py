"""Parsing one policy rule: protocol, ports, ICMP type/code, peer, action and the rest,
every error with its field path. Part of vgw_ryu.policy.parse. No Ryu here."""

from __future__ import annotations

import ipaddress
from typing import Any

from vgw_ryu.policy.fields import (
    _bool,
    _choice,
    _Ctx,
    _join,
    _name,
    _obj,
    _peer,
    parse_ports,
)
from vgw_ryu.policy.objects import (
    DIRECTIONS,
    ICMP_PROTOCOLS,
    PORT_PROTOCOLS,
    PROTO_NAME,
    PROTOCOLS,
    RULE_ACTIONS,
    Rule,
)

RULE_KEYS = ("id", "direction", "action", "protocol", "ports", "src_ports", "icmp_type",
             "icmp_code", "peer", "priority", "log", "stateful")


def _rule(ctx: _Ctx, path: str, v: Any) -> Rule | None:
    d = _obj(ctx, path, v, RULE_KEYS, ("id", "direction", "action"))
    if d is None:
        return None
    n_before = len(ctx.errors)
    rid = d.get("id")
    if rid is not None:
        _name(ctx, _join(path, "id"), rid)
    direction = _choice(ctx, _join(path, "direction"), d.get("direction"), DIRECTIONS, "ingress")
    action = _choice(ctx, _join(path, "action"), d.get("action"), RULE_ACTIONS, "deny")
    protocol = _protocol(ctx, _join(path, "protocol"), d.get("protocol"))
    ports, src_ports = (_ports(ctx, path, key, d.get(key), protocol)
                        for key in ("ports", "src_ports"))
    icmp_type, icmp_code = (_icmp(ctx, path, key, d.get(key), protocol)
                            for key in ("icmp_type", "icmp_code"))
    if icmp_code is not None and icmp_type is None:
        ctx.err(_join(path, "icmp_code"), "icmp_code needs an icmp_type")
    peer = _peer(ctx, _join(path, "peer"), d.get("peer"))
    if peer.kind == "cidr":
        fam = ipaddress.ip_network(peer.value).version
        if (protocol == "icmp" and fam == 6) or (protocol == "icmpv6" and fam == 4):
            ctx.err(_join(path, "peer"),
                    f"an IPv{fam} prefix cannot be the peer of a {protocol} rule")
    priority = d.get("priority", 100)
    if isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 1000:
        ctx.err(_join(path, "priority"), f"{priority!r} is not a priority (1-1000)")
        priority = 100
    log = _bool(ctx, _join(path, "log"), d.get("log"), False)
    stateful = _bool(ctx, _join(path, "stateful"), d.get("stateful"), True)
    if action == "pass" and log:
        ctx.err(_join(path, "log"), "a pass rule decides nothing, so there is nothing to log")
    if not stateful and action != "allow":
        ctx.err(_join(path, "stateful"), "only allow rules can be stateless (stateful: false); "
                "deny and reject always use the connection table")
    if not stateful and log:
        ctx.err(_join(path, "log"), "a stateless rule cannot log: its packets never leave "
                "the datapath (use a stateful rule to log)")
    if len(ctx.errors) != n_before or not isinstance(rid, str):
        return None
    return Rule(rid, direction, action, protocol, ports, peer, priority, log, stateful,
                src_ports, icmp_type, icmp_code)


def _protocol(ctx: _Ctx, path: str, v: Any) -> str:
    """A protocol name, or any IP protocol by number (a known number becomes its name)."""
    if v is None:
        return "any"
    if isinstance(v, str) and v in PROTOCOLS:
        return v
    number = v if isinstance(v, int) and not isinstance(v, bool) else \
        int(v) if isinstance(v, str) and v.isdigit() else None
    if number is None or not 0 <= number <= 255:
        ctx.err(path, f"{v!r} is not a protocol ({', '.join(PROTOCOLS)}, or a number 0-255)")
        return "any"
    return PROTO_NAME.get(number, str(number))


def _ports(ctx: _Ctx, path: str, key: str, v: Any, protocol: str) -> tuple:
    if v is None:
        return ()
    if protocol not in PORT_PROTOCOLS:
        ctx.err(_join(path, key), f"{key} need protocol tcp or udp, not {protocol}")
        return ()
    try:
        return parse_ports(v)
    except ValueError as e:
        ctx.err(_join(path, key), str(e))
        return ()


def _icmp(ctx: _Ctx, path: str, key: str, v: Any, protocol: str) -> int | None:
    if v is None:
        return None
    if protocol not in ICMP_PROTOCOLS:
        ctx.err(_join(path, key), f"{key} needs protocol icmp or icmpv6, not {protocol}")
    elif isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 255:
        ctx.err(_join(path, key), f"{v!r} is not an ICMP {key[5:]} (0-255)")
    else:
        return v
    return None


