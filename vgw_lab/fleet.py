"""A fleet on one machine: N policy-database members, K ``vgw-api`` servers and M agents.

Every piece is a real process started the way an operator starts it: the members with
the ``vgw-db`` CLI (``create-cluster``, ``join-cluster``, ``start``), the API servers as
``vgw-api``, each agent as ``ryu-manager vgw_ryu.app`` (netlab.Controller) with
``--vgw-db`` naming the members' remotes and its own bridges on the system Open vSwitch.
Ports are free ones, names are unique to this process, files live in one directory.

``Fleet.stop()`` removes exactly what this fleet started: its agents and API servers
by their Popen handles, its members by their pid files (``vgw-db stop``, checked to be
an ovsdb-server of this fleet's own file), its bridges by name. Nothing is looked up by
process name, and no other bridge is touched. What an agent's bridge must hold, and
what it holds, is compared with ``vgw_lab.flowtable`` (also importable from here).

    with Fleet(workdir, members=3, apis=2, agents=2) as fleet:
        fleet.api(0).call("PUT", "/v1/vms/a", {...})
        lead = fleet.leader()
        fleet.kill_member(lead)          # SIGKILL, a crash
        fleet.start_member(lead)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vgw_lab import netlab
from vgw_lab.fleetparts import Agent, ApiServer, Member, vgwdb
from vgw_lab.flowtable import (
    STATS,
    bridge_ifaces,
    compiled_table,
    durations,
    table_text,
    wait_compiled,
)
from vgw_lab.netlab import VENV_BIN, Bridge, free_port, sh, uniq, wait_until
from vgw_ryu.api.client import ApiError, Client
from vgw_ryu.store.server import DbError, DbFiles, DbServer, wait_ready

# The fleet's pieces (vgw_lab.fleetparts) and the flow-table helpers (vgw_lab.flowtable)
# have modules of their own; importers of vgw_lab.fleet keep finding them here.
__all__ = [
    "FAILOVER", "START", "STATS", "Agent", "ApiServer", "Fleet", "Member", "bridge_ifaces",
    "compiled_table", "default_workdir", "durations", "table_text", "vgwdb", "vm_port",
    "wait_compiled",
]

FAILOVER = 20.0    # seconds a leader election may take here (election timer 1 s)
START = 30.0       # seconds a process may take to answer after it was started
ZONE_BLOCK = 4000  # conntrack zones per lab agent (16 agents fit in 1-65535)
ZONE_BLOCKS = 16


class Fleet:
    """Members, API servers and agents on this machine; see the module docstring.

    ``agent_args`` are extra agent options; ``api_args`` extra ``vgw-api`` options
    (e.g. ``["--db-timeout", "3"]``); ``bridges`` is the number of bridges per agent.
    """

    def __init__(self, workdir: Path | None = None, members: int = 3, apis: int = 2,
                 agents: int = 2, bridges: int = 1, agent_args: list[str] | None = None,
                 api_args: list[str] | None = None, token: str | None = None,
                 on_started: Callable[[], None] | None = None):
        self._own_dir = workdir is None
        self.dir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="vgw-fleet-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.n_members, self.n_apis, self.n_agents = members, apis, agents
        self.bridges_per_agent = bridges
        self.agent_args = list(agent_args or [])
        self.api_args = list(api_args or [])
        self.token = token
        self.members: list[Member] = []
        self.apis: list[ApiServer] = []
        self.agents: list[Agent] = []
        self.tag = uniq("f")      # this fleet's name part, e.g. f1234x0
        self.warnings: list[str] = []   # failures it worked around (see start_member)
        # Called as each process is started (before it is waited for), so a caller can
        # record it: a runner killed during start-up leaves nothing unrecorded.
        self.on_started = on_started

    # --- the whole fleet ------------------------------------------------------------
    @property
    def db_remote(self) -> str:
        """The members' client remotes, comma-joined (what vgw-api and agents get)."""
        return ",".join(m.remote for m in self.members)

    def start(self) -> Fleet:
        """Create and start everything; on failure, stop what was started and raise."""
        try:
            self._create_members()
            for m in self.members:
                self.start_member(m, wait=False)
            for m in self.members:
                wait_ready(m.files.remote, START)
            for i in range(self.n_apis):
                self.apis.append(self._new_api(i))
                self.start_api(self.apis[-1])
            for _ in range(self.n_agents):
                self.add_agent(self.bridges_per_agent)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, remove_dir: bool | None = None) -> list[str]:
        """Stop what this fleet started, agents first (they would log the database
        going away); returns problems (empty when everything is gone)."""
        problems: list[str] = []
        for a in self.agents:
            a.ctl.stop()
            for br in a.bridges:
                netlab.delete_bridge(br)
        for s in self.apis:
            self.stop_api(s)
        for m in self.members:
            try:
                self.stop_member(m)
            except (RuntimeError, DbError) as e:
                try:
                    DbServer(m.files, listen=[]).kill()
                except DbError as e2:
                    problems.append(f"{m.name}: {e}; {e2}")
        if remove_dir if remove_dir is not None else (self._own_dir and not problems):
            shutil.rmtree(self.dir, ignore_errors=True)
        return problems

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def where(self) -> list[str]:
        """Lines saying where everything runs: members (role), API URLs, agents."""
        lines = []
        for m in self.members:
            st = m.status()
            role = "down" if st is None else (
                f"{st['role']}{'' if st['connected'] else ', not connected'}")
            lines.append(f"member {m.name}: {m.remote} (raft {m.raft}, {role}; "
                         f"{m.files.db})")
        for s in self.apis:
            lines.append(f"api {s.index}: {s.url} (log {s.log_path})")
        for a in self.agents:
            lines.append(f"agent {a.name}: OpenFlow 127.0.0.1:{a.ctl.of_port}, REST "
                         f"{a.url}, bridges {', '.join(b.name for b in a.bridges)} "
                         f"(log {a.ctl.log_path})")
        return lines

    def _started(self) -> None:
        if self.on_started is not None:
            self.on_started()

    # --- members --------------------------------------------------------------------
    def _create_members(self) -> None:
        raft = [f"tcp:127.0.0.1:{free_port()}" for _ in range(self.n_members)]
        for i in range(self.n_members):
            port = free_port()
            m = Member(i, DbFiles(self.dir / f"db{i}" / "vgw.db"), raft[i],
                       f"tcp:127.0.0.1:{port}")
            listen = ["--listen", f"ptcp:{port}:127.0.0.1"]
            if i == 0:
                vgwdb("create-cluster", "--db", str(m.files.db), "--local", raft[0], *listen)
            else:
                vgwdb("join-cluster", "--db", str(m.files.db), "--local", raft[i],
                      *(a for r in raft[:i] for a in ("--remote", r)), *listen)
            self.members.append(m)
            self._started()

    def start_member(self, m: Member, wait: bool = True) -> None:
        """``vgw-db start``; with ``wait``, until it answers on its unix socket."""
        try:
            vgwdb("start", "--db", str(m.files.db))
        except RuntimeError as e:
            # A joining member drops its clients when it reaches the cluster
            # ("disconnecting (database VGW connected to storage)" in its log), and
            # `vgw-db start` may take that for "does not answer" although the server
            # runs. Starting again is a no-op for a running server: let it decide.
            if not m.running():
                raise
            self.warnings.append(f"{m.name}: {e}")
            vgwdb("start", "--db", str(m.files.db))
        self._started()
        if wait:
            wait_ready(m.files.remote, START, connected=False)

    def stop_member(self, m: Member) -> None:
        """``vgw-db stop`` (a clean exit); a no-op when it is not running."""
        vgwdb("stop", "--db", str(m.files.db))

    def kill_member(self, m: Member) -> None:
        """SIGKILL the member's ovsdb-server (a crash); its pid file stays behind."""
        DbServer(m.files, listen=[]).kill()

    def leader(self) -> Member | None:
        """The one running member that says it leads and is connected, or None."""
        found = []
        for m in self.members:
            st = m.status()
            if st is not None and st["role"] == "leader" and st["connected"]:
                found.append(m)
        return found[0] if len(found) == 1 else None

    def wait_leader(self, timeout: float = FAILOVER, exclude: Member | None = None
                    ) -> Member:
        """Wait until one member leads (other than ``exclude``); that member."""
        def other_leader() -> Member | None:
            m = self.leader()
            return m if m is not exclude else None
        return wait_until(other_leader, timeout=timeout, interval=0.2,
                          what="a database leader" + (f" other than {exclude.name}"
                                                      if exclude else ""))

    def members_connected(self) -> bool:
        """Every member runs and is in contact with its cluster."""
        sts = [m.status() for m in self.members]
        return all(st is not None and st["connected"] for st in sts)

    # --- API servers ----------------------------------------------------------------
    def _new_api(self, i: int, extra: list[str] | None = None) -> ApiServer:
        port = free_port()
        argv = [str(VENV_BIN / "vgw-api"), "--db", self.db_remote, "--listen",
                f"127.0.0.1:{port}", *self.api_args, *(extra or [])]
        if self.token:
            argv += ["--token", self.token]
        return ApiServer(i, port, self.dir / f"api{i}.log", argv, self.token)

    def start_api(self, s: ApiServer, wait: bool = True) -> None:
        """Start a vgw-api; with ``wait``, until GET /v1/health answers."""
        with open(s.log_path, "ab") as log:
            s.proc = subprocess.Popen(s.argv, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        self._started()
        if not wait:
            return
        deadline = time.monotonic() + START
        while True:
            # Not wait_until: it would take an exit for a passing error and keep waiting.
            if s.proc.poll() is not None:
                raise RuntimeError(f"vgw-api {s.index} exited with {s.proc.returncode}:\n"
                                   f"{s.log_text()[-3000:]}")
            try:
                if s.client(timeout=2).request("GET", "/v1/health")[0] == 200:
                    return
            except ApiError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"vgw-api {s.index} did not answer on {s.url} within "
                                   f"{START:g} s:\n{s.log_text()[-3000:]}")
            time.sleep(0.1)

    def stop_api(self, s: ApiServer, sig: int = signal.SIGTERM) -> None:
        """Stop a vgw-api (``sig``, SIGKILL after 10 s); a no-op when it is not running."""
        if s.proc is not None and s.proc.poll() is None:
            s.proc.send_signal(sig)
            try:
                s.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                s.proc.kill()
                s.proc.wait(timeout=10)
        s.proc = None

    def api(self, i: int = 0, timeout: float = 30) -> Client:
        """A client of API server ``i``."""
        return self.apis[i].client(timeout)

    # --- agents ---------------------------------------------------------------------
    def add_agent(self, bridges: int = 1, name: str | None = None,
                  bridge_names: list[str] | None = None) -> Agent:
        """Start one more agent with its own work directory and ``bridges`` new bridges
        (or bridges named ``bridge_names`` that the caller made) pointed at it."""
        i = len(self.agents)
        name = name or f"{self.tag}a{i}"
        wd = self.dir / f"agent{i}"
        wd.mkdir(exist_ok=True)
        zones = wd / "zones.json"
        args = ["--vgw-chassis", name, "--vgw-zones-file", str(zones), *self.agent_args]
        if not any(a.startswith("--vgw-zone-range") for a in self.agent_args):
            # These "hypervisors" share one ovs-vswitchd, so one connection table:
            # each agent numbers its VMs in a range of its own, as separate hosts'
            # tables are separate (equal zones would mix two VMs' connections).
            first = (i % ZONE_BLOCKS) * ZONE_BLOCK + 1
            args += ["--vgw-zone-range", f"{first}-{first + ZONE_BLOCK - 1}"]
        if self.token:
            args += ["--vgw-token", self.token]
        # netlab.Controller passes --vgw-db as given: a remote list makes it an agent.
        ctl = netlab.Controller(wd, extra_args=args, db=self.db_remote)  # type: ignore[arg-type]
        agent = Agent(i, name, ctl, zones)
        self.agents.append(agent)
        ctl.start(wait=False)
        self._started()
        ctl.wait_ready()
        for bname in bridge_names or []:
            agent.bridges.append(Bridge(bname))
        for _ in range(0 if bridge_names else bridges):
            agent.bridges.append(netlab.make_bridge(ctl.of_port, name=uniq("vf")))
        return agent

    def kill_agent(self, a: Agent) -> None:
        """SIGKILL the agent (its bridges keep their flows: fail mode secure)."""
        a.ctl.kill9()

    def restart_agent(self, a: Agent, wait: bool = True) -> None:
        """Start a stopped or killed agent again, same ports, options and zone file."""
        a.ctl.stop()
        a.ctl.start(wait=wait)

    def agent_rows(self, api: int = 0) -> dict[str, dict[str, Any]]:
        """GET /v1/switches ``agents`` through API server ``api``, by chassis name."""
        body = self.api(api, timeout=10).get("/v1/switches")
        return {r["name"]: r for r in body.get("agents", [])}

    def wait_agents(self, revision: int, timeout: float = 30, api: int = 0) -> None:
        """Until every agent of this fleet reports ``revision`` applied, and is fresh."""
        # An agent whose bridges have not connected yet reports the engine's revision:
        # its row must also name every bridge it programs.
        want = {a.name: {b.name for b in a.bridges} for a in self.agents}

        def done() -> bool:
            rows = self.agent_rows(api)
            return all(n in rows and rows[n]["applied_revision"] == revision
                       and not rows[n]["stale"] and brs <= set(rows[n]["bridges"])
                       for n, brs in want.items())
        wait_until(done, timeout=timeout, interval=0.1,
                   what=f"every agent at revision {revision}")


def vm_port(br: Bridge, vm: str, ofport: int) -> str:
    """An internal port on ``br`` that is VM ``vm``'s (``external_ids:vm-id``)."""
    name = netlab.add_internal_port(br, ofport)
    sh("ovs-vsctl", "set", "Interface", name, f"external_ids:vm-id={vm}")
    return name


def default_workdir(prefix: str = "vgw-fleet-") -> Path:
    """A new private directory for a fleet's files (under $TMPDIR)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("TMPDIR")))
