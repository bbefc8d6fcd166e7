"""Running labs on this machine: run directories, their state files, ``exec`` and ``down``.

Each ``vgw-lab run`` owns a run directory, ``/run/vgw-lab/<run>`` (``VGW_LAB_RUNS``
overrides the parent), announced when it starts. It holds the controller's database and
logs and ``state.json``: the runner's PID, the bridges, the root-namespace link ends and,
per VM, the PID of its Mininet host (the namespaces ``vgw-lab exec`` enters), plus the
REST objects the lab wrote to a controller it did not start. Teardown removes the
directory (kept with ``--keep`` for its logs). ``vgw-lab down RUN`` stops a run: it asks
its runner to tear down, then removes whatever the state file still names (exact names
and PIDs only, never anything else), so it also cleans up after a killed runner. A fleet
run (``--fleet``) also records its database members, API servers and agents: ``down``
stops each by its recorded PID once its command line shows it is still that process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vgw_ryu.api.client import ApiError, Client
from vgw_ryu.store.server import DbFiles

STATE = "state.json"


def runs_dir() -> Path:
    return Path(os.environ.get("VGW_LAB_RUNS", "/run/vgw-lab"))


def write_state(run_dir: Path, state: dict[str, Any]) -> None:
    """Atomically (re)write a run's state file."""
    tmp = run_dir / (STATE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, run_dir / STATE)


def read_state(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / STATE).read_text())
    except (OSError, ValueError):
        return None


def _cmdline(pid: int) -> str:
    return " ".join(_argv(pid))


def alive(pid: int | None, marker: str) -> bool:
    """Is ``pid`` running and still the process we recorded (its command line holds
    ``marker``)? Guards against a PID reused by someone else's process."""
    return bool(pid) and bool(marker) and marker in _cmdline(int(pid))


def runner_alive(state: dict[str, Any]) -> bool:
    return alive(state.get("pid"), "vgw")


def live_runs() -> dict[str, dict[str, Any]]:
    """run name -> state, for every run directory with a state file."""
    out = {}
    base = runs_dir()
    if base.is_dir():
        for d in sorted(base.iterdir()):
            st = read_state(d)
            if st is not None:
                out[d.name] = st
    return out


class RunError(RuntimeError):
    """A run that cannot be found or used; the message says what to do."""


def find_run(name: str | None) -> tuple[Path, dict[str, Any]]:
    """The run directory and state of run ``name``, or of the only run when None."""
    runs = live_runs()
    if name is None:
        if len(runs) != 1:
            listing = ", ".join(runs) if runs else "none"
            raise RunError(f"{len(runs)} labs running ({listing}): name one with --run RUN"
                           if runs else "no lab is running (start one with "
                           "`vgw-lab run quickstart --keep`)")
        name = next(iter(runs))
    if name not in runs:
        raise RunError(f"no running lab {name!r} (running: {', '.join(runs) or 'none'})")
    return runs_dir() / name, runs[name]


def exec_argv(state: dict[str, Any], vm: str, command: list[str]) -> list[str]:
    """The argv that runs ``command`` inside lab VM ``vm`` (its network namespace).

    As in the Mininet CLI, an argument that is exactly a VM name becomes its IPv4
    address (``client ping -c1 web``). No command: an interactive shell.
    """
    hosts = state.get("hosts", {})
    if vm not in hosts:
        raise RunError(f"no VM {vm!r} in lab {state.get('run')} (VMs: "
                       f"{', '.join(sorted(hosts))})")
    pid = hosts[vm]["pid"]
    if not alive(pid, f"mininet:{vm}"):
        raise RunError(f"VM {vm!r} of lab {state.get('run')} is not running (pid {pid})")
    ips = {n: h.get("ip") for n, h in hosts.items()}
    cmd = [ips.get(a) or a for a in command] or [os.environ.get("SHELL") or "bash"]
    if shutil.which("mnexec"):
        return ["mnexec", "-a", str(pid), *cmd]
    return ["nsenter", "--target", str(pid), "--net", "--mount", *cmd]


def down(run_dir: Path, state: dict[str, Any], token: str | None = None,
         wait: float = 60, say=print) -> list[str]:
    """Stop run ``state``: its runner tears down; leftovers are removed by exact name.
    Returns the problems left (empty when everything is gone). The run directory goes
    only with the last leftover: its state file is what a second ``down`` retries."""
    pid = state.get("pid")
    if runner_alive(state):
        say(f"[down] asking the runner (pid {pid}) of {state['run']} to tear down")
        os.kill(int(pid), signal.SIGTERM)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and runner_alive(state):
            time.sleep(0.1)
    problems = cleanup(state, token, say)
    if not problems:
        shutil.rmtree(run_dir, ignore_errors=True)
    return problems


def _sh(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=30)


def _argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]]


@dataclass(frozen=True)
class Recorded:
    """A process a run recorded: its PID, what it is for messages, the signal that
    stops it cleanly, and what its command line must hold to still be that process
    (a PID is reused once the process is gone): either ``marker``, a substring, or
    ``program``, the basename of its executable or script, with ``args`` among its
    arguments in that order, adjacent."""

    pid: int | None
    what: str
    sig: int = signal.SIGTERM
    marker: str | None = None
    program: str = ""
    args: tuple[str, ...] = ()

    def alive(self) -> bool:
        """Is the recorded PID still this process (and not a zombie)?"""
        if not self.program:
            return alive(self.pid, self.marker or "")
        argv = _argv(int(self.pid)) if self.pid else []
        n = len(self.args)
        # A console script runs as ``python .../vgw-api ...``: its name is argv[1].
        return (any(os.path.basename(a) == self.program for a in argv[:2])
                and any(argv[i:i + n] == list(self.args) for i in range(len(argv) - n + 1)))


def _fleet_processes(fleet: dict[str, Any]) -> list[Recorded]:
    """A fleet run's agents, API servers and database members, in the order they are
    stopped (agents would log every member going away). The arguments checked are ones
    vgw_lab.fleet starts each with and unique to the run: an agent's chassis name (its
    bridge's), an API server's listen address, a member's database file."""
    procs = [Recorded(a.get("pid"), f"agent {a.get('name')}", program="ryu-manager",
                      args=("--vgw-chassis", str(a.get("name"))))
             for a in fleet.get("agents", [])]
    procs += [Recorded(s.get("pid"), f"API server {s.get('url')}", program="vgw-api",
                       args=("--listen", urlsplit(s.get("url", "")).netloc))
              for s in fleet.get("apis", [])]
    for m in fleet.get("members", []):
        files = DbFiles(Path(m["db"]))
        # And the PID in its pid file: a member restarted after the state file was
        # written runs under another PID.
        pids = [m.get("pid")]
        try:
            pids.append(int(files.pid.read_text().strip()))
        except (OSError, ValueError):
            pass
        procs += [Recorded(pid, f"database member {files.db}", program="ovsdb-server",
                           args=(str(files.db),))
                  for pid in dict.fromkeys(pids) if pid]
    return procs


def _stop(p: Recorded, say: Callable[[str], None]) -> str | None:
    """Stop ``p`` if it is still running: its clean signal, SIGKILL after 10 s. A problem
    when it survives even that."""
    if not p.alive():
        return None
    say(f"[down] stopping {p.what} (pid {p.pid})")
    for sig, wait in ((p.sig, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.kill(int(p.pid), sig)
        except ProcessLookupError:
            return None
        deadline = time.monotonic() + wait
        while p.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not p.alive():
            return None
    return f"{p.what} (pid {p.pid}) survived SIGKILL"


def cleanup(state: dict[str, Any], token: str | None = None, say=print) -> list[str]:
    """Remove what a run's state file names and is still there (nothing else); a run
    with nothing left is a no-op, so it may be called again."""
    problems = []
    if runner_alive(state):
        problems.append(f"runner pid {state['pid']} did not exit; not touching its lab")
        return problems
    fleet = state.get("fleet") or {}
    bridges = [*state.get("bridges", {}).values(),
               *(b for a in fleet.get("agents", []) for b in a.get("bridges", []))]
    existing = set(_sh("ovs-vsctl", "list-br").stdout.split())
    for br in dict.fromkeys(bridges):
        if br in existing:
            say(f"[down] removing bridge {br}")
            _sh("ovs-vsctl", "--if-exists", "del-br", br)
    for intf in state.get("links", []):
        if Path(f"/sys/class/net/{intf}").exists():
            say(f"[down] removing link {intf}")
            _sh("ip", "link", "del", intf)
    # A VM's shell ignores SIGTERM; its namespace goes with its last process (the VM's
    # shell and the traffic servers in it).
    procs = [Recorded(pid, "traffic server", signal.SIGKILL, marker="vgw_lab.traffic")
             for pid in state.get("servers", [])]
    procs += [Recorded(h.get("pid"), f"VM {vm}", signal.SIGKILL, marker=f"mininet:{vm}")
              for vm, h in state.get("hosts", {}).items()]
    ctl = state.get("controller") or {}
    procs.append(Recorded(ctl.get("pid"), "the lab's controller", marker=ctl.get("marker")))
    procs += _fleet_processes(fleet)
    problems += [p for p in (_stop(proc, say) for proc in procs) if p]
    objects = state.get("api_objects") or []
    if objects:
        client = Client(state["api"], token or os.environ.get("VGW_TOKEN"), timeout=30)
        for kind, name in reversed(objects):
            say(f"[down] deleting {kind}/{name} at {state['api']}")
            try:
                status, body = client.request("DELETE", f"/v1/{kind}/{name}")
            except ApiError as e:
                status, body = None, str(e)
            if status not in (200, 404):
                problems.append(f"could not delete {kind}/{name} at {state['api']}: "
                                f"{status} {body}")
    return problems
