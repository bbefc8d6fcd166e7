"""`vgw-lab` on a fleet: `vgw-lab run fleet` end to end, and `vgw-lab down` after the
runner of a fleet run was killed with -9 (it removes exactly what the run's state file
names: processes by their recorded PIDs, bridges and links by name).

Each test starts its own lab fleet through the command users run; neither uses the
fleet the other fleet tests share.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

from vgw_lab import netlab, runs
from vgw_lab.netlab import ROOT, VENV_BIN

VGW_LAB = str(VENV_BIN / "vgw-lab")
RUN_RE = re.compile(r"\[lab\] run (v\d{4}): bridges ")


def test_vgw_lab_run_fleet(ovs: None) -> None:
    p = subprocess.run([VGW_LAB, "run", "fleet"], capture_output=True, text=True,
                       timeout=300, cwd=str(ROOT))
    assert p.returncode == 0, p.stdout[-5000:] + p.stderr[-2000:]
    out = p.stdout
    assert "10 of 10 verdicts as expected" in out and "MISMATCH" not in out
    run = re.search(r"\[lab\] run (v\d{4}): bridges (\S+), (\S+), (\S+);", out)
    assert run, out[:2000]
    # Where everything runs: three members (one leader), two API servers, an agent per
    # hypervisor with its own bridge.
    where = out.split("[fleet] where everything runs:")[1]
    members = re.findall(r"member db\d: tcp:127\.0\.0\.1:\d+ \(raft \S+, (\w+)", where)
    assert sorted(members) == ["follower", "follower", "leader"], where[:2000]
    assert len(re.findall(r"api \d: http://127\.0\.0\.1:\d+", where)) == 2
    for br in run.group(2, 3, 4):
        assert f"agent {br}: OpenFlow" in where and f"bridges {br}" in where
    # Nothing of the run is left: its bridges, its database servers, its directory.
    assert not [b for b in netlab.sh("ovs-vsctl", "list-br").split()
                if b.startswith(run.group(1))]
    gone = subprocess.run(["pgrep", "-f", f"/{run.group(1)}/fleet/"], capture_output=True)
    assert gone.returncode == 1, gone.stdout


# --- vgw-lab down after a killed fleet runner ---------------------------------------------
def read_until(proc: subprocess.Popen, seen: bytearray, marker: bytes,
               timeout: float) -> str:
    """Read ``proc``'s output into ``seen`` until it holds ``marker``; all of it."""
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} within {timeout} s:\n" + \
            seen[-5000:].decode(errors="replace")
        if select.select([fd], [], [], min(left, 0.5))[0]:
            data = os.read(fd, 65536)
            assert data, f"the runner ended before {marker!r}:\n" + \
                seen[-5000:].decode(errors="replace")
            seen += data
    return seen.decode(errors="replace")


def running(pid: int) -> bool:
    """``pid`` runs (a zombie has ended: only its parent has not reaped it yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def processes_in(netns: set[str]) -> list[int]:
    """The running processes whose network namespace is one of ``netns`` (as
    /proc/PID/ns/net links read): a namespace lives as long as one of them."""
    found = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and os.readlink(d / "ns" / "net") in netns \
                    and running(int(d.name)):
                found.append(int(d.name))
        except OSError:
            continue
    return found


def test_down_removes_what_a_killed_fleet_run_left(ovs: None) -> None:
    # The smallest fleet lab: one hypervisor, so one agent (3 members, 2 API servers).
    runner = subprocess.Popen([VGW_LAB, "run", "quickstart", "--fleet", "--keep",
                               "--timeout", "0.5"], cwd=str(ROOT), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen = bytearray()
    decoy: subprocess.Popen | None = None
    decoy_br: netlab.Bridge | None = None
    try:
        out = read_until(runner, seen, b"[lab] kept up as run", 180)
        run = RUN_RE.search(out).group(1)
        run_dir = Path(re.search(r"run directory (\S+) \(", out).group(1))
        state = json.loads((run_dir / runs.STATE).read_text())
        fleet = state["fleet"]
        procs = {f"member {m['db']}": m["pid"] for m in fleet["members"]}
        procs |= {f"API server {s['url']}": s["pid"] for s in fleet["apis"]}
        procs |= {f"agent {a['name']}": a["pid"] for a in fleet["agents"]}
        procs |= {f"VM {vm}": h["pid"] for vm, h in state["hosts"].items()}
        procs |= {f"traffic server {pid}": pid for pid in state["servers"]}
        assert len(procs) == 3 + 2 + 1 + 3 + 3 and all(map(running, procs.values())), procs
        netns = {os.readlink(f"/proc/{h['pid']}/ns/net") for h in state["hosts"].values()}
        bridges = {*state["bridges"].values(), *fleet["agents"][0]["bridges"]}
        assert bridges == {f"{run}hv1"}

        runner.kill()   # no teardown: everything it started stays behind
        runner.wait(timeout=30)
        # Not the run's, so `down` must leave them: a bridge named like the run's, and a
        # process whose command line names the run's database file, chassis and API.
        decoy_br = netlab.make_bridge(name=f"{run}hv1-decoy")
        decoy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)",
                                  "ovsdb-server", fleet["members"][0]["db"], "--vgw-chassis",
                                  fleet["agents"][0]["name"], "--listen",
                                  fleet["apis"][0]["url"].split("//")[1]],
                                 start_new_session=True)

        down = subprocess.run([VGW_LAB, "down", run], capture_output=True, text=True,
                              timeout=120, cwd=str(ROOT))
        said = down.stdout + down.stderr
        assert down.returncode == 0 and f"lab {run} is gone" in said, said
        for what, pid in procs.items():
            assert not running(pid), f"{what} (pid {pid}) outlived `vgw-lab down`:\n{said}"
        assert not processes_in(netns), said      # the VMs' namespaces are gone
        assert not bridges & set(netlab.sh("ovs-vsctl", "list-br").split()), said
        assert not [ln for ln in state["links"] if Path(f"/sys/class/net/{ln}").exists()]
        assert not run_dir.exists()
        # It says what it removed.
        assert f"[down] removing bridge {run}hv1\n" in said
        assert said.count("[down] stopping database member ") == 3, said
        assert said.count("[down] stopping API server ") == 2, said
        assert f"[down] stopping agent {run}hv1 " in said, said
        # ... and only that.
        assert running(decoy.pid), said
        assert decoy_br.name in netlab.sh("ovs-vsctl", "list-br").split(), said

        again = subprocess.run([VGW_LAB, "down", run], capture_output=True, text=True,
                               timeout=60, cwd=str(ROOT))
        assert again.returncode == 0 and "nothing to remove" in again.stdout, again
    finally:
        # Whatever a failure left: `down` asks a live runner to tear down, or removes
        # what a dead one recorded (and does nothing when all is gone).
        m = RUN_RE.search(seen.decode(errors="replace"))
        if m:
            subprocess.run([VGW_LAB, "down", m.group(1)], capture_output=True, timeout=120,
                           cwd=str(ROOT))
        if runner.poll() is None:
            runner.kill()
            runner.wait(timeout=30)
        if decoy is not None:
            decoy.kill()
            decoy.wait(timeout=10)
        if decoy_br is not None:
            netlab.delete_bridge(decoy_br)


def fd_target(fd: Path) -> str:
    """What an open file descriptor names; "" once it closed (a starting Python opens
    and closes each module it imports, so one can go between listing and reading)."""
    try:
        return os.readlink(fd)
    except FileNotFoundError:
        return ""


def processes_of(run_dir: Path) -> list[str]:
    """Running processes that belong to a run: its directory in their command line, or
    a file of it open (an API server's log is its standard output)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or not running(int(d.name)):
            continue
        try:
            argv = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fds = [fd_target(f) for f in (d / "fd").iterdir()]
        except OSError:  # it ended
            continue
        if str(run_dir) in argv or any(f.startswith(f"{run_dir}/") for f in fds):
            found.append(f"{d.name}: {argv[:200]}")
    return found


def test_down_after_a_fleet_run_killed_while_it_started(ovs: None) -> None:
    """Killed with -9 while its fleet starts (database members up, an API server
    starting, no agent yet): each process was recorded as it started, so `down` stops
    them all."""
    runner = subprocess.Popen([VGW_LAB, "run", "quickstart", "--fleet"], cwd=str(ROOT),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    seen = bytearray()
    run_dir: Path | None = None
    try:
        out = read_until(runner, seen, b"[lab] starting the fleet", 120)
        run = RUN_RE.search(out).group(1)
        run_dir = Path(re.search(r"run directory (\S+) \(", out).group(1))

        def api_starting() -> dict | None:
            fleet = (runs.read_state(run_dir) or {}).get("fleet") or {}
            return fleet if fleet.get("apis") and not fleet.get("agents") else None
        fleet = netlab.wait_until(api_starting, timeout=120, interval=0.02,
                                  what="the fleet's first API server recorded")
        runner.kill()
        runner.wait(timeout=30)
        assert len(fleet["members"]) == 3, fleet
        left = processes_of(run_dir)
        assert len(left) >= 4, left     # three members and an API server, at least

        down = subprocess.run([VGW_LAB, "down", run], capture_output=True, text=True,
                              timeout=120, cwd=str(ROOT))
        said = down.stdout + down.stderr
        assert down.returncode == 0 and f"lab {run} is gone" in said, said
        assert said.count("[down] stopping database member ") == 3, said
        assert "[down] stopping API server " in said, said
        assert not processes_of(run_dir), said
        assert not run_dir.exists(), said
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(timeout=30)
        m = RUN_RE.search(seen.decode(errors="replace"))
        if m:
            subprocess.run([VGW_LAB, "down", m.group(1)], capture_output=True, timeout=120,
                           cwd=str(ROOT))


def test_a_recorded_process_is_known_by_its_program_and_arguments(tmp_path: Path) -> None:
    # A script named like the program, as a console script runs: python .../vgw-api ...
    script = tmp_path / "vgw-api"
    script.write_text("import time\ntime.sleep(600)\n")
    p = subprocess.Popen([sys.executable, str(script), "--db", "x", "--listen", "127.0.0.1:9"],
                         start_new_session=True)
    try:
        # Popen returns once the exec cannot fail, which can be before the kernel has
        # set the new command line up (it reads empty for that moment).
        netlab.wait_until(lambda: Path(f"/proc/{p.pid}/cmdline").read_bytes(), timeout=10,
                          what="its command line")

        def rec(program: str, *args: str, pid: int | None = p.pid) -> runs.Recorded:
            return runs.Recorded(pid, "test", program=program, args=args)

        assert rec("vgw-api", "--listen", "127.0.0.1:9").alive()
        assert not rec("vgw-api", "--listen", "127.0.0.1:90").alive()    # another server
        assert not rec("vgw-api", "--db", "127.0.0.1:9").alive()          # not adjacent
        assert not rec("vgw-api", "127.0.0.1:9", "--listen").alive()      # another order
        assert not rec("ryu-manager", "--listen", "127.0.0.1:9").alive()  # another program
        assert not rec("vgw-api", "--listen", "127.0.0.1:9", pid=None).alive()
    finally:
        p.kill()
        p.wait(timeout=10)
    assert not rec("vgw-api", "--listen", "127.0.0.1:9").alive()
