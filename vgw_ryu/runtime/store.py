"""Durable desired state: SQLite in WAL mode, one transaction per write.

Holds the state document, its revision, the id map (zones, rule numbers) and the hash
of the last seed file applied. A write returns only after COMMIT, so an answered write
survives a crash. A database that cannot be read stops the controller with a clear
message (``StoreError``); it is never replaced by an empty one. No Ryu here.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


class StoreError(RuntimeError):
    """The database is unusable; the message says which file and why."""


class ConflictError(RuntimeError):
    """An If-Match revision that is not the current one."""

    def __init__(self, expected: int, current: int):
        super().__init__(f"revision {expected} is stale; current revision is {current}")
        self.expected = expected
        self.current = current


class Store:
    """The state document and its metadata in one SQLite file."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            existed = self.path.exists() and self.path.stat().st_size > 0
            self.db = sqlite3.connect(str(self.path), isolation_level=None,
                                      check_same_thread=False)
        except sqlite3.DatabaseError as e:
            raise StoreError(f"cannot open database {self.path}: {e}") from e
        except OSError as e:
            raise StoreError(f"cannot open database {self.path}: {e}") from e
        try:
            # Check before the first write (WAL mode writes the header): a file that is
            # not ours is left exactly as it was.
            if existed:
                self._check_existing()
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            if not existed:
                self._create()
        except (sqlite3.DatabaseError, ValueError) as e:
            self.db.close()
            raise StoreError(f"cannot use database {self.path}: {e}. Refusing to start "
                             "over it; move it away or restore it from a backup.") from e
        except OSError as e:
            raise StoreError(f"cannot open database {self.path}: {e}") from e

    def _create(self) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, "
                            "value TEXT NOT NULL)")
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)",
                            (str(SCHEMA_VERSION),))
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('revision', '0')")
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('state', '{}')")
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('ids', '{}')")
            self.db.execute("COMMIT")

    def _check_existing(self) -> None:
        row = self.db.execute("PRAGMA integrity_check").fetchone()
        if not row or row[0] != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {row}")
        try:
            meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.OperationalError as e:
            raise sqlite3.DatabaseError(f"not a vgw_ryu database ({e})") from None
        for key in ("schema", "revision", "state", "ids"):
            if key not in meta:
                raise sqlite3.DatabaseError(f"not a vgw_ryu database (no {key!r})")
        if not str(meta["schema"]).isdigit() or int(meta["schema"]) != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"schema version {meta['schema']} is not "
                                        f"{SCHEMA_VERSION}")
        try:
            json.loads(meta["state"])
            json.loads(meta["ids"])
        except ValueError as e:
            raise sqlite3.DatabaseError(f"stored state is not JSON ({e})") from None

    def _get(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def load(self) -> tuple[dict[str, Any], int, dict[str, Any]]:
        """(state document, revision, id map) as last committed."""
        with self._lock:
            return (json.loads(self._get("state") or "{}"), int(self._get("revision") or 0),
                    json.loads(self._get("ids") or "{}"))

    def revision(self) -> int:
        with self._lock:
            return int(self._get("revision") or 0)

    def meta(self, key: str) -> str | None:
        with self._lock:
            return self._get(f"x-{key}")

    def write(self, state_doc: dict[str, Any], ids_doc: dict[str, Any],
              if_match: int | None = None, extra: dict[str, str] | None = None) -> int:
        """Replace the state in one transaction; returns the new revision after COMMIT."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                current = int(self._get("revision") or 0)
                if if_match is not None and if_match != current:
                    raise ConflictError(if_match, current)
                rev = current + 1
                self.db.execute("UPDATE meta SET value = ? WHERE key = 'state'",
                                (json.dumps(state_doc, sort_keys=True),))
                self.db.execute("UPDATE meta SET value = ? WHERE key = 'ids'",
                                (json.dumps(ids_doc, sort_keys=True),))
                self.db.execute("UPDATE meta SET value = ? WHERE key = 'revision'",
                                (str(rev),))
                for k, v in (extra or {}).items():
                    self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                    (f"x-{k}", v))
                self.db.execute("COMMIT")
                return rev
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def write_ids(self, ids_doc: dict[str, Any]) -> None:
        """Persist the id map alone (new zones for VMs seen before any write)."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("UPDATE meta SET value = ? WHERE key = 'ids'",
                            (json.dumps(ids_doc, sort_keys=True),))
            self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()
