"""The rules table: one OpenFlow conjunction per rule (VMs x peers x protocol/ports),
summed not multiplied, on the packet's own fields (rules judge only the original
direction, so "peer" is the source of ingress rules and the destination of egress ones)."""

from __future__ import annotations

import functools

from vgw_ryu.compiler.builder import FlowSet, Match
from vgw_ryu.compiler.proto import ETH_IP, ETH_IPV6
from vgw_ryu.compiler.stage import EGRESS, INGRESS, Stage
from vgw_ryu.pipeline import fields as F  # noqa: N812 - F.<field> reads like a register map
from vgw_ryu.pipeline import priorities as P  # noqa: N812 - P.<name> reads like a band table
from vgw_ryu.pipeline.cookies import KIND_PEER, KIND_RULE, KIND_VM
from vgw_ryu.pipeline.ctstate import ct_state
from vgw_ryu.pipeline.flows import Resubmit, conjunction
from vgw_ryu.pipeline.tables import T, tier_table
from vgw_ryu.policy.model import IpNet, proto_number
from vgw_ryu.policy.ruleset import ACTION_RANK, EffectiveRule

# Where the peer is, per rule direction: (IPv4 field, IPv6 field).
PEER_FIELDS = {F.DIR_EGRESS: ("ipv4_dst", "ipv6_dst"), F.DIR_INGRESS: ("ipv4_src", "ipv6_src")}


def rules_priority(eff: EffectiveRule) -> int:
    """OpenFlow priority of a rule: higher rule priority first, deny > reject > allow."""
    return P.rule_priority(eff.rule.priority, ACTION_RANK[eff.rule.action])


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


@functools.lru_cache(maxsize=1 << 16)
def net_match(net: IpNet, field_v4: str, field_v6: str) -> Match:
    """A match on one prefix; a host address is matched without a mask. Shared by every
    rule naming the prefix (a group's members, rebuilt when one joins): do not modify."""
    host = 32 if net.version == 4 else 128
    v = (str(net.network_address), str(net.netmask)) if net.prefixlen < host \
        else str(net.network_address)
    if net.version == 4:
        return {"eth_type": ETH_IP, field_v4: v}
    return {"eth_type": ETH_IPV6, field_v6: v}


# ICMP type and code, per family (OXM names; ovs-ofctl says icmp_type for IPv4).
ICMP_FIELDS = {"icmp": ("icmpv4_type", "icmpv4_code"), "icmpv6": ("icmpv6_type", "icmpv6_code")}


def _bases(eff: EffectiveRule) -> list[Match]:
    """eth_type and ip_proto of a rule, per IP family its peers can be."""
    r = eff.rule
    if r.protocol in ICMP_FIELDS:
        return [{"eth_type": ETH_IP if r.protocol == "icmp" else ETH_IPV6,
                 "ip_proto": proto_number(r.protocol)}]
    families = {4, 6} if eff.peers is None else {n.version for n in eff.peers}
    return [{"eth_type": ETH_IP if fam == 4 else ETH_IPV6, "ip_proto": proto_number(r.protocol)}
            for fam in sorted(families)]


def proto_clause(eff: EffectiveRule) -> list[Match]:
    """The protocol clause of a rule: protocol, destination ports, ICMP type/code."""
    r = eff.rule
    out: list[Match] = []
    for base in _bases(eff):
        if r.icmp_type is not None:
            type_f, code_f = ICMP_FIELDS[r.protocol]
            out.append({**base, type_f: r.icmp_type,
                        **({code_f: r.icmp_code} if r.icmp_code is not None else {})})
        elif r.ports:
            out += [{**base, f"{r.protocol}_dst": m} for lo, hi in r.ports
                    for m in port_masks(lo, hi)]
        else:
            out.append(base)
    return out


def src_port_clause(eff: EffectiveRule) -> list[Match]:
    """A rule's source ports: a clause of their own, so they add to the flows, not
    multiply them."""
    r = eff.rule
    return [{**base, f"{r.protocol}_src": m} for base in _bases(eff)
            for lo, hi in r.src_ports for m in port_masks(lo, hi)]


def _stage(eff: EffectiveRule) -> Stage:
    return INGRESS if eff.rule.direction == "ingress" else EGRESS


def rule_place(eff: EffectiveRule) -> tuple[str, int]:
    """(table, priority) of a rule's flows: a stateful rule's tier table at its rule
    priority, a stateless one in its stage's ct table ahead of conntrack."""
    if eff.rule.stateful:
        return tier_table(eff.tier), rules_priority(eff)
    return _stage(eff).ct, P.CT_STATELESS


def zone_match(eff: EffectiveRule, zone: int) -> Match:
    """Clause 1 for one VM: its zone, and in the rules table (shared by both stages)
    the direction being judged. Shared by every rule over the zone: do not modify."""
    return _zone_match(_stage(eff).direction if eff.rule.stateful else None, zone)


@functools.lru_cache(maxsize=1 << 17)
def _zone_match(direction: int | None, zone: int) -> Match:
    # Every rule of a VM names its zone: built once per zone (and direction).
    if direction is not None:
        return F.match(F.ZONE.match(zone), F.DIRECTION.match(direction))
    return F.match(F.ZONE.match(zone))


@functools.lru_cache(maxsize=1 << 17)
def zone_items(direction: int | None, zone: int) -> tuple:
    """``_zone_match``'s items, sorted (a clause flow's identity)."""
    return tuple(sorted(_zone_match(direction, zone).items()))


def zone_key(eff: EffectiveRule) -> int | None:
    """What a rule's first clause adds to the zone: the direction (stateful rules)."""
    return _stage(eff).direction if eff.rule.stateful else None


def peer_match(eff: EffectiveRule, net: IpNet) -> Match:
    """One entry of a rule's peer clause (clause 2 when it has peers)."""
    return net_match(net, *PEER_FIELDS[_stage(eff).direction])


def later_clauses(eff: EffectiveRule) -> list[list[Match]]:
    """Clauses 2..n of a rule: peers, protocol and ports, source ports."""
    r = eff.rule
    direction = _stage(eff).direction
    clauses: list[list[Match]] = []
    if eff.peers is not None:
        fields = PEER_FIELDS[direction]
        clauses.append([net_match(n, *fields) for n in eff.peers])
    if r.protocol != "any":
        clauses.append(proto_clause(eff))
    elif not r.stateful:
        # A stateless rule is matched before conntrack, which needs an IP packet.
        clauses.append([{"eth_type": ETH_IP}, {"eth_type": ETH_IPV6}])
    if r.src_ports:
        clauses.append(src_port_clause(eff))
    if not clauses:
        clauses.append([{}])  # a conjunction needs two clauses; this one always holds
    return clauses


def clause_owner(i: int, match: Match) -> tuple[int, int]:
    """(cookie kind, owner) of a clause flow: clause 1 names one VM (its zone) and is
    owned by it, like the rest of its flows; the other clauses are shared peers."""
    return (KIND_VM, match[F.ZONE.reg]) if i == 1 else (KIND_PEER, 0)


def build_decision(b: FlowSet, eff: EffectiveRule, number: int) -> None:
    """The ``conj_id`` flow(s) of a rule: what it does once all its clauses match."""
    r = eff.rule
    table, prio = rule_place(eff)
    if not r.stateful:
        stage = _stage(eff)
        # *_ct: the rule matched: pass as the stage passes, with no connection entry.
        b.add(table, prio, {"conj_id": number}, stage.pass_actions, goto=stage.pass_goto,
              kind=KIND_RULE, owner=number)
        return
    # rules: the conjunction's verdict, with the rule number for the controller; new
    # and established packets apart, so the flow counters tell connections from packets.
    # A pass rule decides nothing: the packet goes on to the next tier's table.
    decide = [Resubmit(T[tier_table(eff.tier + 1)])] if r.action == "pass" else \
        [F.load((F.VERDICT, F.VERDICTS[r.action]), (F.LOG, int(r.log))), F.RULE.load(number)]
    for state in (ct_state("+new+trk"), ct_state("-new+trk")):
        b.add(table, prio, F.match(("conj_id", number), state), decide, kind=KIND_RULE,
              owner=number)


def build_rule(b: FlowSet, eff: EffectiveRule, number: int, zones: list[int]) -> None:
    """The clause flows of one rule and its ``conj_id`` flow(s). A stateful rule lives in
    the rules table of its tier; a stateless allow rule in its stage's ct table, where
    its packets pass before conntrack, per packet."""
    table, prio = rule_place(eff)
    rest = later_clauses(eff)
    n = 1 + len(rest)
    # rules or *_ct, clause 1: the VMs the rule applies to, in the stage of its direction.
    for i, clause in enumerate([[zone_match(eff, z) for z in zones], *rest], 1):
        for match in clause:
            b.add_conj(prio, match, conjunction(number, i, n), *clause_owner(i, match),
                       table=table)
    build_decision(b, eff, number)
