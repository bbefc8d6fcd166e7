"""Desired flows against installed flows: what to add and what to delete. No Ryu here.

Flows are identified by (table, cookie): the cookie names the flow's owner and content,
so a flow whose key is installed is up to date. What a switch has is indexed as
{(table, cookie): [(priority, match), ...]} (a key can be installed more than once);
the match is whatever the OpenFlow layer uses to delete it again (opaque here).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from vgw_ryu.pipeline import tables as pl
from vgw_ryu.pipeline.flows import Flow

Key = tuple[int, int]                      # (table, cookie)
Installed = dict[Key, list[tuple[int, Any]]]  # key -> [(priority, match)]
PIPELINE_TABLES = frozenset(pl.BY_ID)


@dataclass(frozen=True)
class Diff:
    adds: list[Flow]                       # desired, not installed
    dels: list[tuple[Key, tuple[int, Any]]]  # installed entries no longer desired

    def __bool__(self) -> bool:
        return bool(self.adds or self.dels)


def index_installed(entries: Iterable[tuple[int, int, int, Any]],
                    tables: frozenset[int] = PIPELINE_TABLES) -> Installed:
    """Index dumped flows (table, cookie, priority, match); other tables are not ours."""
    known: Installed = {}
    for table, cookie, priority, match in entries:
        if table in tables:
            known.setdefault((table, cookie), []).append((priority, match))
    return known


def diff(desired: Iterable[Flow], known: Installed) -> Diff:
    """Adds (in desired order; the last of duplicate keys wins) and deletes (every entry)."""
    want = {(f.table, f.cookie): f for f in desired}
    adds = [f for k, f in want.items() if k not in known]
    dels = [(k, entry) for k, entries in known.items() if k not in want
            for entry in entries]
    return Diff(adds, dels)


def record(known: Installed, d: Diff, match_of: Callable[[Flow], Any]) -> None:
    """Update ``known`` once the switch has applied ``d``."""
    for k, _ in d.dels:
        known.pop(k, None)
    for f in d.adds:
        known[(f.table, f.cookie)] = [(f.priority, match_of(f))]
