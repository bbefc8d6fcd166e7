"""The single-machine policy database: a file the controller runs itself.

``--vgw-db FILE`` (the default, /var/lib/vgw_ryu/state.db) is a one-member Raft cluster:
every commit is fsynced before the API answers, and the same file can later grow into a
3- or 5-member cluster with ``vgw-db join-cluster`` on other machines. The controller
starts ``ovsdb-server`` for it as a child that dies with the controller, restarts it if
it exits, and stops it on shutdown. A database file of an earlier version (SQLite) is
imported once and kept aside. No Ryu here.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from vgw_ryu.policy.ids import Ids
from vgw_ryu.policy.model import parse_state
from vgw_ryu.store import server, sqlite_import
from vgw_ryu.store.server import DbError, DbFiles
from vgw_ryu.store.zonefile import ZoneFile

LOG = logging.getLogger("vgw_ryu.store.local")
PR_SET_PDEATHSIG = 1


def is_remote(db: str) -> bool:
    """True if ``--vgw-db`` names servers (``tcp:``, ``ssl:``, ``unix:``), not a file."""
    return all(part.split(":", 1)[0] in ("tcp", "ssl", "unix") and ":" in part
               for part in db.split(","))


def _die_with_parent() -> None:
    # A controller killed with SIGKILL must not leave its database server behind.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class LocalDatabase:
    """One database file and the ``ovsdb-server`` this process runs for it."""

    def __init__(self, path: str | os.PathLike, timeout: float = 10.0):
        self.files = DbFiles(Path(path).absolute())
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None
        self.legacy: tuple[dict[str, Any], int, dict[str, Any]] | None = None
        self.restarts = 0

    @property
    def remote(self) -> str:
        return self.files.remote

    def open(self) -> str:
        """Create (or import) the database if needed, start its server; its remote."""
        f = self.files
        if f.db.exists() and sqlite_import.is_sqlite(f.db):
            try:
                self.legacy = sqlite_import.read(f.db)
            except ValueError as e:
                raise DbError(f"{e}. Refusing to start over it; move it away or restore "
                              "it from a backup.") from None
            aside = f.db.with_name(f.db.name + ".sqlite-imported")
            os.replace(f.db, aside)
            LOG.warning("importing %s (SQLite, from an earlier version; kept as %s) into "
                        "a new policy database", f.db, aside)
        if not f.db.exists():
            server.create(f)
            LOG.info("created the policy database %s (a one-member cluster)", f.db)
        else:
            try:
                server.kind(f)
            except DbError as e:
                raise DbError(f"cannot use the policy database {f.db}: {e}. Refusing to "
                              "start over it; move it away or restore it from a backup."
                              ) from None
        self._start()
        return f.remote

    def _start(self) -> None:
        srv = server.DbServer(self.files)
        if srv.running():
            # Left by a controller that ended without stopping it: use it.
            LOG.info("policy database server for %s already runs (pid %s)",
                     self.files.db, srv.pid())
        else:
            try:
                self.proc = subprocess.Popen(srv.argv(detach=False),
                                             stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL,   # in its log
                                             preexec_fn=_die_with_parent)
            except FileNotFoundError:
                raise DbError("ovsdb-server not found: install Open vSwitch") from None
        server.wait_ready(self.files.remote, self.timeout)

    def supervise(self) -> bool:
        """Restart the server if it exited; True if it had to."""
        if self.proc is None or self.proc.poll() is None:
            return False
        LOG.error("policy database server for %s exited (status %s); restarting it",
                  self.files.db, self.proc.returncode)
        self.proc = None
        self.restarts += 1
        self._start()
        return True

    def close(self) -> None:
        """Stop the server this process started (not one it found running)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def import_legacy(store: Any, zones: ZoneFile,
                  legacy: tuple[dict[str, Any], int, dict[str, Any]]) -> int | None:
    """Write an old database's state (same revision, rule numbers and zones) into an
    empty store; the revision written, or None if the store already has a state."""
    doc, revision, ids_doc = legacy
    if store.revision() != 0 or revision == 0:
        return None
    ids = Ids.from_doc(ids_doc)
    ids.sync(parse_state(doc))
    zones.save(ids.zone_doc())
    return store.write(doc, ids.rule_numbers(), 0, extra={"source": "sqlite-import"},
                       new_revision=revision)
