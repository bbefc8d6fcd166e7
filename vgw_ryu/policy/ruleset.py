"""Effective rulesets: which rules apply to each VM, in which order, against which peers.

Also the model-side evaluation of one connection (``evaluate``), which the REST
``trace`` endpoint shows next to OVS's own ``ofproto/trace``. No Ryu here.
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
from dataclasses import dataclass

from vgw_ryu.policy.objects import PROTO_NUM as PROTO_NUM  # re-exported for the compiler
from vgw_ryu.policy.objects import IpAddr, IpNet, Rule, State, Vm

# At equal priority deny beats reject beats allow: a rule that blocks wins a tie with one
# that lets the connection through.
ACTION_RANK = {"deny": 3, "reject": 2, "pass": 1, "allow": 0}


@dataclass(frozen=True)
class EffectiveRule:
    """A rule as it applies to VMs: the peer resolved to address prefixes."""
    policy: str
    rule: Rule
    peers: tuple[IpNet, ...] | None  # None: any peer
    tier: int = 0                    # index in settings.tiers: earlier tiers decide first

    @property
    def key(self) -> tuple[str, str]:
        return (self.policy, self.rule.id)

    def sort_key(self) -> tuple:
        return (self.tier, -self.rule.priority, -ACTION_RANK[self.rule.action], self.policy,
                self.rule.id)


def group_members(state: State, group: str) -> list[str]:
    """VM names in a group: explicit members plus VMs whose labels match its selector."""
    return list(_all_members(state)[group])


def _all_members(state: State) -> dict[str, tuple[str, ...]]:
    """Every group's members, computed once per State (states are never mutated) in
    one pass over the VMs' labels."""
    memo = state.__dict__.get("_group_members")
    if memo is not None:
        return memo
    names: dict[str, set[str]] = {g: set(grp.members) for g, grp in state.groups.items()}
    selectors = [(g, tuple(grp.match_labels)) for g, grp in state.groups.items()
                 if grp.match_labels]
    if selectors:
        # VMs by label (key, value): a selector is the intersection of its labels' sets.
        by_label: dict[tuple[str, str], set[str]] = {}
        for vm_name, vm in state.vms.items():
            for kv in vm.labels:
                by_label.setdefault(kv, set()).add(vm_name)
        for g, want in selectors:
            sets = sorted((by_label.get(kv, set()) for kv in want), key=len)
            names[g].update(sets[0].intersection(*sets[1:]))
    memo = {g: tuple(sorted(n)) for g, n in names.items()}
    object.__setattr__(state, "_group_members", memo)
    return memo


def members_after(state: State, name: str, vm: Vm | None) -> dict[str, tuple[str, ...]] | None:
    """Every group's members once VM ``name`` of ``state`` is replaced by ``vm`` (None:
    deleted) and nothing else changes, from the memberships ``state`` computed (None
    if it did not): a VM's write does not look at the other VMs' labels again."""
    memo = state.__dict__.get("_group_members")
    if memo is None:
        return None
    labels = set(vm.labels) if vm is not None else set()
    out = dict(memo)
    for g, grp in state.groups.items():
        had = memo[g]
        i = bisect.bisect_left(had, name)
        was = i < len(had) and had[i] == name
        now = name in grp.members or (vm is not None and bool(grp.match_labels) and
                                      all(kv in labels for kv in grp.match_labels))
        if now and not was:
            out[g] = (*had[:i], name, *had[i:])
        elif was and not now:
            out[g] = had[:i] + had[i + 1:]
    return out


def keep_members(state: State, memo: dict[str, tuple[str, ...]] | None) -> State:
    """``state`` with its group memberships already known (from ``members_after``)."""
    if memo is not None and "_group_members" not in state.__dict__:
        object.__setattr__(state, "_group_members", memo)
    return state


@functools.lru_cache(maxsize=65536)
def _host_net(ip: IpAddr) -> IpNet:
    # Parsing a prefix is the costliest step of resolving a large group: once per IP.
    return ipaddress.ip_network(ip)


def vm_nets(vm) -> list[IpNet]:
    """A VM's addresses as prefixes: its IPs and its address pairs."""
    return [_host_net(ip) for ip in vm.ips] + [a.net for a in vm.address_pairs]


def resolve_peer(state: State, rule: Rule,
                 memo: dict | None = None) -> tuple[IpNet, ...] | None:
    """The prefixes a rule's peer stands for (None = any), filtered to its IP family.

    ``memo`` (one dict per state) shares the work between rules with the same peer.
    """
    p = rule.peer
    if p.kind == "any":
        return None
    family = 4 if rule.protocol == "icmp" else 6 if rule.protocol == "icmpv6" else 0
    if memo is not None:
        key = (p.kind, p.value, family)
        if key not in memo:
            memo[key] = resolve_peer(state, rule)
        return memo[key]
    if p.kind == "group":
        return _group_nets(state, p.value, family)
    if p.kind == "cidr":
        nets = [ipaddress.ip_network(p.value)]
    else:
        nets = vm_nets(state.vms[p.value])
    return _family_sorted(nets, family)


# A group's prefixes by (group, family): kept with the group object and its member VM
# objects they came from, so the next state (one write later) reuses them unless the
# group or one of its members changed. Objects are never mutated, so identity suffices.
_GROUP_NETS: dict[tuple[str, int], tuple[object, tuple, tuple[IpNet, ...]]] = {}
_GROUP_NETS_MAX = 20_000


def _group_nets(state: State, group: str, family: int) -> tuple[IpNet, ...]:
    grp = state.groups[group]
    vms = tuple(state.vms[m] for m in _all_members(state)[group])
    had = _GROUP_NETS.get((group, family))
    if had is not None and had[0] is grp and len(had[1]) == len(vms) and \
            all(a is b for a, b in zip(had[1], vms, strict=True)):
        return had[2]
    nets = [n for vm in vms for n in vm_nets(vm)] + list(grp.resolved_cidrs())
    out = _family_sorted(nets, family)
    if len(_GROUP_NETS) >= _GROUP_NETS_MAX:
        _GROUP_NETS.clear()
    _GROUP_NETS[(group, family)] = (grp, vms, out)
    return out


def _family_sorted(nets: list[IpNet], family: int) -> tuple[IpNet, ...]:
    """Prefixes of one IP family (0: both), sorted, without duplicates."""
    if family:
        nets = [n for n in nets if n.version == family]
    # By integers: comparing ipaddress objects runs Python code per comparison.
    return tuple(sorted(set(nets), key=lambda n: (n.version, int(n.network_address),
                                                  n.prefixlen)))


def applied_vms(state: State, policy: str) -> list[str]:
    """VM names a policy applies to, directly or through groups, sorted."""
    return sorted(applied_vm_set(state, policy))


def applied_vm_set(state: State, policy: str) -> set[str]:
    """VM names a policy applies to, as a set (for callers that need no order)."""
    names: set[str] = set()
    members = _all_members(state)
    for target in state.policies[policy].applied_to:
        kind, _, name = target.partition(":")
        if kind == "vm":
            names.add(name)
        else:
            names.update(members[name])
    return names


def effective_rules(state: State) -> dict[str, list[EffectiveRule]]:
    """For every VM, the ordered rules of all policies applied to it.

    Computed once per State (states are never mutated): a write's analysis, assertion
    check and commit share it. VMs under the same policies share one list object.
    Callers must not modify the answer.
    """
    memo = state.__dict__.get("_effective")
    if memo is None:
        memo = _effective_rules(state)
        object.__setattr__(state, "_effective", memo)
    return memo


def _effective_rules(state: State) -> dict[str, list[EffectiveRule]]:
    # VMs under the same policies get one shared, sorted list: the sort (and every
    # reader that groups VMs by their list) costs once per distinct set of policies.
    applied: dict[str, list[str]] = {name: [] for name in state.vms}
    for pname in state.policies:
        for vm in applied_vm_set(state, pname):
            applied[vm].append(pname)
    peers: dict = {}
    by_policy: dict[str, list[EffectiveRule]] = {}
    for pname, pol in state.policies.items():
        tier = state.settings.tier_of(pol.tier)
        by_policy[pname] = [EffectiveRule(pname, rule, resolve_peer(state, rule, peers), tier)
                            for rule in pol.rules]
    lists: dict[tuple[str, ...], list[EffectiveRule]] = {}
    out: dict[str, list[EffectiveRule]] = {}
    for vm, pnames in applied.items():
        sig = tuple(pnames)
        rules = lists.get(sig)
        if rules is None:
            rules = [eff for p in sig for eff in by_policy[p]]
            rules.sort(key=EffectiveRule.sort_key)
            lists[sig] = rules
        out[vm] = rules
    return out


@dataclass(frozen=True)
class Verdict:
    verdict: str          # allow | deny | reject
    policy: str | None    # None: the default from settings
    rule: str | None
    log: bool

    def as_dict(self) -> dict:
        return {"verdict": self.verdict, "policy": self.policy, "rule": self.rule,
                "log": self.log, "default": self.policy is None}


def _in(ranges: tuple[tuple[int, int], ...], value: int | None) -> bool:
    return value is not None and any(lo <= value <= hi for lo, hi in ranges)


def _matches(eff: EffectiveRule, direction: str, peer: IpAddr, proto: str,
             port: int | None, sport: int | None, icmp: tuple[int, int] | None) -> bool:
    r = eff.rule
    if r.direction != direction:
        return False
    if r.protocol != "any" and r.protocol != proto:
        return False
    if r.ports and not _in(r.ports, port):
        return False
    if r.src_ports and not _in(r.src_ports, sport):
        return False
    if r.icmp_type is not None and (icmp is None or icmp[0] != r.icmp_type or (
            r.icmp_code is not None and icmp[1] != r.icmp_code)):
        return False
    if eff.peers is not None and not any(peer in n for n in eff.peers):
        return False
    return True


def evaluate(state: State, rules: list[EffectiveRule], direction: str, peer: IpAddr,
             proto: str, port: int | None, sport: int | None = None,
             icmp: tuple[int, int] | None = None) -> Verdict:
    """The verdict for a new connection of a VM (direction as seen from the VM).

    ``sport`` and ``icmp`` (type, code) judge rules on source ports or ICMP types; a rule
    that needs one does not match a connection given without it. Stateless rules are
    judged before the connection table, so they come first.
    """
    ordered = [e for e in rules if not e.rule.stateful] + [e for e in rules if e.rule.stateful]
    passed = -1   # a pass rule matched in this tier: skip the rest of it
    for eff in ordered:
        if eff.rule.stateful and eff.tier == passed:
            continue
        if _matches(eff, direction, peer, proto, port, sport, icmp):
            if eff.rule.action == "pass":
                passed = eff.tier
                continue
            return Verdict(eff.rule.action, eff.policy, eff.rule.id, eff.rule.log)
    default = (state.settings.default_ingress if direction == "ingress"
               else state.settings.default_egress)
    return Verdict(default, None, None, default == "deny" and state.settings.log_default_deny)


def log_level(state: State, vm: str) -> str:
    """What a VM logs besides its rules' ``log: true``: none, drops or all."""
    own = state.vms[vm].log
    return state.settings.log if own is None else own


def connection_limit(state: State, vm: str) -> int:
    """The connection-table cap of a protected VM (0: none): its own, else the default."""
    own = state.vms[vm].max_connections
    return state.settings.max_connections if own is None else own
