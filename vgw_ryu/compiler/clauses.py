"""The incremental compiler's records of rules and shared clauses: what each rule's
flows came from, and each conjunction clause flow with the rules that use it. No Ryu
here."""

from __future__ import annotations

from dataclasses import dataclass, field

from vgw_ryu.compiler.builder import Match
from vgw_ryu.compiler.owned import CLAUSE, Owner
from vgw_ryu.pipeline.flows import Conjunction, Flow
from vgw_ryu.policy.ruleset import EffectiveRule

ClauseKey = tuple[int, tuple, str]   # (priority, sorted match items, table), as FlowSet.add_conj
RuleKey = tuple[str, str]            # (policy, rule id)


@dataclass(eq=False)
class Clause:
    """One shared clause flow: where it is, its match and cookie owner (both follow from
    the match, so all its users agree on them), its users and its flow."""
    key: ClauseKey
    table: str
    priority: int
    match: Match
    kind: int
    owner: int
    users: dict[int, frozenset[Conjunction]] = field(default_factory=dict)  # rule number
    flow: list[Flow] = field(default_factory=list)   # [] or [the flow]

    @property
    def owner_id(self) -> Owner:
        return (CLAUSE, self.key)


@dataclass(eq=False)
class RuleInputs:
    """What a rule's flows came from, and its part in the shared clauses."""
    eff: EffectiveRule
    number: int
    zones: tuple[int, ...]
    place: tuple       # what its first clause depends on besides the zone
    rest: dict[ClauseKey, tuple[Match, frozenset[Conjunction]]]   # its later clauses


def clause_key(priority: int, match: Match, table: str) -> ClauseKey:
    """The identity of a clause flow, as FlowSet.add_conj merges them."""
    return (priority, tuple(sorted(match.items())), table)


def peers_moved(old: RuleInputs, eff: EffectiveRule, number: int) -> bool:
    """Whether a rule differs from what ``old`` was built from only in its peers, and
    not in their address families (which shape its protocol clause)."""
    a, b = old.eff.peers, eff.peers
    return old.number == number and old.eff.rule is eff.rule and \
        old.eff.tier == eff.tier and a is not None and b is not None and \
        {n.version for n in a} == {n.version for n in b}
