"""Firewall records as RFC 5424 syslog over UDP, TCP and a unix socket (real sockets)."""

from __future__ import annotations

import re
import socket

import pytest

from vgw_ryu.runtime import fwsyslog
from vgw_ryu.runtime.fwlog import FirewallLog

REC = {"switch": "00000000000000ab", "vm": "web1", "direction": "ingress", "verdict": "deny",
       "policy": None, "rule": "default", "protocol": "tcp", "src": "198.51.100.7",
       "dst": "10.0.0.11", "sport": 40000, "dport": 22, "note": 'a "quoted" ] \\ value'}
# RFC 5424: <PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG
LINE = re.compile(r'^<(\d+)>1 (\S+Z) (\S+) vgw_ryu (\d+) fw \[vgw@32473 (.*?)\] (\{.*\})$')


def _params(sd: str) -> dict[str, str]:
    return {k: v.replace('\\"', '"').replace("\\]", "]").replace("\\\\", "\\")
            for k, v in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', sd)}


def _check(line: str) -> None:
    m = LINE.match(line)
    assert m, line
    pri = int(m.group(1))
    assert pri == 16 * 8 + 4        # local0, warning (a deny)
    p = _params(m.group(5))
    assert p["vm"] == "web1" and p["dport"] == "22" and p["verdict"] == "deny"
    assert p["note"] == REC["note"] and "policy" not in p    # escaped; None left out
    assert p["count"] == "1" and '"dport": 22' in m.group(6)


def test_udp():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    fw = FirewallLog(None, syslog=f"udp:127.0.0.1:{rx.getsockname()[1]}")
    try:
        fw.record(REC)
        _check(rx.recv(65535).decode())
    finally:
        fw.close()
        rx.close()


def test_tcp_is_newline_framed():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(5)
    fw = FirewallLog(None, syslog=f"tcp:127.0.0.1:{srv.getsockname()[1]}")
    conn, _ = srv.accept()
    conn.settimeout(5)
    try:
        fw.record(REC)
        fw.record({**REC, "dport": 23})
        data = b""
        while data.count(b"\n") < 2:
            data += conn.recv(65535)
        lines = data.decode().splitlines()
        _check(lines[0])
        assert '"dport": 23' in lines[1]
    finally:
        fw.close()
        conn.close()
        srv.close()


def test_unix_socket(tmp_path):
    path = str(tmp_path / "log.sock")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    rx.settimeout(5)
    fw = FirewallLog(None, syslog=f"unix:{path}")
    try:
        fw.record(REC)
        _check(rx.recv(65535).decode())
    finally:
        fw.close()
        rx.close()


@pytest.mark.parametrize("bad", ["udp:host", "tcp::514", "udp:h:99999", "file:/x", "unix:",
                                 "514"])
def test_bad_targets_are_refused(bad):
    with pytest.raises(ValueError, match="syslog target"):
        fwsyslog.parse_target(bad)


def test_file_and_syslog_get_the_folded_counts(tmp_path):
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    fw = FirewallLog(str(tmp_path / "fw.jsonl"), syslog=f"udp:127.0.0.1:{rx.getsockname()[1]}")
    try:
        for i in range(10):
            fw.record(REC, now=1000 + i * 0.05)
        fw.flush(now=1002)
        got = [rx.recv(65535).decode() for _ in range(2)]
        assert ['count="1"' in got[0], 'count="9"' in got[1]] == [True, True]
        lines = (tmp_path / "fw.jsonl").read_text().splitlines()
        assert len(lines) == 2 and '"count": 9' in lines[1]
    finally:
        fw.close()
        rx.close()
