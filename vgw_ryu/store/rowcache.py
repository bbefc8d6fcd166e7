"""What was read from each row of an OVSDB replica, kept until the row changes.

Reading an IDL column converts it from the replica's data on every access; a reader
that looks at thousands of rows after each change (every interface, every VM and rule)
keeps what it read per row uuid, dropped when the replica reports the row changed.
A tracking cache also collects the changed rows' uuids, for readers that rebuild only
what those rows touch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class RowCache:
    """Per-row results of ``read(row)``; install on an ``ovs.db.idl.Idl`` (its notify)."""

    def __init__(self, idl: Any, track: bool = False):
        self._rows: dict[Any, tuple] = {}
        self._changed_rows: set[Any] | None = set() if track else None
        idl.notify = self._changed

    def _changed(self, event: str, row: Any, updates: Any = None) -> None:
        self._rows.pop(row.uuid, None)
        if self._changed_rows is not None:
            self._changed_rows.add(row.uuid)

    def take_changed(self) -> set[Any]:
        """The uuids of the rows changed (created, modified, deleted) since the last call;
        a cache made with ``track=True`` only."""
        if self._changed_rows is None:
            raise TypeError("this RowCache does not track changed rows")
        out, self._changed_rows = self._changed_rows, set()
        return out

    def read(self, row: Any, read: Callable[[Any], tuple]) -> tuple:
        """``read(row)``, from the cache while the row is unchanged."""
        got = self._rows.get(row.uuid)
        if got is None:
            got = self._rows[row.uuid] = read(row)
        return got

    def clear(self) -> None:
        """Forget everything (the next reads convert every row again)."""
        self._rows.clear()
