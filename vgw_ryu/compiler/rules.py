"""The rules table: one OpenFlow conjunction per rule (VMs x peers x protocol/ports),
summed not multiplied, on the packet's own fields (rules judge only the original
direction, so "peer" is the source of ingress rules and the destination of egress ones)."""

from __future__ import annotations

from vgw_ryu.compiler.builder import FlowSet, Match
from vgw_ryu.compiler.proto import ETH_IP, ETH_IPV6
from vgw_ryu.compiler.stage import EGRESS, INGRESS
from vgw_ryu.pipeline import fields as F  # noqa: N812 - F.<field> reads like a register map
from vgw_ryu.pipeline import priorities as P  # noqa: N812 - P.<name> reads like a band table
from vgw_ryu.pipeline.cookies import KIND_PEER, KIND_RULE, KIND_VM
from vgw_ryu.pipeline.ctstate import ct_state
from vgw_ryu.pipeline.flows import Conjunction, Resubmit
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


def net_match(net: IpNet, field_v4: str, field_v6: str) -> Match:
    """A match on one prefix; a host address is matched without a mask."""
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


def build_stateless(b: FlowSet, eff: EffectiveRule, number: int, zones: list[int]) -> None:
    """*_ct: a stateless allow rule lets its packets pass before conntrack, per packet."""
    r = eff.rule
    stage = INGRESS if r.direction == "ingress" else EGRESS
    # *_ct, clause 1: the VMs of this stage's zone the rule applies to.
    clauses: list[list[Match]] = [[F.match(F.ZONE.match(z)) for z in zones]]
    if eff.peers is not None:
        clauses.append([net_match(n, *PEER_FIELDS[stage.direction]) for n in eff.peers])
    clauses.append(proto_clause(eff) if r.protocol != "any" else
                   [{"eth_type": ETH_IP}, {"eth_type": ETH_IPV6}])
    if r.src_ports:
        clauses.append(src_port_clause(eff))
    n = len(clauses)
    for i, clause in enumerate(clauses, 1):
        for match in clause:
            kind, owner = (KIND_VM, match[F.ZONE.reg]) if i == 1 else (KIND_PEER, 0)
            b.add_conj(P.CT_STATELESS, match, Conjunction(number, i, n), kind, owner,
                       table=stage.ct)
    # *_ct: the rule matched: pass as the stage passes, with no connection entry.
    b.add(stage.ct, P.CT_STATELESS, {"conj_id": number}, stage.pass_actions,
          goto=stage.pass_goto, kind=KIND_RULE, owner=number)


def build_rule(b: FlowSet, eff: EffectiveRule, number: int, zones: list[int]) -> None:
    """rules: the clause flows of one rule and its ``conj_id`` flow."""
    r = eff.rule
    prio = rules_priority(eff)
    table = tier_table(eff.tier)
    direction = F.DIR_INGRESS if r.direction == "ingress" else F.DIR_EGRESS
    # rules, clause 1: the VMs the rule applies to, in the stage of its direction.
    clauses: list[list[Match]] = [
        [F.match(F.ZONE.match(z), F.DIRECTION.match(direction)) for z in zones]]
    if eff.peers is not None:
        clauses.append([net_match(n, *PEER_FIELDS[direction]) for n in eff.peers])
    if r.protocol != "any":
        clauses.append(proto_clause(eff))
    if r.src_ports:
        clauses.append(src_port_clause(eff))
    if len(clauses) == 1:
        clauses.append([{}])  # a conjunction needs two clauses; this one always holds
    n = len(clauses)
    for i, clause in enumerate(clauses, 1):
        for match in clause:
            # Clause 1 names one VM (its zone): owned by it, like the rest of its flows.
            kind, owner = (KIND_VM, match[F.ZONE.reg]) if i == 1 else (KIND_PEER, 0)
            b.add_conj(prio, match, Conjunction(number, i, n), kind, owner, table=table)
    # rules: the conjunction's verdict, with the rule number for the controller; new
    # and established packets apart, so the flow counters tell connections from packets.
    # A pass rule decides nothing: the packet goes on to the next tier's table.
    decide = [Resubmit(T[tier_table(eff.tier + 1)])] if r.action == "pass" else \
        [F.load((F.VERDICT, F.VERDICTS[r.action]), (F.LOG, int(r.log))), F.RULE.load(number)]
    for state in (ct_state("+new+trk"), ct_state("-new+trk")):
        b.add(table, prio, F.match(("conj_id", number), state), decide, kind=KIND_RULE,
              owner=number)
