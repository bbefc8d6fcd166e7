"""Rule analysis: what a firewall GUI cannot tell, computed on the model on every write.

Warnings (never errors: the state is valid, maybe not what was meant), each with the
field path of the rule or policy concerned:

* ``shadowed``: a rule that an earlier rule (higher tier or priority) fully covers for
  every VM it applies to, so it can never decide anything;
* ``overlap``: two rules of one tier, one priority and one direction with different
  actions whose matches intersect for a VM both apply to (deny > reject > pass > allow
  decides, which may not be what was meant);
* ``never_matches``: a rule whose peer resolves to no address (an empty group, or only
  addresses of the other IP family);
* ``applies_to_nothing``: a policy applied to no VM.

Analysis works on sets of port ranges and prefixes, never on enumerated packets, and
once per distinct rule list (VMs with the same policies share one): its cost grows with
the VMs only by one look at each VM's list. No Ryu here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vgw_ryu.policy.objects import IpNet, Rule, State
from vgw_ryu.policy.ruleset import EffectiveRule, applied_vm_set, effective_rules

Ranges = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Finding:
    code: str
    message: str
    field: str

    def doc(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "field": self.field}


def _path(state: State, eff: EffectiveRule) -> str:
    rules = state.policies[eff.policy].rules
    i = next(k for k, r in enumerate(rules) if r.id == eff.rule.id)
    return f"policies.{eff.policy}.rules[{i}]"


def _ranges_cover(outer: Ranges, inner: Ranges) -> bool:
    """Every port of ``inner`` is in ``outer`` (empty: all ports)."""
    if not outer:
        return True
    if not inner:
        return False
    return all(any(a <= lo and hi <= b for a, b in outer) for lo, hi in inner)


def _ranges_meet(a: Ranges, b: Ranges) -> bool:
    if not a or not b:
        return True
    return any(lo1 <= hi2 and lo2 <= hi1 for lo1, hi1 in a for lo2, hi2 in b)


def _nets_cover(outer: tuple[IpNet, ...] | None, inner: tuple[IpNet, ...] | None) -> bool:
    if outer is None:
        return True
    if inner is None:
        return False
    return all(any(n.version == o.version and n.subnet_of(o) for o in outer)
               for n in inner)


def _nets_meet(a: tuple[IpNet, ...] | None, b: tuple[IpNet, ...] | None) -> bool:
    if a is None or b is None:
        return True
    return any(x.version == y.version and x.overlaps(y) for x in a for y in b)


def _icmp_covers(outer: Rule, inner: Rule) -> bool:
    if outer.icmp_type is None:
        return True
    return inner.icmp_type == outer.icmp_type and (
        outer.icmp_code is None or inner.icmp_code == outer.icmp_code)


def covers(a: EffectiveRule, b: EffectiveRule) -> bool:
    """Every packet ``b`` matches, ``a`` matches too (same direction)."""
    ra, rb = a.rule, b.rule
    return ra.direction == rb.direction and ra.protocol in ("any", rb.protocol) and \
        _ranges_cover(ra.ports, rb.ports) and _ranges_cover(ra.src_ports, rb.src_ports) and \
        _icmp_covers(ra, rb) and _nets_cover(a.peers, b.peers)


def meet(a: EffectiveRule, b: EffectiveRule) -> bool:
    """Some packet matches both (same direction)."""
    ra, rb = a.rule, b.rule
    if ra.direction != rb.direction:
        return False
    if "any" not in (ra.protocol, rb.protocol) and ra.protocol != rb.protocol:
        return False
    if ra.icmp_type is not None and rb.icmp_type is not None and (
            ra.icmp_type != rb.icmp_type or (None not in (ra.icmp_code, rb.icmp_code)
            and ra.icmp_code != rb.icmp_code)):
        return False
    return _ranges_meet(ra.ports, rb.ports) and _ranges_meet(ra.src_ports, rb.src_ports) \
        and _nets_meet(a.peers, b.peers)


def _distinct_lists(effective: dict[str, list[EffectiveRule]]
                    ) -> tuple[list[list[EffectiveRule]], list[tuple[list[EffectiveRule], int]]]:
    """(each VM's rule list, each distinct one once; [(rule list, how many VMs have
    it)] merged by rule keys, as the analysis judges them).

    VMs with the same policies share one list (or list the very same rule objects), so
    they are grouped by the list first (one cheap look per VM), then by the rule
    objects' identities, and those groups by rule keys (once per group): the last VM's
    list stands for a key, in order of first appearance.
    """
    by_list: dict[int, list] = {}      # the list object -> [list, VMs, last VM index]
    for i, rules in enumerate(effective.values()):
        seen = by_list.get(id(rules))
        if seen is None:
            by_list[id(rules)] = [rules, 1, i]
        else:
            seen[1] += 1
            seen[2] = i
    by_ids: dict[tuple[int, ...], list] = {}    # identities -> [list, VMs, last VM index]
    for rules, n, i in by_list.values():
        sig = tuple(map(id, rules))
        seen = by_ids.get(sig)
        if seen is None:
            by_ids[sig] = [rules, n, i]
        else:
            seen[1] += n
            seen[2] = max(seen[2], i)
    by_keys: dict[tuple, list] = {}
    for rules, n_vms, last in by_ids.values():
        key = tuple(e.key for e in rules)
        had = by_keys.get(key)
        if had is None:
            by_keys[key] = [rules, n_vms, last]
        else:
            had[1] += n_vms
            if last > had[2]:
                had[0], had[2] = rules, last
    return ([rules for rules, _, _ in by_ids.values()],
            [(rules, n_vms) for rules, n_vms, _ in by_keys.values()])


def analyze(state: State, effective: dict[str, list[EffectiveRule]] | None = None
            ) -> list[dict[str, Any]]:
    """Warnings about a valid state, each {"code", "message", "field"}, sorted by field."""
    effective = effective if effective is not None else effective_rules(state)
    found: dict[tuple[str, str], Finding] = {}
    for pname in state.policies:
        if not applied_vm_set(state, pname):
            w = Finding("applies_to_nothing", f"policy {pname} applies to no VM (its "
                         "applied_to names no VM, or only empty groups)",
                         f"policies.{pname}.applied_to")
            found[(w.code, w.field)] = w
    # rule key -> for how many of its VMs it was shadowed, and by what
    shadowed: dict[tuple[str, str], tuple[int, str]] = {}
    applies: dict[tuple[str, str], int] = {}
    every, lists = _distinct_lists(effective)
    for rules, n_vms in lists:
        stateful = [e for e in rules if e.rule.stateful]
        for i, eff in enumerate(stateful):
            applies[eff.key] = applies.get(eff.key, 0) + n_vms
            if eff.peers is not None and not eff.peers:
                continue   # never matches: reported below
            for earlier in stateful[:i]:
                if earlier.rule.action != "pass" and covers(earlier, eff) and \
                        (earlier.peers is None or earlier.peers):
                    count, _ = shadowed.get(eff.key, (0, ""))
                    shadowed[eff.key] = (count + n_vms,
                                         f"{earlier.policy}/{earlier.rule.id}")
                    break
            for other in stateful[i + 1:]:
                r, o = eff.rule, other.rule
                if other.tier == eff.tier and o.priority == r.priority and \
                        o.action != r.action and meet(eff, other):
                    w = Finding("overlap", f"{eff.policy}/{r.id} ({r.action}) and "
                                 f"{other.policy}/{o.id} ({o.action}) have one priority "
                                 f"({r.priority}) and overlapping matches: "
                                 "deny > reject > pass > allow decides",
                                 _path(state, other))
                    found[(w.code, w.field)] = w
    for rules in every:
        for eff in rules:
            if eff.peers is not None and not eff.peers:
                w = Finding("never_matches", f"{eff.policy}/{eff.rule.id}: its peer "
                             f"{eff.rule.peer} stands for no address"
                             + (f" of the rule's IP family ({eff.rule.protocol})"
                                if eff.rule.protocol in ("icmp", "icmpv6") else ""),
                             _path(state, eff) + ".peer")
                found[(w.code, w.field)] = w
    for key, (count, by) in shadowed.items():
        if count and count == applies.get(key):
            pol, rid = key
            eff = next(e for rules in every for e in rules if e.key == key)
            w = Finding("shadowed", f"{pol}/{rid} can never decide: {by} comes first and "
                         "matches everything it does, for every VM it applies to",
                         _path(state, eff))
            found[(w.code, w.field)] = w
    return [w.doc() for w in sorted(found.values(), key=lambda w: (w.field, w.code))]
