"""The pieces a fleet (vgw_lab.fleet) is made of: a policy-database member, a ``vgw-api``
server and an agent, each with what it needs to be reached and stopped; and the
``vgw-db`` CLI that creates, starts and stops the members.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vgw_lab import netlab
from vgw_lab.netlab import VENV_BIN, Bridge
from vgw_ryu.api.client import Client
from vgw_ryu.store.server import DbFiles, DbServer


def vgwdb(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the ``vgw-db`` CLI (argument list, no shell); RuntimeError on failure."""
    p = subprocess.run([str(VENV_BIN / "vgw-db"), *args], capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise RuntimeError(f"vgw-db {' '.join(args)} -> {p.returncode}: "
                           f"{(p.stderr or p.stdout).strip()}")
    return p


@dataclass
class Member:
    """One database member: its file, Raft address and client remote (loopback TCP)."""

    index: int
    files: DbFiles
    raft: str          # tcp:127.0.0.1:P, the Raft address
    remote: str        # tcp:127.0.0.1:P, where clients connect

    @property
    def name(self) -> str:
        """``db0``, ``db1``, ...: how logs and ``Fleet.where()`` name it."""
        return f"db{self.index}"

    def running(self) -> bool:
        """Its ovsdb-server runs (by its pid file, checked to serve this file)."""
        return DbServer(self.files, listen=[]).running()

    def pid(self) -> int | None:
        """The pid of its running ovsdb-server, or None."""
        return DbServer(self.files, listen=[]).pid()

    def status(self) -> dict[str, Any] | None:
        """``vgw-db status --json`` of this member; None when it is not running or
        does not answer."""
        if not self.running():
            return None
        try:
            return json.loads(vgwdb("status", "--json", "--db", str(self.files.db),
                                    "--timeout", "3", timeout=20).stdout)
        except (RuntimeError, ValueError, subprocess.TimeoutExpired):
            return None


@dataclass
class ApiServer:
    """One ``vgw-api`` process."""

    index: int
    port: int
    log_path: Path
    argv: list[str]
    token: str | None = None
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """Its REST base URL (loopback)."""
        return f"http://127.0.0.1:{self.port}"

    def client(self, timeout: float = 30) -> Client:
        """A REST client of this server, with the fleet's token."""
        return Client(self.url, self.token, timeout=timeout)

    def log_text(self) -> str:
        """Its log so far ("" before it was started)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


@dataclass
class Agent:
    """One hypervisor's agent (the Ryu app) and the bridges it programs."""

    index: int
    name: str                       # its chassis name
    ctl: netlab.Controller
    zones_file: Path
    bridges: list[Bridge] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The agent's own REST base URL (its health and switches)."""
        return self.ctl.url

    def running(self) -> bool:
        """Its process was started and has not exited."""
        return self.ctl.proc is not None and self.ctl.proc.poll() is None
