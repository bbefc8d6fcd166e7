"""Incremental compile: one switch's desired flows kept per owner, with the inputs each
owner's flows came from, so a change recomputes only the owners whose inputs changed.

The owners (as OVN's incremental processing keeps its flows per logical object):

* the fixed flows: the settings;
* the ports that are not protected VMs: those ports and the unknown-port setting;
* each protected VM here: the VM, its port, its zone and its log level;
* each rule that applies to a VM here: its effective rule (peer prefixes included), its
  number and the sorted zones of the local VMs it applies to;
* each conjunction clause flow: the rules that use it. Rules with an identical clause
  share one flow (as Antrea shares its clauses), which counts its users by rule number
  and is rebuilt only when they change. A rule's first clause (its VMs) is updated by
  the zones that came or went, its other clauses by what changed in them.

An owner whose inputs are unchanged keeps its very Flow objects, so the sync diff and
the OpenFlow bytes cached on each flow (pipeline.wire) cost nothing for it, and every
result says what changed since the previous one (``FlowList.added`` and ``removed``),
so the sync need not compare the rest. ``compile_switch`` stays the reference: for the
same inputs both give the same flows (tests/unit/test_incremental.py checks it over
random change sequences).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterable
from typing import Any

from vgw_ryu.compiler.builder import Match
from vgw_ryu.compiler.clauses import (
    Clause,
    ClauseKey,
    RuleInputs,
    RuleKey,
    clause_key,
    peers_moved,
)
from vgw_ryu.compiler.facts import PortFacts, SwitchFacts
from vgw_ryu.compiler.infra import build_infra
from vgw_ryu.compiler.owned import (
    INFRA,
    PORTS,
    RULE,
    STREAM_CHUNK,
    VM,
    FlowConflictError,
    FlowList,
    OwnedFlows,
    Stream,
    built,
    next_generation,
)
from vgw_ryu.compiler.rules import (
    build_decision,
    clause_owner,
    later_clauses,
    peer_match,
    rule_place,
    zone_items,
    zone_key,
    zone_match,
)
from vgw_ryu.compiler.switch import build_ports, compile_switch
from vgw_ryu.compiler.vmtemplate import VmTemplates
from vgw_ryu.pipeline.flows import Conjunction, Flow, conjunction
from vgw_ryu.pipeline.tables import T
from vgw_ryu.policy.docs import replaced_names
from vgw_ryu.policy.ids import Ids
from vgw_ryu.policy.model import State
from vgw_ryu.policy.ruleset import EffectiveRule, effective_rules, log_level

_GONE = object()
_CONJ_ORDER = operator.attrgetter("id", "clause")   # a clause flow's actions, in order


def _changed_vms(read: tuple, vms: dict[str, Any], ports: tuple[PortFacts, ...],
                 zones: dict[str, int]) -> set[str] | None:
    """The VM names whose object, port or zone differ from what ``_vms`` read last
    (the settings being the same), or None when the ports moved: look at all."""
    old_vms, _, old_ports, old_zones = read
    names = replaced_names(old_vms, vms) if old_vms is not vms else set()
    if old_ports is not ports:
        if len(old_ports) != len(ports):
            return None
        for a, b in zip(old_ports, ports, strict=True):
            if a is not b and a != b:
                names.update(x for x in (a.vm, b.vm) if x)
    if old_zones != zones:
        names.update(n for n in old_zones.keys() | zones.keys()
                     if old_zones.get(n) != zones.get(n))
    return names


class SwitchCompiler(OwnedFlows):
    """One switch's compiled flows, kept between compiles; not thread-safe (the engine
    calls it under its lock)."""

    def __init__(self) -> None:
        self.templates = VmTemplates()
        self._reset()

    def _reset(self) -> None:
        self._reset_owned()
        self.vms: dict[str, int | None] = {}       # protected VMs here -> zone
        self._vm_ports: dict[str, PortFacts] = {}
        # What _vms last read (the VMs, settings, ports, zones): a change touching none
        # (a rule, a group's rules) skips the VMs; one touching some looks at those.
        self._vms_read: tuple | None = None
        self.rules: dict[RuleKey, RuleInputs] = {}
        self.clauses: dict[ClauseKey, Clause] = {}
        self._dirty: set[ClauseKey] = set()
        self._zone_diffs: dict[tuple[int, int], tuple] = {}   # within one compile

    # --- the compile --------------------------------------------------------------------
    def compile(self, state: State, facts: SwitchFacts, ids: Ids,
                effective: dict[str, list[EffectiveRule]] | None = None,
                stream: Stream | None = None, holds: int | None = None,
                chunk: int = STREAM_CHUNK) -> FlowList:
        """The switch's flows for these inputs (``ids`` synced with ``state``), the same
        set compile_switch gives, computed from what changed since the last call.

        ``stream`` gets the flows added under new keys, about ``chunk`` at a time, as
        the compile runs, if the switch ``holds`` the last result (its ``gen``): the
        caller strict-deletes those the result lacks, and a result of another ``base``
        (a full compile after a conflict) voids them.
        """
        effective = effective if effective is not None else effective_rules(state)
        self._before, self._dirty, self._zone_diffs = {}, set(), {}
        self._streaming(stream, holds, chunk)
        try:
            self._owner((INFRA, ""), state.settings,
                        lambda: built(lambda b: build_infra(b, state.settings)))
            self._ports(state, facts, ids)
            local = self._vms(state, facts, ids)
            self._rules(local, ids, effective)
            self._flush_clauses()
        except FlowConflictError:
            self._reset()
            return FlowList(compile_switch(state, facts, ids, effective), next_generation())
        except BaseException:
            self._reset()   # half-applied: start over next time
            raise
        finally:
            self._streaming(None, None)
        return self._result()

    def _ports(self, state: State, facts: SwitchFacts, ids: Ids) -> None:
        """Uplinks, unprotected VMs, protected VMs without a zone and silent unknown
        ports: few, built together."""
        relevant: list[PortFacts] = []
        blocked: list[str] = []
        for p in facts.ports:
            if p.kind == "uplink" or (p.kind == "unknown" and p.mac):
                relevant.append(p)
            elif p.kind == "vm" and p.vm in state.vms:
                if not state.vms[p.vm].protected:
                    relevant.append(p)
                elif ids.zone(p.vm) is None:
                    relevant.append(p)
                    blocked.append(p.vm)
        ports = SwitchFacts(tuple(relevant))
        self._owner((PORTS, ""), (ports, state.settings.unknown_ports, tuple(blocked)),
                    lambda: built(lambda b: build_ports(b, state, ports, ids)))

    def _vms(self, state: State, facts: SwitchFacts, ids: Ids) -> list[tuple[str, int]]:
        """Each protected VM here; returns their (name, zone)."""
        zones = ids.zones()
        read = self._vms_read
        names: set[str] | None = None
        if read is not None and read[1] is state.settings:
            # Only the VMs whose object, port or zone changed are looked at again: a
            # VM's write at 1,000 VMs does not walk the other 999.
            names = _changed_vms(read, state.vms, facts.ports, zones)
            if names is not None and not names:
                return list(self.vms.items())
        if names is None or read is None or read[2] is not facts.ports:
            self._vm_ports = facts.vm_ports()
        vm_ports = self._vm_ports
        if names is None:
            names = set(vm_ports) | set(self.vms)
        inputs = self.inputs
        local = self.vms
        for name in names:
            vm = state.vms.get(name)
            port = vm_ports.get(name)
            zone = ids.zone(name)
            if vm is None or port is None or not vm.protected or zone is None:
                if local.pop(name, _GONE) is not _GONE:
                    self._drop((VM, name))
                continue
            local[name] = zone
            owner = (VM, name)
            key = (vm, port, zone, log_level(state, name))
            if inputs.get(owner) != key:
                self._own(owner, self.templates.vm_flows(*key))
                inputs[owner] = key
        self._vms_read = (state.vms, state.settings, facts.ports, zones)
        return list(local.items())

    def _rules(self, local: list[tuple[str, int]], ids: Ids,
               effective: dict[str, list[EffectiveRule]]) -> None:
        """Each rule once, with the zones of the local VMs it applies to."""
        # VMs with the same policies share one list of rule objects' identities: the
        # rule -> zones grouping costs one pass per distinct list, not per VM and rule.
        # (Most VMs share one list object: grouped by it first, then by identities.)
        by_list: dict[int, tuple[list[EffectiveRule], list[int]]] = {}
        for name, zone in local:
            rules = effective[name]
            seen = by_list.get(id(rules))
            if seen is None:
                by_list[id(rules)] = (rules, [zone])
            else:
                seen[1].append(zone)
        lists: dict[tuple[int, ...], tuple[list[EffectiveRule], list[int]]] = {}
        for rules, zones_of in by_list.values():
            sig = tuple(map(id, rules))
            seen = lists.get(sig)
            if seen is None:
                lists[sig] = (rules, zones_of)
            else:
                seen[1].extend(zones_of)
        by_rule: dict[RuleKey, tuple[EffectiveRule, list[tuple[int, ...]]]] = {}
        for rules, zones in lists.values():
            group = tuple(sorted(zones))
            for eff in rules:
                had = by_rule.get(eff.key)
                if had is None:
                    by_rule[eff.key] = (eff, [group])
                else:
                    had[1].append(group)
        wanted: set[RuleKey] = set()
        for key, (eff, groups) in by_rule.items():
            if eff.peers is not None and not eff.peers:
                continue  # the peer set is empty: the rule can match nothing
            wanted.add(key)
            zones = groups[0] if len(groups) == 1 else \
                tuple(sorted(itertools.chain.from_iterable(groups)))
            self._rule(key, eff, ids.rule(*key), zones)
        for key in set(self.rules) - wanted:
            self._drop_rule(key)

    def _rule(self, key: RuleKey, eff: EffectiveRule, number: int,
              zones: tuple[int, ...]) -> None:
        """One rule's own flows and its part in the shared clauses, where they changed."""
        old = self.rules.get(key)
        same = old is not None and old.number == number and (old.eff is eff or old.eff == eff)
        if same and old.zones == zones:
            old.eff = eff
            return
        table, prio = rule_place(eff)
        rest: dict[ClauseKey, tuple[Match, frozenset[Conjunction]]]
        if same:
            # Only its VMs changed: its own flows and later clauses stay as they are.
            rest, n = old.rest, old.place[2]
        else:
            self._owner((RULE, key), (eff, number),
                        lambda: built(lambda b: build_decision(b, eff, number)))
            if old is not None and peers_moved(old, eff, number):
                # Only its peers changed (a group member came or went): only their
                # entries of clause 2 change, not the whole group's.
                rest, n = self._peer_entries(old, eff, table, prio), old.place[2]
            else:
                rest_clauses = later_clauses(eff)
                n = 1 + len(rest_clauses)
                rest = {}
                for i, clause in enumerate(rest_clauses, 2):
                    for match in clause:
                        ck = clause_key(prio, match, table)
                        had = rest.get(ck)
                        rest[ck] = (match, (had[1] if had else frozenset())
                                    | {conjunction(number, i, n)})
                old_rest = old.rest if old is not None else {}
                for ck in old_rest.keys() | rest.keys():
                    mine = rest.get(ck)
                    if old_rest.get(ck) != mine:
                        self._use(ck, number, table, prio, mine)
        place = (table, prio, n, number, eff.rule.stateful, eff.rule.direction)
        first = frozenset({conjunction(number, 1, n)})
        if old is not None and old.place == place:
            # Only the zones that came or went change their clause flows. Rules over
            # the same VMs share their zone tuples: each pair is compared once.
            pair = (id(old.zones), id(zones))
            d = self._zone_diffs.get(pair)
            if d is None:
                had, now = set(old.zones), set(zones)
                # (The tuples are kept with the answer: their ids stay theirs.)
                d = self._zone_diffs[pair] = (had - now, now - had, old.zones, zones)
            self._zones(old.eff, number, d[0], None)
            self._zones(eff, number, d[1], first)
        else:
            if old is not None:
                self._zones(old.eff, old.number, old.zones, None)
            self._zones(eff, number, zones, first)
        self.rules[key] = RuleInputs(eff, number, zones, place, rest)

    def _peer_entries(self, old: RuleInputs, eff: EffectiveRule, table: str, prio: int
                      ) -> dict[ClauseKey, tuple[Match, frozenset[Conjunction]]]:
        """The rule's later clauses after only its peers changed: the entries of the
        peers that left or came are updated (and used), the others kept."""
        conj = conjunction(old.number, 2, old.place[2])
        rest = dict(old.rest)
        before, after = set(old.eff.peers), set(eff.peers)
        for net in before - after:
            ck = clause_key(prio, peer_match(eff, net), table)
            match, conjs = rest[ck]
            left = conjs - {conj}
            if left:
                rest[ck] = (match, left)
            else:
                del rest[ck]
            self._use(ck, old.number, table, prio, rest.get(ck))
        for net in after - before:
            match = peer_match(eff, net)
            ck = clause_key(prio, match, table)
            had = rest.get(ck)
            rest[ck] = (match, (had[1] if had else frozenset()) | {conj})
            self._use(ck, old.number, table, prio, rest[ck])
        return rest

    def _drop_rule(self, key: RuleKey) -> None:
        old = self.rules.pop(key)
        self._zones(old.eff, old.number, old.zones, None)
        for ck in old.rest:
            self._use(ck, old.number, old.place[0], old.place[1], None)
        self._drop((RULE, key))

    def _zones(self, eff: EffectiveRule, number: int, zones: Iterable[int],
               first: frozenset[Conjunction] | None) -> None:
        """Rule ``number`` uses the first clause flows of these VMs' zones (``first``: its
        conjunction there), or (None) no longer does."""
        table, prio = rule_place(eff)
        direction = zone_key(eff)
        for z in zones:
            # (clause_key of the zone's match, from cached items: 20,000 at 1,000 VMs)
            ck = (prio, zone_items(direction, z), table)
            self._use(ck, number, table, prio,
                      (zone_match(eff, z), first) if first is not None else None, 1)

    def _use(self, ck: ClauseKey, number: int, table: str, prio: int,
             entry: tuple[Match, frozenset[Conjunction]] | None, i: int = 2) -> None:
        """Rule ``number`` uses clause ``ck`` (its ``i``-th) with these conjunctions (None:
        no more)."""
        c = self.clauses.get(ck)
        if entry is None:
            if c is not None and c.users.pop(number, None) is not None:
                self._dirty.add(c.key)
            return
        if c is None:
            c = self.clauses[ck] = Clause(ck, table, prio, entry[0],
                                           *clause_owner(i, entry[0]))
        c.users[number] = entry[1]
        self._dirty.add(c.key)

    def _flush_clauses(self) -> None:
        """Rebuild the clause flows whose users changed."""
        for ck in self._dirty:
            c = self.clauses[ck]
            if not c.users:
                del self.clauses[ck]
                self._replace(c.owner_id, c.flow, [])
                continue
            users = c.users
            if len(users) == 1:
                # (Most clauses at scale: one VM's zone at one rule's priority.)
                (conjs,) = users.values()
                acts = list(conjs) if len(conjs) == 1 else sorted(conjs, key=_CONJ_ORDER)
            else:
                acts = sorted({x for conjs in users.values() for x in conjs},
                              key=_CONJ_ORDER)
            c.flow = self._replace(c.owner_id, c.flow, [
                Flow.make(T[c.table], c.priority, c.match, acts, kind=c.kind, owner=c.owner)])
