"""Connectivity assertions against the datapath: which side's trace decides, what is
reported, and the watch that turns violations into health problems."""

from __future__ import annotations

import pytest

from vgw_ryu.runtime import assertaudit
from vgw_ryu.runtime.ports import Iface

DOC = {
    "settings": {"default_ingress": "deny"},
    "vms": {"client": {"mac": "02:00:00:00:00:01", "ips": ["10.0.0.1"]},
            "web1": {"mac": "02:00:00:00:00:02", "ips": ["10.0.0.2"]},
            "far": {"mac": "02:00:00:00:00:03", "ips": ["10.0.0.3"]}},
    "policies": {"web": {"applied_to": ["vm:web1"], "rules": [
        {"id": "http", "direction": "ingress", "action": "allow", "protocol": "tcp",
         "ports": "80"}]}},
    "expectations": [{"from": "client", "to": "web1", "protocol": "tcp", "port": 80,
                      "verdict": "allow"},
                     {"from": "client", "to": "far", "protocol": "tcp", "port": 80,
                      "verdict": "deny"}],
}


@pytest.fixture
def snap(make_engine):
    eng = make_engine(DOC)
    eng.refresh_facts(0xAB, [Iface("tap-c", 1, "", {"vm-id": "client"}),
                             Iface("tap-w", 2, "", {"vm-id": "web1"})])
    return eng.snapshot()


def _fake(verdicts: dict, calls: list):
    def trace(snap, bridge_of, vm, direction, peer, proto, port, run=None):
        calls.append((vm, direction))
        return {"bridge": "br0", "verdict": verdicts.get((vm, direction), "allow")}
    return trace


def test_installed_flows_that_keep_the_assertions(snap, monkeypatch):
    calls = []
    monkeypatch.setattr(assertaudit, "trace_datapath",
                        _fake({("client", "egress"): "allow"}, calls))
    # far is on no local switch: only client's egress can be traced for it, and
    # client's egress allows, while the assertion expects deny: a violation.
    found = assertaudit.datapath_violations(snap, {0xAB: "br0"}.get)
    assert [(v["expectation"], v["pair"], v["got"]) for v in found] == \
        [(1, ["client", "far"], "allow")]
    assert ("web1", "ingress") in calls and ("far", "ingress") not in calls


def test_a_side_that_drops_decides(snap, monkeypatch):
    calls = []
    monkeypatch.setattr(assertaudit, "trace_datapath",
                        _fake({("web1", "ingress"): "deny", ("client", "egress"): "deny"},
                              calls))
    found = assertaudit.datapath_violations(snap, {0xAB: "br0"}.get)
    assert [(v["expectation"], v["got"]) for v in found] == [(0, "deny")]
    assert found[0]["traced"] == ["client egress on br0"]   # egress decided first


def test_watch_reports_new_violations_once_and_keeps_their_age():
    w = assertaudit.AssertionWatch()
    v = {"expectation": 0, "pair": ["a", "b"], "verdict": "allow", "protocol": "tcp",
         "port": 80, "got": "deny", "traced": ["a egress on br0"]}
    assert w.update([v]) == [v]
    since = w.problems()[0]["since"]
    assert w.update([v]) == [] and w.problems()[0]["since"] == since
    p = w.problems()[0]
    assert p["code"] == "assertion_violated" and "expected allow from a to b" in p["message"]
    assert w.update([]) == [] and w.problems() == []
