"""What a candidate state would do to live traffic, before it is applied.

Every live connection in the protected VMs' connection tables is judged under the
current state and under the candidate one (the model, the same one the pipeline is
compiled from): a connection allowed now and denied or rejected after is *cut* by the
change. Recent denials from the firewall log that the candidate would allow are
*newly allowed*. Counts plus bounded lists. No Ryu here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from vgw_ryu.policy.model import State
from vgw_ryu.policy.ruleset import EffectiveRule, evaluate
from vgw_ryu.runtime.connections import MARK_BLOCKED, Entry

JUDGED = ("tcp", "udp", "icmp", "icmpv6")
GONE_STATES = ("TIME_WAIT", "CLOSED", "CLOSE", "FIN_WAIT_2", "LAST_ACK")


def _rule(v) -> str:
    return f"{v.policy}/{v.rule}" if v.policy else "default"


def _judge(state: State, effective: Mapping[str, list[EffectiveRule]], vm: str,
           direction: str, peer, proto: str, port: int | None, sport: int | None = None,
           icmp: tuple[int, int] | None = None) -> tuple[str, str]:
    """(verdict, deciding rule) for the VM's side of a connection in ``state``."""
    obj = state.vms.get(vm)
    if obj is None:
        return "deny", "vm deleted"
    if not obj.protected:
        return "allow", "unprotected"
    v = evaluate(state, effective[vm], direction, peer, proto, port, sport, icmp)
    return v.verdict, _rule(v)


def _num(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def _ip(text: str | None):
    try:
        return ipaddress.ip_address(text) if text else None
    except ValueError:
        return None


def cuts(old: State, new: State, old_eff: Mapping[str, list[EffectiveRule]],
         new_eff: Mapping[str, list[EffectiveRule]],
         tables: Mapping[str, Iterable[Entry]], limit: int = 100) -> dict[str, Any]:
    """Live connections (VM -> its zone's entries) that ``new`` would cut."""
    shown: list[dict[str, Any]] = []
    total = judged = 0
    for vm, entries in sorted(tables.items()):
        vm_obj = old.vms.get(vm)
        if vm_obj is None:
            continue
        mine = set(vm_obj.ips)
        for e in entries:
            if e.protocol not in JUDGED or e.mark & MARK_BLOCKED or e.state in GONE_STATES:
                continue
            src, dst = _ip(e.orig.get("src")), _ip(e.orig.get("dst"))
            if src is None or dst is None or (src not in mine and dst not in mine):
                continue
            direction = "egress" if src in mine else "ingress"
            peer = dst if direction == "egress" else src
            port = _num(e.orig.get("dport")) if e.protocol in ("tcp", "udp") else None
            sport = _num(e.orig.get("sport")) if e.protocol in ("tcp", "udp") else None
            icmp = (_num(e.orig.get("type")), _num(e.orig.get("code"))) \
                if e.protocol in ("icmp", "icmpv6") else None
            judged += 1
            now, now_rule = _judge(old, old_eff, vm, direction, peer, e.protocol, port,
                                   sport, icmp)
            after, after_rule = _judge(new, new_eff, vm, direction, peer, e.protocol, port,
                                       sport, icmp)
            if now != "allow" or after == "allow":
                continue
            total += 1
            if len(shown) < limit:
                shown.append({"vm": vm, "direction": direction, "protocol": e.protocol,
                              "src": str(src), "dst": str(dst),
                              "sport": e.orig.get("sport"), "dport": e.orig.get("dport"),
                              "state": e.state, "rule_now": now_rule, "verdict_after": after,
                              "rule_after": after_rule})
    return {"connections_judged": judged, "cut_total": total, "cut": shown,
            "cut_truncated": total > len(shown)}


def newly_allowed(old: State, new: State, new_eff: Mapping[str, list[EffectiveRule]],
                  records: Iterable[Mapping[str, Any]], limit: int = 100) -> dict[str, Any]:
    """Recent denials (firewall log records) that ``new`` would allow, deduplicated."""
    seen: dict[tuple, dict[str, Any]] = {}
    for r in records:
        vm, direction = r.get("vm"), r.get("direction")
        if r.get("verdict") not in ("deny", "reject") or r.get("event") or not vm \
                or direction not in ("egress", "ingress") or r.get("protocol") not in JUDGED:
            continue
        if vm not in old.vms:
            continue
        peer = _ip(r.get("dst") if direction == "egress" else r.get("src"))
        if peer is None:
            continue
        port = r.get("dport") if r.get("protocol") in ("tcp", "udp") else None
        key = (vm, direction, r["protocol"], str(peer), port)
        if key in seen:
            seen[key]["records"] += 1
            continue
        icmp = (r.get("icmp_type"), r.get("icmp_code")) if "icmp_type" in r else None
        after, rule = _judge(new, new_eff, vm, direction, peer, r["protocol"], port,
                             r.get("sport"), icmp)
        if after == "allow":
            seen[key] = {"vm": vm, "direction": direction, "protocol": r["protocol"],
                         "peer": str(peer), "port": port, "denied_by": r.get("rule"),
                         "allowed_by": rule, "records": 1}
    items = list(seen.values())
    return {"newly_allowed_total": len(items), "newly_allowed": items[:limit],
            "newly_allowed_truncated": len(items) > limit}
