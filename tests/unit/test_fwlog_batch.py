"""The firewall log file written in batches, and syslog sends that never block."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from vgw_ryu.runtime import fwlog, fwsyslog
from vgw_ryu.runtime.fwlog import BATCH_RECORDS, FirewallLog

T0 = 1_714_557_600.0
DROP = {"switch": "00000000000000ab", "vm": "web1", "direction": "ingress",
        "verdict": "deny", "protocol": "tcp", "src": "198.51.100.7", "dst": "10.0.0.11",
        "sport": 40000, "dport": 22}
ROOT = Path(__file__).resolve().parents[2]


class Clock:
    """fwlog's ``time`` module with a monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> Clock:
        monkeypatch.setattr(fwlog, "time", SimpleNamespace(time=time.time,
                                                           monotonic=lambda: self.now))
        return self


@pytest.fixture
def clock(monkeypatch) -> Clock:
    return Clock().install(monkeypatch)


def lines(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines()] if path.exists() else []


class CountingWrites:
    """Counts the writes reaching a handler's stream."""

    def __init__(self, handler: logging.StreamHandler):
        self.stream, self.writes = handler.stream, 0
        handler.stream = self

    def write(self, text: str) -> int:
        self.writes += 1
        return self.stream.write(text)

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def test_records_wait_for_the_batch_and_go_in_one_write(tmp_path, clock):
    path = tmp_path / "fw.jsonl"
    fw = FirewallLog(str(path))
    try:
        counter = CountingWrites(fw._file)
        made = [fw.record({**DROP, "sport": 40000 + i}, now=T0) for i in range(50)]
        assert lines(path) == []                        # nothing written yet...
        assert len(fw.query(limit=1000)) == 50          # ...but /v1/logs has them all
        fw.flush(now=T0 + 0.5)
        assert lines(path) == made
        assert counter.writes == 1
    finally:
        fw.close()


def test_a_full_batch_is_written_without_waiting(tmp_path, clock):
    path = tmp_path / "fw.jsonl"
    fw = FirewallLog(str(path))
    try:
        for i in range(BATCH_RECORDS + 3):
            fw.record({**DROP, "sport": i}, now=T0)
        assert len(lines(path)) == BATCH_RECORDS
    finally:
        fw.close()


def test_a_batch_is_written_once_its_oldest_record_is_old_enough(tmp_path, clock):
    path = tmp_path / "fw.jsonl"
    fw = FirewallLog(str(path))
    try:
        fw.record({**DROP, "sport": 1}, now=T0)
        clock.now += fwlog.BATCH_SECONDS / 2
        fw.record({**DROP, "sport": 2}, now=T0)
        assert lines(path) == []
        clock.now += fwlog.BATCH_SECONDS / 2
        fw.record({**DROP, "sport": 3}, now=T0)         # the first has waited enough
        assert [r["sport"] for r in lines(path)] == [1, 2, 3]
    finally:
        fw.close()


def test_close_writes_pending_records_and_counts(tmp_path):
    path = tmp_path / "fw.jsonl"
    fw = FirewallLog(str(path))
    fw.record(DROP)
    assert fw.record(DROP) is None                      # folded: a count is pending
    fw.record({**DROP, "dport": 23})
    fw.close()
    got = lines(path)
    assert [(r["dport"], r["count"]) for r in got] == [(22, 1), (23, 1), (22, 1)]
    fw.close()                                          # twice is harmless


def test_records_and_counts_are_written_at_interpreter_exit(tmp_path):
    path = tmp_path / "fw.jsonl"
    code = ("import sys\n"
            "from vgw_ryu.runtime.fwlog import FirewallLog\n"
            f"fw = FirewallLog(sys.argv[1])\nrec = {DROP!r}\n"
            "fw.record(rec); fw.record(rec); fw.record(rec)\n"
            "fw.record({**rec, 'dport': 23})\n")      # no flush, no close: the exit does it
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, cwd=str(ROOT),
                   timeout=60)
    assert [(r["dport"], r["count"]) for r in lines(path)] == [(22, 1), (23, 1), (22, 2)]


def test_batches_rotate_at_max_bytes_in_order(tmp_path, clock):
    path = tmp_path / "fw.jsonl"
    fw = FirewallLog(str(path), max_bytes=2000, backups=50)
    try:
        for i in range(60):
            fw.record({**DROP, "sport": i}, now=T0)
        fw.flush(now=T0)
        files = sorted(tmp_path.glob("fw.jsonl*"), key=lambda p: -int(p.suffix[1:])
                       if p.suffix[1:].isdigit() else 0)
        assert len(files) > 5
        assert all(p.stat().st_size < 2000 for p in files)
        ports = [r["sport"] for p in files for r in lines(p)]
        assert ports == list(range(60))                 # every record, oldest file first
    finally:
        fw.close()


def test_a_failing_write_is_logged_once_and_does_not_raise(tmp_path, clock, caplog):
    class Broken:
        def write(self, _text):
            raise OSError(28, "No space left on device")

        def flush(self):
            pass

        def tell(self):
            return 0

        def close(self):
            pass

    fw = FirewallLog(str(tmp_path / "fw.jsonl"))
    try:
        fw._file.stream = Broken()
        with caplog.at_level(logging.WARNING, logger="vgw_ryu"):
            for i in range(3):
                fw.record({**DROP, "sport": i}, now=T0)
                fw.flush(now=T0)
        assert len([r for r in caplog.records if "could not be written" in r.message]) == 1
        assert len(fw.query()) == 3
    finally:
        fw.close()


def test_syslog_over_tcp_never_blocks_and_keeps_lines_whole(monkeypatch):
    monkeypatch.setattr(fwsyslog, "MAX_BACKLOG", 64 * 1024)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    fw = FirewallLog(None, syslog=f"tcp:127.0.0.1:{srv.getsockname()[1]}")
    conn, _ = srv.accept()                 # a server that does not read, yet
    try:
        sender = fw._syslog
        sender.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        t0 = time.monotonic()
        for i in range(3000):
            fw.record({**DROP, "sport": i})
        assert time.monotonic() - t0 < 10
        assert sender.dropped > 0
        # The server reads now: the backlog drains on flush, line by line intact.
        conn.settimeout(0.2)
        data = b""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            fw.flush()
            try:
                chunk = conn.recv(1 << 20)
            except TimeoutError:
                if not sender._backlog:
                    break
                continue
            data += chunk
        got = data.decode().splitlines()
        assert len(got) + sender.dropped == 3000
        assert all(ln.startswith("<") and ln.endswith("}") for ln in got)
        assert [json.loads(ln[ln.index("{"):])["sport"] for ln in got[:3]] == [0, 1, 2]
    finally:
        fw.close()
        conn.close()
        srv.close()


def test_syslog_to_a_full_unix_socket_drops_instead_of_blocking(tmp_path):
    path = str(tmp_path / "log.sock")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)                          # never read: its queue fills
    fw = FirewallLog(None, syslog=f"unix:{path}")
    try:
        t0 = time.monotonic()
        for i in range(3000):
            fw.record({**DROP, "sport": i})
        assert time.monotonic() - t0 < 10
        assert fw._syslog.dropped > 0
        rx.settimeout(1)
        assert b'dport="22"' in rx.recv(65535)   # what got through is whole
    finally:
        fw.close()
        rx.close()


def test_write_out_never_waits_for_a_held_lock(tmp_path):
    """What SIGTERM's handler calls: it may have interrupted the log mid-record."""
    path = tmp_path / "fw.jsonl"
    fw = FirewallLog(str(path))
    try:
        fw.record(DROP)
        fw.record(DROP)                     # folded: a count pending
        with fw.lock:                       # the interrupted code holds it
            fwlog.write_out_all()
        assert [r["count"] for r in lines(path)] == [1]     # the batch, not the count
        fwlog.write_out_all()
        assert [r["count"] for r in lines(path)] == [1, 1]
    finally:
        fw.close()
