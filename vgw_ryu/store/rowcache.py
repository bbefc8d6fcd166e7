"""What was read from each row of an OVSDB replica, kept until the row changes.

Reading an IDL column converts it from the replica's data on every access; a reader
that looks at thousands of rows after each change (every interface, every VM and rule)
keeps what it read per row uuid, dropped when the replica reports the row changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class RowCache:
    """Per-row results of ``read(row)``; install on an ``ovs.db.idl.Idl`` (its notify)."""

    def __init__(self, idl: Any):
        self._rows: dict[Any, tuple] = {}
        idl.notify = self._changed

    def _changed(self, event: str, row: Any, updates: Any = None) -> None:
        self._rows.pop(row.uuid, None)

    def read(self, row: Any, read: Callable[[Any], tuple]) -> tuple:
        """``read(row)``, from the cache while the row is unchanged."""
        got = self._rows.get(row.uuid)
        if got is None:
            got = self._rows[row.uuid] = read(row)
        return got

    def clear(self) -> None:
        """Forget everything (the next reads convert every row again)."""
        self._rows.clear()
