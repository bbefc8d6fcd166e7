"""The policy in OVSDB: one row per VM, group, policy and rule, read and written with the
``ovs`` IDL.

Every process (all-in-one controller, ``vgw-api``, ``vgw-agent``) keeps a replica of the
``VGW`` database and writes through it. A write is one transaction: the rows that
changed, ``Global.revision + 1`` and the request's id, guarded by ``verify(revision)``;
it returns only after the server answered SUCCESS (a Raft cluster has then committed it
to a majority of disks). ``TRY_AGAIN`` (the revision moved, or the connection dropped
with the outcome unknown) is resolved by looking for the request id in the replica:
found means committed, else the caller recomputes on the newer state. No quorum within
the timeout raises ``StoreUnavailableError``: never a hang. No Ryu here.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import ovs.db.idl
import ovs.poller

from vgw_ryu.store import fastjson
from vgw_ryu.store.columns import ColumnCache, update_column
from vgw_ryu.store.docrows import (
    OBJECT_TABLES,
    Loaded,
    read_document,
    write_document,
    write_objects,
)
from vgw_ryu.store.errors import (
    ConflictError,
    StaleError,
    StoreError,
    StoreUnavailableError,
)
from vgw_ryu.store.keyindex import KeyIndex
from vgw_ryu.store.rowcache import RowCache

# Callers import the store's errors and Loaded from here, with the store.
__all__ = ["CHASSIS_COLUMNS", "KEEP_REQUESTS", "OBJECT_TABLES", "SCHEMA_PATH",
           "ConflictError", "Loaded", "OvsdbStore", "StaleError", "StoreError",
           "StoreUnavailableError"]

# The replica parses every update the database sends: at C speed, not char by char.
fastjson.install()

SCHEMA_PATH = Path(__file__).with_name("vgw.ovsschema")
KEEP_REQUESTS = 256        # request ids remembered in Global.requests (newest kept)
CHASSIS_COLUMNS = ("name", "hostname", "applied_revision", "bridges", "vm_ports",
                   "unknown_ports", "heartbeat", "started", "version", "external_ids")


class OvsdbStore:
    """A replica of the policy database and the writes to it.

    ``remote``: one or more OVSDB remotes, comma-separated (``unix:...``,
    ``tcp:IP:PORT``); any cluster member answers (followers forward writes).
    ``lock``: a lock factory fitting the caller's threads (eventlet's in the Ryu app).
    """

    def __init__(self, remote: str, timeout: float = 5.0,
                 lock: Callable[[], AbstractContextManager] = threading.RLock,
                 connect: bool = True):
        self.remote = remote
        self.path = remote       # what error messages name
        self.timeout = timeout
        self._lock = lock()
        helper = ovs.db.idl.SchemaHelper(location=str(SCHEMA_PATH))
        helper.register_all()
        self.idl = ovs.db.idl.Idl(remote, helper, leader_only=False)
        self._seen_seqno = -1
        # What load() read from each object and rule row, until the row changes:
        # converting every IDL column of 1,000 VMs took most of a refresh. (Shared
        # between loads: callers do not modify what load() returns.)
        self.rows = RowCache(self.idl)
        # A one-object write finds its rows here (a VM's by name, a policy's rules).
        self.keys = KeyIndex(self.idl, {**{t: "name" for t in OBJECT_TABLES.values()},
                                        "Rule": "policy"})
        self._requests_seen: tuple[int, dict[str, int]] = (-1, {})
        # Chassis columns as Python, converted once per value: every report and GET
        # /v1/switches reads them, and a map of 1,000 VM ports took milliseconds.
        self._columns = ColumnCache(self.idl)
        if connect:
            self.wait_connected(timeout)

    # --- the replica -----------------------------------------------------------------
    def _run(self) -> None:
        self.idl.run()

    def _live(self) -> bool:
        """Connected to a member in its cluster, with the replica monitoring it."""
        return (self.idl.has_ever_connected() and self.idl._session.is_connected()
                and self.idl.state == self.idl.IDL_S_MONITORING)

    def _block(self, deadline: float, txn: Any = None) -> None:
        poller = ovs.poller.Poller()
        self.idl.wait(poller)
        if txn is not None:
            txn.wait(poller)
        poller.timer_wait(max(1, min(100, int((deadline - time.monotonic()) * 1000))))
        poller.block()

    def wait_connected(self, timeout: float | None = None) -> None:
        """Block until the replica is complete; StoreUnavailableError after ``timeout``."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        with self._lock:
            while True:
                self._run()
                if self._live():
                    return
                if time.monotonic() >= deadline:
                    raise StoreUnavailableError(f"no policy database answered at {self.remote} "
                                           f"within {timeout or self.timeout:g} s")
                self._block(deadline)

    def synced(self) -> bool:
        """True once the replica has received the database (it may lag if disconnected
        since, but it is never an empty stand-in)."""
        with self._lock:
            return bool(self.idl.has_ever_connected())

    def health(self) -> dict[str, Any]:
        """For GET /v1/health: which member the replica follows, if it is in touch."""
        with self._lock:
            live = self._live()
            return {"remote": self.remote, "connected": live,
                    "member": self.idl.session_name() if live else None,
                    "revision": self._replica_revision()}

    def poll(self) -> bool:
        """Process what the servers sent (non-blocking); True if the replica changed."""
        with self._lock:
            self._run()
            changed = self.idl.change_seqno != self._seen_seqno
            self._seen_seqno = self.idl.change_seqno
            return changed

    def wait(self, timeout: float) -> None:
        """Block until the servers send something or ``timeout`` passes (call poll())."""
        poller = ovs.poller.Poller()
        with self._lock:
            self.idl.wait(poller)
        poller.timer_wait(max(1, int(timeout * 1000)))
        poller.block()

    def _global(self) -> Any:
        rows = list(self.idl.tables["Global"].rows.values())
        return rows[0] if rows else None

    def revision(self) -> int:
        """The revision the replica holds."""
        with self._lock:
            return self._replica_revision()

    def meta(self, key: str) -> str | None:
        """A value written with a state change's ``extra`` (e.g. the seed file's hash)."""
        with self._lock:
            g = self._global()
            return dict(g.meta).get(key) if g is not None else None

    def load(self) -> Loaded:
        """The state document, revision and rule numbers the replica holds."""
        with self._lock:
            return read_document(self.idl, self._global(), self.rows)

    def request_revision(self, request_id: str) -> int | None:
        """The revision a request committed, if the replica has seen it commit."""
        with self._lock:
            return self._committed(request_id)

    # --- writes ----------------------------------------------------------------------
    def write(self, doc: dict[str, Any], rules: dict[str, int], base: int,
              if_match: int | None = None, extra: dict[str, str] | None = None,
              request_id: str | None = None, new_revision: int | None = None,
              touched: dict[str, set[str]] | None = None) -> int:
        """Make the database hold ``doc`` (computed from revision ``base``); the new
        revision (``base + 1``, or ``new_revision`` for an import), after the server
        committed it.

        Only rows that differ are written. ``touched`` (by section, the only objects
        that changed): ``doc`` holds just those (a name absent is deleted) and only
        their rows, and a policy's rules, are looked at; settings stay as they are.
        Raises ConflictError (If-Match is stale), StaleError (the database is past
        ``base``: recompute and call again), StoreUnavailableError (no answer within
        the timeout) or StoreError.
        """
        request_id = request_id or uuid.uuid4().hex
        deadline = time.monotonic() + self.timeout
        refused = None   # a first write's error, while it may still be another's race
        with self._lock:
            while True:
                self._run()
                done = self._committed(request_id)
                if done is not None:
                    return done
                current = self._replica_revision()
                if if_match is not None and if_match != current:
                    raise ConflictError(if_match, current)
                if current != base:
                    raise StaleError(f"the database is at revision {current}, "
                                     f"the write was computed from {base}")
                if not self._live():
                    if time.monotonic() >= deadline:
                        raise self._unavailable()
                    self._block(deadline)
                    continue
                new = new_revision if new_revision is not None else base + 1
                status, txn = self._transact(doc, rules, base, new, extra or {},
                                             request_id, deadline, touched)
                if status == ovs.db.idl.Transaction.SUCCESS:
                    return new
                if status == ovs.db.idl.Transaction.UNCHANGED:
                    return base
                first = status == ovs.db.idl.Transaction.ERROR and base == 0
                if first:
                    refused = txn.get_error()
                if first or status in (ovs.db.idl.Transaction.TRY_AGAIN,
                                       ovs.db.idl.Transaction.INCOMPLETE):
                    # (first: another writer created the Global row at the same time.)
                    # Outcome unknown (connection lost) or the revision moved: the
                    # replica catches up, then the request id says which.
                    if time.monotonic() >= deadline:
                        if refused is not None and self._live():
                            # No other writer's state showed up: the server refused
                            # this write itself.
                            raise StoreError(f"the policy database refused the write: "
                                             f"{refused}")
                        raise self._unavailable()
                    self._block(deadline)
                    continue
                raise StoreError(f"the policy database refused the write: "
                                 f"{txn.get_error()}")

    def _unavailable(self) -> StoreUnavailableError:
        return StoreUnavailableError(f"the policy database at {self.remote} did not commit "
                                f"within {self.timeout:g} s (no server or no quorum); "
                                "nothing was changed by this request, or it will show "
                                "once the database answers")

    def _replica_revision(self) -> int:
        g = self._global()
        return int(g.revision) if g is not None else 0

    def _committed(self, request_id: str) -> int | None:
        return self._requests().get(request_id)

    def _requests(self) -> dict[str, int]:
        """Global.requests as the replica holds it, converted once per replica change
        (reading an IDL map column converts all of it)."""
        seqno = self.idl.change_seqno
        if self._requests_seen[0] != seqno:
            g = self._global()
            self._requests_seen = (seqno, dict(g.requests) if g is not None else {})
        return self._requests_seen[1]

    def _transact(self, doc: dict[str, Any], rules: dict[str, int], base: int, new: int,
                  extra: dict[str, str], request_id: str, deadline: float,
                  touched: dict[str, set[str]] | None = None) -> tuple[int, Any]:
        txn = ovs.db.idl.Transaction(self.idl)
        txn.add_comment(f"vgw_ryu revision {new} request {request_id}")
        g = self._global()
        first = g is None
        if first:
            g = txn.insert(self.idl.tables["Global"])
            g.settings = "{}"
            g.expectations = ""
            g.requests = {request_id: new}
            g.meta = {}
        else:
            g.verify("revision")
        g.revision = new
        if not first:
            # Mutations, not the whole map: the request ids written and dropped.
            g.setkey("requests", request_id, new)
            held = self._requests()
            if len(held) >= KEEP_REQUESTS:
                for rid, _ in sorted(held.items(), key=lambda kv: kv[1])[
                        :len(held) + 1 - KEEP_REQUESTS]:
                    g.delkey("requests", rid)
        if extra:
            g.meta = {**dict(g.meta), **extra}
        if touched is not None:
            write_objects(self.idl, self.keys, txn, doc, rules, touched)
        else:
            write_document(self.idl, txn, g, doc, rules)
        return self._commit(txn, deadline), txn

    def _commit(self, txn: Any, deadline: float) -> int:
        """Commit and wait for the answer; INCOMPLETE (aborted) at the deadline."""
        status = txn.commit()
        while status == ovs.db.idl.Transaction.INCOMPLETE:
            if time.monotonic() >= deadline:
                txn.abort()
                return status
            self.idl.run()
            self._block(deadline, txn)
            status = txn.commit()
        return status

    # --- chassis -----------------------------------------------------------------------
    def chassis(self) -> list[dict[str, Any]]:
        """Every agent's report (``Chassis`` rows) as dicts."""
        with self._lock:
            out = []
            for r in self.idl.tables["Chassis"].rows.values():
                c = {k: self._columns.get(r, k) for k in CHASSIS_COLUMNS}
                out.append({"name": c["name"], "hostname": c["hostname"],
                            "applied_revision": int(c["applied_revision"]),
                            "bridges": dict(c["bridges"]), "vm_ports": dict(c["vm_ports"]),
                            "unknown_ports": sorted(c["unknown_ports"]),
                            "heartbeat": int(c["heartbeat"]), "started": int(c["started"]),
                            "version": c["version"],
                            "external_ids": dict(c["external_ids"])})
            return sorted(out, key=lambda c: c["name"])

    def report_chassis(self, name: str, fields: dict[str, Any]) -> bool:
        """Create or update this agent's ``Chassis`` row; False if it could not commit
        within the timeout (the next report tries again). Only the columns that differ
        are written, and of a map only the keys that differ: a VM plugged at 1,000 VMs
        sends one port, not all of them."""
        deadline = time.monotonic() + self.timeout
        with self._lock:
            self._run()
            if not self._live():
                return False
            txn = ovs.db.idl.Transaction(self.idl)
            row = next((r for r in self.idl.tables["Chassis"].rows.values()
                        if self._columns.get(r, "name") == name), None)
            if row is None:
                row = txn.insert(self.idl.tables["Chassis"])
                row.name = name
                for k, v in fields.items():
                    setattr(row, k, v)
            else:
                for k, v in fields.items():
                    update_column(row, k, self._columns.get(row, k), v)
            status = self._commit(txn, deadline)
            return status in (ovs.db.idl.Transaction.SUCCESS,
                              ovs.db.idl.Transaction.UNCHANGED)

    def close(self) -> None:
        with self._lock:
            self.idl.close()

