"""Single columns of an OVSDB replica's rows, read and written cheaply.

Reading an IDL column converts the replica's datum on every access, and assigning one
sends its whole value: for a map of 1,000 entries (an agent's VM ports) both cost
milliseconds, each time anything in the row changed. A column's conversion is kept
until the replica reports that column changed (its change notices name the columns),
and a map with a few keys changed is written as those keys (an OVSDB mutate; what
comes back is a diff anyway).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ovs.db.idl

# A map is written as key changes when fewer than this share of its keys changed.
MUTATE_BELOW = 0.5
_ABSENT = object()


class ColumnCache:
    """Columns as Python, converted once per value. Installs itself on the IDL's change
    notices (after whatever was there, which it still calls)."""

    def __init__(self, idl: Any):
        self._values: dict[Any, dict[str, Any]] = {}    # row uuid -> column -> value
        self._next: Callable[..., None] = idl.notify
        idl.notify = self._changed

    def _changed(self, event: str, row: Any, updates: Any = None) -> None:
        cols = self._values.get(row.uuid)
        if cols is not None:
            if event == ovs.db.idl.ROW_UPDATE and updates is not None and \
                    updates._data is not None:
                for column in updates._data:   # the old values of the changed columns
                    cols.pop(column, None)
            else:
                del self._values[row.uuid]
        self._next(event, row, updates)

    def get(self, row: Any, column: str) -> Any:
        """``row.<column>``, converted once while the replica holds the same value (a
        row only inserted by a transaction in progress is read directly). Callers must
        not modify the answer."""
        if row._data is None:
            return getattr(row, column)
        cols = self._values.setdefault(row.uuid, {})
        value = cols.get(column, _ABSENT)
        if value is _ABSENT:
            value = cols[column] = getattr(row, column)
        return value


def update_column(row: Any, column: str, old: Any, new: Any) -> None:
    """Within a transaction, set a row's column from ``old`` (its value now) to ``new``:
    nothing when they are equal, a map's changed keys alone when few changed, else the
    whole value."""
    if old == new or (isinstance(new, set | frozenset) and isinstance(old, list)
                      and set(old) == new):   # (a set column reads as a list)
        return
    if isinstance(old, dict) and isinstance(new, dict):
        gone = old.keys() - new.keys()
        changed = [k for k, v in new.items() if old.get(k, _ABSENT) != v]
        if len(gone) + len(changed) < MUTATE_BELOW * max(len(old), len(new)):
            for k in gone:
                row.delkey(column, k)
            for k in changed:
                row.setkey(column, k, new[k])
            return
    setattr(row, column, new)
