"""Rows of an OVSDB replica by one column's value (a VM's row by its name, a policy's
rules by the policy), kept from the replica's row notifications.

The IDL's own indexes (``Idl.index_create``) keep a sorted list per index compared by a
Python function, and update it on every column set in a transaction and every row the
server sends: writing 5,000 VMs spent more time there than in everything else the store
does. Here a value maps to a set of row uuids; a lookup checks each row still exists and
still has the value, so an entry left behind (a replica emptied on reconnect, a renamed
row) is never returned, only dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Notify = Callable[..., None]


class KeyIndex:
    """Row uuids by (table, value of that table's key column)."""

    def __init__(self, idl: Any, columns: dict[str, str]):
        self.idl = idl
        self.columns = dict(columns)
        self._uuids: dict[tuple[str, Any], set[Any]] = {}
        # Chained after whatever listens already (the store's row cache).
        self._next: Notify = idl.notify
        idl.notify = self._changed

    def _changed(self, event: str, row: Any, updates: Any = None) -> None:
        self._next(event, row, updates)
        table = row._table.name
        column = self.columns.get(table)
        if column is None:
            return
        value = getattr(row, column, None)
        if value is None:
            return
        if event == "delete":
            uuids = self._uuids.get((table, value))
            if uuids is not None:
                uuids.discard(row.uuid)
                if not uuids:
                    del self._uuids[(table, value)]
            return
        self._uuids.setdefault((table, value), set()).add(row.uuid)

    def rows(self, table: str, value: Any) -> list[Any]:
        """The replica's rows of ``table`` whose key column is ``value``."""
        uuids = self._uuids.get((table, value))
        if not uuids:
            return []
        column = self.columns[table]
        rows = self.idl.tables[table].rows
        found, gone = [], []
        for uuid in uuids:
            row = rows.get(uuid)
            if row is not None and getattr(row, column, None) == value:
                found.append(row)
            else:
                gone.append(uuid)
        for uuid in gone:
            uuids.discard(uuid)
        if not uuids:
            del self._uuids[(table, value)]
        return found
