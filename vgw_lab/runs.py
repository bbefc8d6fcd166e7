"""Running labs on this machine: run directories, their state files, ``exec`` and ``down``.

Each ``vgw-lab run`` owns a run directory, ``/run/vgw-lab/<run>`` (``VGW_LAB_RUNS``
overrides the parent), announced when it starts. It holds the controller's database and
logs and ``state.json``: the runner's PID, the bridges, the root-namespace link ends and,
per VM, the PID of its Mininet host (the namespaces ``vgw-lab exec`` enters), plus the
REST objects the lab wrote to a controller it did not start. Teardown removes the
directory (kept with ``--keep`` for its logs). ``vgw-lab down RUN`` stops a run: it asks
its runner to tear down, then removes whatever the state file still names (exact names
and PIDs only, never anything else), so it also cleans up after a killed runner.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from vgw_ryu.api.client import ApiError, Client

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
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


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
    Returns the problems left (empty when everything is gone)."""
    pid = state.get("pid")
    if runner_alive(state):
        say(f"[down] asking the runner (pid {pid}) of {state['run']} to tear down")
        os.kill(int(pid), signal.SIGTERM)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and runner_alive(state):
            time.sleep(0.1)
    problems = cleanup(state, token, say)
    shutil.rmtree(run_dir, ignore_errors=True)
    return problems


def _sh(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=30)


def cleanup(state: dict[str, Any], token: str | None = None, say=print) -> list[str]:
    """Remove what a run's state file names and is still there (nothing else)."""
    problems = []
    if runner_alive(state):
        problems.append(f"runner pid {state['pid']} did not exit; not touching its lab")
        return problems
    existing = set(_sh("ovs-vsctl", "list-br").stdout.split())
    for br in state.get("bridges", {}).values():
        if br in existing:
            say(f"[down] removing bridge {br}")
            _sh("ovs-vsctl", "--if-exists", "del-br", br)
    for intf in state.get("links", []):
        if Path(f"/sys/class/net/{intf}").exists():
            _sh("ip", "link", "del", intf)
    # (pid, what its command line holds, what it is, signal); a VM's shell ignores TERM.
    procs = [(pid, "vgw_lab.traffic", "traffic server", signal.SIGKILL)
             for pid in state.get("servers", [])]
    procs += [(h.get("pid"), f"mininet:{vm}", f"VM {vm}", signal.SIGKILL)
              for vm, h in state.get("hosts", {}).items()]
    ctl = state.get("controller") or {}
    procs.append((ctl.get("pid"), ctl.get("marker"), "the lab's controller", signal.SIGTERM))
    for pid, marker, what, sig in procs:
        if alive(pid, marker):
            say(f"[down] stopping {what} (pid {pid})")
            os.kill(int(pid), sig)
            deadline = time.monotonic() + 10
            while alive(pid, marker) and time.monotonic() < deadline:
                time.sleep(0.05)
            if alive(pid, marker):
                os.kill(int(pid), signal.SIGKILL)
    objects = state.get("api_objects") or []
    if objects:
        client = Client(state["api"], token or os.environ.get("VGW_TOKEN"), timeout=30)
        for kind, name in reversed(objects):
            try:
                status, body = client.request("DELETE", f"/v1/{kind}/{name}")
            except ApiError as e:
                status, body = None, str(e)
            if status not in (200, 404):
                problems.append(f"could not delete {kind}/{name} at {state['api']}: "
                                f"{status} {body}")
    return problems
