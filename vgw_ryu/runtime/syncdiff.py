"""Desired flows against installed flows: what to add and what to delete. No Ryu here.

Flows are identified by (table, cookie): the cookie names the flow's owner and content,
so a flow whose key is installed is up to date. What a switch has is indexed as
{(table, cookie): [(priority, match), ...]} (a key can be installed more than once);
the match is whatever the OpenFlow layer uses to delete it again (opaque here).

Once a switch has been given a desired set (``record``, or a diff with nothing to do),
its index remembers which one (``Installed.synced``). A later desired set from the
incremental compiler (a FlowList) that says what changed since that one is diffed from
its changes alone: O(change), not O(flows), with the same answer as the full diff.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from vgw_ryu.compiler.incremental import FlowList
from vgw_ryu.pipeline import tables as pl
from vgw_ryu.pipeline.flows import Flow

Key = tuple[int, int]                      # (table, cookie)
PIPELINE_TABLES = frozenset(pl.BY_ID)


class Installed(dict[Key, list[tuple[int, Any]]]):
    """key -> [(priority, match)] of what a switch has; ``synced`` is the ``gen`` of the
    FlowList it holds exactly (by key), if known."""
    synced: int | None = None


@dataclass(frozen=True)
class Diff:
    adds: list[Flow]                       # desired, not installed
    dels: list[tuple[Key, tuple[int, Any]]]  # installed entries no longer desired
    target: int | None = None              # gen of the desired FlowList, if it is one

    def __bool__(self) -> bool:
        return bool(self.adds or self.dels)


def index_installed(entries: Iterable[tuple[int, int, int, Any]],
                    tables: frozenset[int] = PIPELINE_TABLES) -> Installed:
    """Index dumped flows (table, cookie, priority, match); other tables are not ours."""
    known = Installed()
    for table, cookie, priority, match in entries:
        if table in tables:
            known.setdefault((table, cookie), []).append((priority, match))
    return known


def diff(desired: Iterable[Flow], known: dict[Key, list[tuple[int, Any]]]) -> Diff:
    """Adds (in desired order; the last of duplicate keys wins) and deletes (every entry)."""
    target = desired.gen if isinstance(desired, FlowList) else None
    synced = known.synced if isinstance(known, Installed) else None
    if target is not None and synced is not None:
        if synced == target:
            return Diff([], [], target)
        if synced == desired.base:
            # The switch holds exactly the base set: only what changed since can differ.
            d = Diff([f for f in desired.added if (f.table, f.cookie) not in known],
                     [(k, entry) for k in desired.removed for entry in known.get(k, ())],
                     target)
            return _settled(d, known)
    want = {(f.table, f.cookie): f for f in desired}
    adds = [f for k, f in want.items() if k not in known]
    dels = [(k, entry) for k, entries in known.items() if k not in want
            for entry in entries]
    return _settled(Diff(adds, dels, target), known)


def _settled(d: Diff, known: dict) -> Diff:
    """A diff with nothing to do: the switch already holds the desired set."""
    if not d and isinstance(known, Installed):
        known.synced = d.target
    return d


def after_stream(d: Diff, sent: dict[Key, Flow]) -> tuple[list[Flow], list[Flow]]:
    """What is left of ``d`` once the flows ``sent`` (by key) went ahead of it into the
    same bundle, while the compile ran: the adds not sent yet, and the sent flows the
    desired set turned out not to have (to delete again, after the adds)."""
    rest = [f for f in d.adds if (f.table, f.cookie) not in sent]
    if len(d.adds) - len(rest) == len(sent):
        # Every streamed flow is among the adds (their keys are distinct): the usual
        # case, known without a set of every add's key (25,000 at 1,000 VMs).
        return rest, []
    final = {(f.table, f.cookie) for f in d.adds}
    return rest, [f for k, f in sent.items() if k not in final]


def record(known: dict[Key, list[tuple[int, Any]]], d: Diff,
           match_of: Callable[[Flow], Any]) -> None:
    """Update ``known`` once the switch has applied ``d``."""
    for k, _ in d.dels:
        known.pop(k, None)
    for f in d.adds:
        known[(f.table, f.cookie)] = [(f.priority, match_of(f))]
    if isinstance(known, Installed):
        known.synced = d.target
