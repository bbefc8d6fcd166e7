"""The firewall log: folding of repeated drops, queries, and the JSON-lines file."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest

from vgw_ryu.runtime.fwlog import FOLD_SECONDS, FirewallLog, parse_since, utc_iso

T0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC).timestamp()
DROP = {"switch": "00000000000000ab", "vm": "web1", "direction": "ingress",
        "verdict": "deny", "protocol": "tcp", "src": "198.51.100.7", "dst": "10.0.0.11",
        "sport": 40000, "dport": 22}
ALLOW = {**DROP, "verdict": "allow", "dport": 80, "policy": "web-in", "rule": "http"}


@pytest.fixture
def log():
    fw = FirewallLog(None)
    yield fw
    _close(fw)


def _close(fw: FirewallLog) -> None:
    if fw.logger is not None:
        for h in list(fw.logger.handlers):
            h.close()
            fw.logger.removeHandler(h)


def test_record_adds_time_ts_and_count(log):
    rec = log.record(DROP, now=T0 + 0.25)
    assert rec == {**DROP, "time": "2024-05-01T10:00:00.250Z", "ts": T0 + 0.25, "count": 1}
    assert log.query() == [rec]


def test_drops_within_a_second_fold_into_one_more_record(log):
    first = log.record(DROP, now=T0)
    assert first["count"] == 1
    assert log.record(DROP, now=T0 + 0.3) is None
    assert log.record(DROP, now=T0 + 0.99) is None
    assert log.flush(now=T0 + 0.999) == 0        # the second is not over yet
    assert log.flush(now=T0 + FOLD_SECONDS) == 1
    assert [r["count"] for r in log.query()] == [1, 2]   # every packet counted once


def test_a_packet_after_the_window_carries_the_folded_count(log):
    log.record(DROP, now=T0)
    log.record(DROP, now=T0 + 0.9)
    again = log.record(DROP, now=T0 + FOLD_SECONDS)   # a second after the first
    assert again is not None and again["count"] == 2   # itself and the one folded
    assert [r["count"] for r in log.query()] == [1, 2]


def test_a_quiet_flow_needs_no_second_record(log):
    log.record(DROP, now=T0)
    assert log.flush(now=T0 + 5) == 0
    assert log.record(DROP, now=T0 + 5)["count"] == 1


def test_rejects_fold_too(log):
    rej = {**DROP, "verdict": "reject"}
    log.record(rej, now=T0)
    assert log.record(rej, now=T0 + 0.1) is None
    log.flush(now=T0 + 1)
    assert [r["count"] for r in log.query()] == [1, 1]


def test_different_flows_do_not_fold(log):
    log.record(DROP, now=T0)
    log.record({**DROP, "dport": 23}, now=T0)
    log.record({**DROP, "sport": 40001}, now=T0)
    log.record({**DROP, "direction": "egress"}, now=T0)
    log.record({**DROP, "verdict": "reject"}, now=T0)
    log.record({**DROP, "switch": "00000000000000cd"}, now=T0)
    assert [r["count"] for r in log.query()] == [1] * 6


def test_allows_of_one_flow_fold_too(log):
    """A one-way stream on a logged allow is punted packet after packet (each is +new
    until a reply): folded, five seconds of it make a handful of records."""
    made = [log.record(ALLOW, now=T0 + i * 0.01) for i in range(500)]
    log.flush(now=T0 + 6)
    recs = log.query()
    assert len([m for m in made if m]) <= 6 and len(recs) <= 6
    assert sum(r["count"] for r in recs) == 500


def test_an_allow_does_not_interrupt_a_fold(log):
    log.record(DROP, now=T0)
    log.record(ALLOW, now=T0 + 0.1)
    assert log.record(DROP, now=T0 + 0.2) is None
    log.flush(now=T0 + 2)
    assert [(r["verdict"], r["count"]) for r in log.query()] == \
        [("deny", 1), ("allow", 1), ("deny", 1)]


@pytest.fixture
def filled(log):
    log.record(DROP, now=T0)
    log.record({**DROP, "vm": "db1"}, now=T0 + 1)
    log.record(ALLOW, now=T0 + 2)
    log.record({**DROP, "verdict": "reject", "dport": 25}, now=T0 + 3)
    log.record({**ALLOW, "vm": "db1"}, now=T0 + 4)
    return log


def test_query_newest_last(filled):
    assert [r["ts"] for r in filled.query()] == [T0, T0 + 1, T0 + 2, T0 + 3, T0 + 4]


def test_query_by_vm_and_verdict(filled):
    assert [r["ts"] for r in filled.query(vm="db1")] == [T0 + 1, T0 + 4]
    assert [r["ts"] for r in filled.query(verdict="allow")] == [T0 + 2, T0 + 4]
    assert [r["ts"] for r in filled.query(vm="web1", verdict="deny")] == [T0]
    assert filled.query(vm="ghost") == []


@pytest.mark.parametrize("since,first", [
    (str(T0 + 2), T0 + 2),
    (str(T0 + 1.5), T0 + 2),
    ("2024-05-01T10:00:03Z", T0 + 3),
    ("2024-05-01T10:00:03+00:00", T0 + 3),
    ("2024-05-01T12:00:03+02:00", T0 + 3),
    ("2024-05-01T10:00:03", T0 + 3),          # naive ISO means UTC
    ("2024-05-01T10:00:05Z", None),
])
def test_query_since_unix_or_iso(filled, since, first):
    every = [T0 + i for i in range(5)]
    want = [t for t in every if t >= first] if first is not None else []
    assert [r["ts"] for r in filled.query(since=since)] == want


def test_query_limit_keeps_the_newest(filled):
    assert [r["ts"] for r in filled.query(limit=2)] == [T0 + 3, T0 + 4]
    assert [r["ts"] for r in filled.query(vm="web1", limit=1)] == [T0 + 3]
    assert len(filled.query(limit=100)) == 5


def test_query_returns_copies(filled):
    filled.query()[0]["count"] = 99
    assert filled.query()[0]["count"] == 1


def test_buffer_keeps_the_last_n():
    fw = FirewallLog(None, keep=3)
    for i in range(5):
        fw.record({**ALLOW, "sport": i}, now=T0 + i)
    assert [r["sport"] for r in fw.query()] == [2, 3, 4]


def test_records_written_as_json_lines(tmp_path):
    path = tmp_path / "sub" / "fw.log"
    fw = FirewallLog(str(path))
    try:
        written = [fw.record(DROP, now=T0), fw.record(ALLOW, now=T0 + 0.5),
                   fw.record({**DROP, "dport": 23}, now=T0 + 0.6)]
        assert fw.record(DROP, now=T0 + 0.7) is None    # folded: no new line
        for h in fw.logger.handlers:
            h.flush()
        lines = path.read_text().splitlines()
        assert [json.loads(line) for line in lines] == [
            {**w, "count": 1} for w in written]
        assert all(line.startswith('{"count": ') for line in lines)   # sorted keys
    finally:
        _close(fw)


def test_file_log_does_not_reach_other_loggers(tmp_path, caplog):
    fw = FirewallLog(str(tmp_path / "fw.log"))
    try:
        with caplog.at_level(logging.DEBUG):
            fw.record(DROP, now=T0)
        assert not [r for r in caplog.records if r.name.startswith("vgw_ryu.fwlog")]
    finally:
        _close(fw)


def test_utc_iso_and_parse_since():
    assert utc_iso(T0) == "2024-05-01T10:00:00.000Z"
    assert parse_since(None) is None
    assert parse_since("12.5") == 12.5
    assert parse_since(utc_iso(T0 + 1.5)) == T0 + 1.5
    with pytest.raises(ValueError):
        parse_since("yesterday")


def test_a_steady_flow_flushed_twice_a_second_makes_one_record_a_second(log):
    for i in range(100):                  # 5 s at 20 packets a second
        log.record(ALLOW, now=T0 + i * 0.05)
        if i % 10 == 9:                   # the controller flushes every 0.5 s
            log.flush(now=T0 + (i + 1) * 0.05)
    log.flush(now=T0 + 7)
    recs = log.query()
    assert len(recs) <= 6 and sum(r["count"] for r in recs) == 100, \
        [(r["ts"] - T0, r["count"]) for r in recs]
