"""The running ``ovsdb-server`` of the policy database (``VGW``): start, stop, readiness
and status.

A ``DbServer`` serves one database file (see ``dblocation``), made beforehand with
``create`` or ``join`` (see ``dbtool``); it listens on the remotes remembered in the
file's config. The names of those two modules are re-exported here, so that callers
import everything about the database server from this one module.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from vgw_ryu.store.dblocation import (
    DB_FILE_NAME,
    DB_NAME,
    DEFAULT_DATA_DIR,
    SCHEMA_PATH,
    DbError,
    DbFiles,
    check_active,
    check_passive,
    client_remote,
)
from vgw_ryu.store.dbtool import create, join, kind, read_config, run_checked, run_tool

__all__ = ["DB_FILE_NAME", "DB_NAME", "DEFAULT_DATA_DIR", "SCHEMA_PATH", "DbError",
           "DbFiles", "DbServer", "check_active", "check_passive", "client_remote",
           "create", "join", "kind", "read_config", "wait_ready"]

_LOG_TAIL_LINES = 15
_SERVER_RE = re.compile(r"^\s+(?P<name>\S+) \((?P<id>[0-9a-f]+) at (?P<addr>\S+)\)(?P<rest>.*)$")


# --- waiting -----------------------------------------------------------------------------
def _poll(pred: Callable[[], Any], timeout: float) -> Any:
    """Call ``pred`` until it returns something truthy or the deadline passes.

    Polls start at 10 ms and back off to 200 ms: fast when the answer is near, and
    light on the CPU when waiting for an election.
    """
    deadline = time.monotonic() + timeout
    interval = 0.01
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(min(interval, max(deadline - time.monotonic(), 0)))
        interval = min(interval * 1.5, 0.2)


# --- readiness ---------------------------------------------------------------------------
_SERVER_QUERY = json.dumps([
    "_Server", {"op": "select", "table": "Database", "where": [["name", "==", DB_NAME]],
                "columns": ["model", "connected", "leader", "sid", "cid", "index"]}])


def _server_row(remote: str, timeout: float) -> tuple[dict[str, Any] | None, str]:
    """The ``_Server`` row of VGW at ``remote`` (None and why, if it does not answer)."""
    secs = str(max(1, math.ceil(timeout)))
    try:
        p = run_tool(["ovsdb-client", f"--timeout={secs}", "transact", remote,
                      _SERVER_QUERY], timeout + 1)
    except DbError as e:
        return None, str(e)
    if p.returncode != 0:
        return None, p.stderr.strip() or f"ovsdb-client exit {p.returncode}"
    try:
        rows = json.loads(p.stdout)[0]["rows"]
    except (ValueError, LookupError, TypeError):
        return None, f"unexpected answer {p.stdout.strip()[:200]!r}"
    if not rows:
        return None, f"the server has no database {DB_NAME}"
    return rows[0], ""


def wait_ready(remote: str, timeout: float, *, connected: bool = True) -> None:
    """Return once a client can use VGW at ``remote`` (any of a comma-separated list).

    With ``connected`` (the default) a clustered database must also be in contact with
    a majority of its cluster, so that transactions go through; without it, answering
    is enough.
    """
    deadline = time.monotonic() + timeout
    last = "no answer"

    def ready() -> bool:
        nonlocal last
        for r in remote.split(","):
            row, why = _server_row(r, min(2.0, max(deadline - time.monotonic(), 0.5)))
            if row is None:
                last = f"{r}: {why}"
            elif connected and not row.get("connected"):
                last = f"{r}: {DB_NAME} is not connected to its cluster (no majority yet)"
            else:
                return True
        return False

    if not _poll(ready, timeout):
        raise DbError(f"{DB_NAME} at {remote} not ready after {timeout:g}s: {last}")


# --- processes ---------------------------------------------------------------------------
def _proc_state(pid: int) -> str | None:
    """The /proc state letter of ``pid`` (None: no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return "?"
    return stat.rsplit(")", 1)[-1].split()[0]


def _log_tail(path: Path, start: int = 0, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class DbServer:
    """One ovsdb-server for one database file."""

    def __init__(self, files: DbFiles, listen: Iterable[str] | None = None) -> None:
        self.files = files
        if listen is None:
            listen = read_config(files).get("listen", [])
        self.listen = [check_passive(r) for r in listen]
        self._proc: subprocess.Popen[bytes] | None = None

    def argv(self, detach: bool) -> list[str]:
        """The ovsdb-server command line."""
        f = self.files
        args = ["ovsdb-server"]
        if detach:
            args.append("--detach")
        args += [f"--pidfile={f.pid}", f"--unixctl={f.ctl}", f"--remote=punix:{f.sock}",
                 *(f"--remote={r}" for r in self.listen), f"--log-file={f.log}",
                 # The log file has everything; the console only repeats problems.
                 "-vconsole:warn", str(f.db)]
        return args

    @property
    def remotes(self) -> list[str]:
        """Where clients connect: the unix socket, then each listen remote."""
        return [self.files.remote, *(client_remote(r) for r in self.listen)]

    # -- state --
    def pid(self) -> int | None:
        """The pid of the running ovsdb-server of this file, or None."""
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None
        try:
            pid = int(self.files.pid.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if self._is_ours(pid) else None

    def _is_ours(self, pid: int) -> bool:
        # A pid file outlives a killed server and pids are reused, so check that the
        # process is a live (not zombie: our detached servers are reparented to an init
        # that may never reap them) ovsdb-server of this very file.
        state = _proc_state(pid)
        if state is None or state in "ZX":
            return False
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return (bool(argv) and os.path.basename(argv[0]) == b"ovsdb-server"
                and os.fsencode(str(self.files.db)) in argv)

    def running(self) -> bool:
        return self.pid() is not None

    def _alive(self) -> bool:
        # A spawned child may not have written its pid file yet: ask the child itself.
        if self._proc is not None:
            return self._proc.poll() is None
        return self.running()

    # -- start --
    def _refuse_if_running(self) -> None:
        pid = self.pid()
        if pid is not None:
            raise DbError(f"ovsdb-server for {self.files.db} is already running (pid {pid})")
        if not self.files.db.exists():
            raise DbError(f"{self.files.db}: no such database file (create it first)")

    def spawn(self, *, stdout: Any = None, stderr: Any = None) -> subprocess.Popen[bytes]:
        """Run ovsdb-server in the foreground as a child, for supervisors.

        Returns at once; ``wait_ready(files.remote, ...)`` waits until it answers.
        """
        self._refuse_if_running()
        try:
            self._proc = subprocess.Popen(self.argv(detach=False), stdin=subprocess.DEVNULL,
                                          stdout=stdout, stderr=stderr)
        except FileNotFoundError:
            raise DbError("ovsdb-server not found: install Open vSwitch") from None
        return self._proc

    def start(self, detach: bool = True, timeout: float = 10.0) -> None:
        """Start ovsdb-server and return once it answers on its unix socket.

        A clustered member answers before it reaches its cluster (a restarted member
        waits for a majority); ``wait_ready`` waits for that too.
        """
        deadline = time.monotonic() + timeout
        self._refuse_if_running()
        log_start = _log_size(self.files.log)
        if detach:
            # The parent returns once the daemon has opened the database and remotes.
            p = run_tool(self.argv(detach=True), timeout)
            if p.returncode != 0:
                raise DbError(self._failure(f"exit {p.returncode}", log_start, p.stderr))
        else:
            self.spawn()

        def answers() -> bool:
            return not self._alive() or _server_row(self.files.remote, 1.0)[0] is not None

        if not _poll(answers, max(deadline - time.monotonic(), 0.1)):
            self.stop(timeout=5)
            raise DbError(self._failure(f"no answer on {self.files.remote} within "
                                        f"{timeout:g}s", log_start))
        if not self._alive():
            raise DbError(self._failure("it exited", log_start))
        # ovsdb-server keeps running (retrying) when it cannot bind a listen remote;
        # a server that silently lacks its TCP remote is worse than a clear failure.
        bad = [ln for ln in _log_tail(self.files.log, log_start, 1000).splitlines()
               if "listen failed" in ln]
        if bad:
            self.stop(timeout=5)
            raise DbError(f"ovsdb-server for {self.files.db} could not listen: "
                          f"{bad[0].rsplit('|', 1)[-1]} (stopped it; see {self.files.log})")

    def _failure(self, what: str, log_start: int, stderr: str = "") -> str:
        tail = _log_tail(self.files.log, log_start) or stderr.strip()
        msg = f"ovsdb-server for {self.files.db} failed to start ({what})"
        return f"{msg}; {self.files.log}:\n{tail}" if tail else msg

    # -- stop --
    def _wait_gone(self, pid: int, timeout: float) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            try:
                self._proc.wait(timeout=max(timeout, 0))   # reaps our own child
            except subprocess.TimeoutExpired:
                return False
            self._proc = None
            return True
        return bool(_poll(lambda: not self._is_ours(pid), timeout))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (``ovs-appctl exit``, then SIGTERM); no-op when stopped."""
        pid = self.pid()
        if pid is None:
            return
        deadline = time.monotonic() + timeout
        with contextlib.suppress(DbError):  # a wedged server: SIGTERM below
            run_tool(["ovs-appctl", f"--timeout={max(1, math.ceil(timeout / 2))}", "-t",
                      str(self.files.ctl), "exit"], timeout / 2)
        if self._wait_gone(pid, max(deadline - time.monotonic(), 0) / 2):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not self._wait_gone(pid, max(deadline - time.monotonic(), 0.5)):
            raise DbError(f"ovsdb-server pid {pid} for {self.files.db} did not exit "
                          f"within {timeout:g}s of exit and SIGTERM")

    def kill(self) -> None:
        """SIGKILL the server (a crash, for chaos tests); leaves its pid file behind."""
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not self._wait_gone(pid, 5.0):
            raise DbError(f"ovsdb-server pid {pid} for {self.files.db} survived SIGKILL")

    # -- status --
    def status(self, timeout: float = 5.0) -> dict[str, Any]:
        """Kind, Raft role/term/leader/servers and connectivity of the running server."""
        pid = self.pid()
        if pid is None:
            raise DbError(f"ovsdb-server for {self.files.db} is not running")
        row, why = _server_row(self.files.remote, timeout)
        if row is None:
            raise DbError(f"ovsdb-server for {self.files.db} (pid {pid}) does not answer: {why}")
        ctl = ["ovs-appctl", f"--timeout={max(1, math.ceil(timeout))}", "-t",
               str(self.files.ctl)]
        # The unix socket first, as in DbServer.remotes.
        listen = sorted(run_checked([*ctl, "ovsdb-server/list-remotes"], timeout).split(),
                        key=lambda r: not r.startswith("punix:"))
        st: dict[str, Any] = {
            "db": str(self.files.db), "pid": pid, "kind": row.get("model"),
            "role": "standalone", "term": None, "leader": None, "is_leader": True,
            "connected": bool(row.get("connected")), "status": None, "address": None,
            "servers": [], "remotes": [client_remote(r) for r in listen], "listen": listen}
        if st["kind"] == "clustered":
            text = run_checked([*ctl, "cluster/status", DB_NAME], timeout)
            st.update(parse_cluster_status(text))
            st["is_leader"] = bool(row.get("leader"))
        return st


def parse_cluster_status(text: str) -> dict[str, Any]:
    """The fields of ``ovs-appctl cluster/status`` output that status() reports."""
    fields: dict[str, str] = {}
    servers: list[dict[str, Any]] = []
    for line in text.splitlines():
        m = _SERVER_RE.match(line)
        if m:
            servers.append({"id": m["id"], "name": m["name"], "address": m["addr"],
                            "self": "(self)" in m["rest"]})
        elif ": " in line and not line.startswith(" "):
            key, _, value = line.partition(": ")
            fields[key.strip()] = value.strip()
    own = fields.get("Address")
    leader = fields.get("Leader", "unknown")
    if leader == "self":
        leader_addr: str | None = own
    else:
        leader_addr = next((s["address"] for s in servers if s["id"] == leader), None)
    term = fields.get("Term", "")
    return {"role": fields.get("Role", "unknown"),
            "term": int(term) if term.isdigit() else None,
            "leader": leader_addr, "status": fields.get("Status"), "address": own,
            "sid": fields.get("Server ID", "").split(" ")[0] or None,
            "servers": servers}
