"""vgw-lab's ways into a running lab: the Mininet CLI through a terminal, and
`vgw-lab exec` / `vgw-lab down` against a `--keep` run."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import time

from vgw_lab.netlab import ROOT, VENV_BIN, sh

VGW_LAB = str(VENV_BIN / "vgw-lab")
RUN_RE = re.compile(rb"\[lab\] run (v\d{4}): bridges ")


class Terminal:
    """A process on a pseudo-terminal, read until a marker appears."""

    def __init__(self, argv: list[str]):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                     cwd=str(ROOT), start_new_session=True)
        os.close(slave)
        self.seen = b""

    def until(self, marker: bytes, timeout: float) -> bytes:
        """Everything up to and including ``marker``; fails after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while marker not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"no {marker!r} within {timeout} s; got:\n" + \
                self.seen[-3000:].decode(errors="replace")
            ready, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if ready:
                try:
                    data = os.read(self.master, 65536)
                except OSError:  # the process closed the terminal
                    data = b""
                assert data or marker in self.seen, "terminal closed before " + repr(marker)
                self.seen += data
        i = self.seen.index(marker) + len(marker)
        out, self.seen = self.seen[:i], self.seen[i:]
        return out

    def send(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the runner tears its lab down
            self.proc.wait(timeout=60)
        os.close(self.master)


def bridges_of(run: str) -> list[str]:
    return [b for b in sh("ovs-vsctl", "list-br").split() if b.startswith(run)]


def test_cli_prints_output_and_pingall_is_quick(ovs):
    term = Terminal([VGW_LAB, "run", "quickstart", "--cli"])
    try:
        head = term.until(b"mininet> ", 120)
        assert b"7 of 7 verdicts as expected" in head
        run = RUN_RE.search(head).group(1).decode()
        run_dir = re.search(rb"run directory (\S+) \(", head).group(1).decode()
        assert b"vgw-lab exec --run " + run.encode() in head  # how to reach it, while up
        term.send("client ping -c1 web")
        out = term.until(b"mininet> ", 20)
        assert b"1 received" in out and b"bytes from 10.60.0.11" in out, out
        t0 = time.monotonic()
        term.send("pingall")
        out = term.until(b"mininet> ", 20)
        took = time.monotonic() - t0
        # client->web and db->web answer; the 4 denied pairs give up after 1 s each.
        assert b"*** Results: 66% dropped (2/6 received)" in out, out
        assert took < 10, f"pingall took {took:.1f} s"
        term.send("nodes")
        assert re.search(rb"client db v\d{4}hv1 web", term.until(b"mininet> ", 10))
        term.send("exit")
        assert term.proc.wait(timeout=60) == 0
        assert bridges_of(run) == []
        assert not os.path.exists(run_dir)
    finally:
        term.close()


def test_keep_exec_then_down_removes_the_run(ovs):
    runner = subprocess.Popen([VGW_LAB, "run", "quickstart", "--keep"], cwd=str(ROOT),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = b""
    try:
        while b"[lab] kept up as run" not in out:
            line = runner.stdout.readline()
            assert line, "runner ended before the lab was up:\n" + out.decode()
            out += line
        run = RUN_RE.search(out).group(1).decode()
        assert f"vgw-lab down {run}".encode() in out
        run_dir = re.search(rb"run directory (\S+) \(", out).group(1).decode()
        assert os.path.isfile(os.path.join(run_dir, "state.json"))
        assert bridges_of(run) == [f"{run}hv1"]

        ping = subprocess.run([VGW_LAB, "exec", "--run", run, "client", "ping", "-c1", "-W2",
                               "web"], capture_output=True, text=True, timeout=30)
        assert ping.returncode == 0 and "1 received" in ping.stdout, ping
        denied = subprocess.run([VGW_LAB, "exec", "--run", run, "client", "ping", "-c1",
                                 "-W1", "db"], capture_output=True, text=True, timeout=30)
        assert denied.returncode == 1 and "0 received" in denied.stdout, denied
        addr = subprocess.run([VGW_LAB, "exec", "--run", run, "db", "ip", "-4", "-o", "addr",
                               "show", "dev", "db-eth0"], capture_output=True, text=True,
                              timeout=30)
        assert "10.60.0.31/24" in addr.stdout, addr
        bad = subprocess.run([VGW_LAB, "exec", "--run", run, "ghost", "true"],
                             capture_output=True, text=True, timeout=30)
        assert bad.returncode == 2 and "no VM 'ghost'" in bad.stderr

        down = subprocess.run([VGW_LAB, "down", run], capture_output=True, text=True,
                              timeout=120)
        assert down.returncode == 0 and f"lab {run} is gone" in down.stdout, down
        assert runner.wait(timeout=30) == 0
        assert bridges_of(run) == []
        assert not os.path.exists(run_dir)
        assert f"{run}" not in subprocess.run([VGW_LAB, "list"], capture_output=True,
                                              text=True).stdout
    finally:
        if runner.poll() is None:
            runner.send_signal(signal.SIGTERM)
            runner.wait(timeout=60)


def test_down_cleans_up_after_a_killed_runner(ovs):
    runner = subprocess.Popen([VGW_LAB, "run", "quickstart", "--keep"], cwd=str(ROOT),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = b""
    try:
        while b"[lab] kept up as run" not in out:
            line = runner.stdout.readline()
            assert line, "runner ended before the lab was up:\n" + out.decode()
            out += line
        run = RUN_RE.search(out).group(1).decode()
        run_dir = re.search(rb"run directory (\S+) \(", out).group(1).decode()
        state = json.loads(open(os.path.join(run_dir, "state.json")).read())
        pids = [state["controller"]["pid"], *state["servers"]]
    finally:
        runner.kill()  # no teardown: what it built stays behind
        runner.wait(timeout=30)
    try:
        assert bridges_of(run) == [f"{run}hv1"]
        listed = subprocess.run([VGW_LAB, "list"], capture_output=True, text=True).stdout
        assert f"runner gone: vgw-lab down {run}" in listed
    finally:
        down = subprocess.run([VGW_LAB, "down", run], capture_output=True, text=True,
                              timeout=120)
    assert down.returncode == 0 and f"removing bridge {run}hv1" in down.stdout, down
    assert bridges_of(run) == []
    assert not os.path.exists(run_dir)
    assert not [p for p in pids if os.path.exists(f"/proc/{p}/cmdline")
                and open(f"/proc/{p}/cmdline", "rb").read()]
