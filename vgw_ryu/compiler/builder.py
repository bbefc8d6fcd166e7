"""The flow set under construction: one flow per (table, priority, match), and the
conjunction clauses of all rules merged so rules with an identical clause share a flow."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from vgw_ryu.pipeline.cookies import KIND_INFRA, KIND_PEER
from vgw_ryu.pipeline.flows import Action, Conjunction, Flow, MatchValue
from vgw_ryu.pipeline.tables import T

Match = dict[str, MatchValue]


@dataclass
class FlowSet:
    """Flows by their switch identity; adding two different flows for one key is a bug."""
    flows: dict[tuple, Flow] = field(default_factory=dict)
    conj: dict[tuple, list[Conjunction]] = field(default_factory=lambda: defaultdict(list))
    conj_owner: dict[tuple, tuple[int, int, Match]] = field(default_factory=dict)

    def add(self, table: str, priority: int, match: Match,
            actions: Sequence[Action] = (), *, goto: str | None = None,
            meter: int | None = None, kind: int = KIND_INFRA, owner: int = 0) -> None:
        """Add one flow; tables are given by name."""
        f = Flow.make(T[table], priority, match, actions,
                      goto=T[goto] if goto else None, meter=meter, kind=kind, owner=owner)
        if f.key in self.flows and self.flows[f.key] != f:
            raise AssertionError(f"two different flows for one match: {f.body} / "
                                 f"{self.flows[f.key].body}")
        self.flows[f.key] = f

    def add_flows(self, flows: Iterable[Flow]) -> None:
        """Add flows built elsewhere (a cached VM's own flows)."""
        for f in flows:
            self.flows[f.key] = f

    def add_conj(self, priority: int, match: Match, c: Conjunction, kind: int,
                 owner: int, table: str = "rules") -> None:
        """A conjunctive clause; identical matches of several rules share one flow."""
        key = (priority, tuple(sorted(match.items())), table)
        self.conj[key].append(c)
        # The first rule to claim a shared clause names it; a clause two owners claim
        # belongs to KIND_PEER, so that no single owner's delete removes it.
        self.conj_owner.setdefault(key, (kind, owner, match))
        if self.conj_owner[key][:2] != (kind, owner):
            self.conj_owner[key] = (KIND_PEER, 0, match)

    def result(self) -> list[Flow]:
        """All flows, the merged clauses included, in table and priority order."""
        for key, conjs in self.conj.items():
            priority, _, table = key
            kind, owner, match = self.conj_owner[key]
            acts = sorted(set(conjs), key=lambda c: (c.id, c.clause))
            self.add(table, priority, match, acts, kind=kind, owner=owner)
        return sorted(self.flows.values(), key=lambda f: (f.table, -f.priority, f.body))
