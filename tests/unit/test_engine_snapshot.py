"""Engine readers get a Snapshot; writes and learned MACs go through locked methods."""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from pathlib import Path

import pytest

from vgw_ryu.runtime.ports import Iface

ROOT = Path(__file__).resolve().parents[2]
DOC = {"vms": {"a": {"mac": "02:00:00:00:00:01", "ips": ["10.0.0.1"]},
               "u": {"mac": "02:00:00:00:00:02", "ips": ["10.0.0.2"], "protected": False}}}
IFACES = [Iface("tap-a", 1, "", {"vm-id": "a"}), Iface("tap-u", 2, "", {"vm-id": "u"}),
          Iface("eth1", 9, "", {"vgw-role": "uplink"}), Iface("tap-x", 5, "", {})]


@pytest.fixture
def engine(make_engine):
    return make_engine(DOC)


def test_snapshot_is_immutable(engine):
    snap = engine.snapshot()
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.revision = 5
    with pytest.raises(TypeError):
        snap.effective["a"] = []
    with pytest.raises(TypeError):
        snap.switches[1] = None


def test_snapshot_survives_later_writes(engine):
    before = engine.snapshot()
    engine.apply_document({"vms": {"b": {"ips": ["10.0.0.3"]}}})
    after = engine.snapshot()
    assert (before.revision, set(before.state.vms), set(before.effective)) == \
        (1, {"a", "u"}, {"a", "u"})
    assert (after.revision, set(after.state.vms)) == (2, {"b"})
    assert before.document()["revision"] == 1 and after.document() == engine.state_document()


def test_locations_and_switches_views(engine):
    engine.set_of_version(7, 5)
    engine.refresh_facts(7, IFACES)
    engine.mark_applied(7, 1, 42)
    snap = engine.snapshot()
    zone = snap.ids.zone("a")
    assert snap.vm_locations() == {
        "a": [{"switch": "0000000000000007", "ofport": 1, "port": "tap-a", "zone": zone}],
        "u": [{"switch": "0000000000000007", "ofport": 2, "port": "tap-u", "zone": None}]}
    (view,) = snap.switches_view()
    assert (view["dpid"], view["of_version"], view["applied_revision"], view["flows"]) == \
        ("0000000000000007", 5, 1, 42)
    assert [p["ofport"] for p in view["uplinks"]] == [9]
    assert [p["name"] for p in view["unknown_ports"]] == ["tap-x"]
    assert engine.switches_view() == snap.switches_view()
    assert engine.vm_locations() == snap.vm_locations()
    assert [p.ofport for p in snap.switch(7).ports("vm")] == [1, 2]
    assert snap.switch(8) is None


def test_switches_view_follows_ports_problems_and_revisions(engine):
    """The port lists are reused between views while nothing they show changed, and
    follow every change of ports, external_ids or problems; revisions are always read."""
    engine.refresh_facts(7, IFACES)
    first = engine.switches_view()[0]
    engine.mark_applied(7, 3, 10)
    again = engine.switches_view()[0]
    assert again["vm_ports"] is first["vm_ports"]
    assert (again["applied_revision"], again["flows"]) == (3, 10)
    engine.set_port_problems(7, {5: [{"kind": "invalid", "packets": 4}]})
    hurt = engine.switches_view()[0]
    assert hurt["unknown_ports"][0]["problems"] == [{"kind": "invalid", "packets": 4}]
    engine.set_port_problems(7, {5: [{"kind": "invalid", "packets": 4}]})   # the same
    assert engine.switches_view()[0]["unknown_ports"] is hurt["unknown_ports"]
    engine.set_port_problems(7, {})
    assert "problems" not in engine.switches_view()[0]["unknown_ports"][0]
    # tap-x now names an undeclared VM: the same ports, other external_ids
    engine.refresh_facts(7, [*IFACES[:3], Iface("tap-x", 5, "", {"vm-id": "typo"})])
    assert engine.switches_view()[0]["unknown_ports"][0]["vm_id"] == "typo"
    engine.refresh_facts(7, IFACES[:2])
    view = engine.switches_view()[0]
    assert (view["uplinks"], view["unknown_ports"]) == ([], [])
    assert [p["name"] for p in view["vm_ports"]] == ["tap-a", "tap-u"]


def test_update_ifaces_reports_changes_only(engine):
    assert engine.update_ifaces(3, IFACES) is True
    assert engine.update_ifaces(3, list(IFACES)) is False
    assert engine.update_ifaces(3, IFACES[:1]) is True
    assert [p.ofport for p in engine.snapshot().switch(3).facts.ports] == [1]


def test_learned_macs_only_through_methods(engine):
    assert engine.learned_mac(3, 5) is None
    assert engine.learn_new_mac(3, 5, "02:00:00:00:00:01") is True      # a's MAC
    assert engine.learn_new_mac(3, 5, "02:00:00:00:00:01".upper()) is None   # known
    assert engine.learn_new_mac(3, 6, "02:00:00:00:99:99") is False
    assert engine.learned_mac(3, 5) == "02:00:00:00:00:01"
    copy = engine.learned
    copy.clear()
    assert engine.learned_mac(3, 6) == "02:00:00:00:99:99"
    engine.refresh_facts(3, [Iface("tap-x", 5, "", {})])
    (port,) = engine.snapshot().switch(3).facts.ports
    assert (port.kind, port.vm) == ("vm", "a")
    engine.forget_switch(3)
    assert engine.learned == {}


def test_editing_holds_off_other_writers(engine):
    order = []

    def writer():
        engine.apply_document({"vms": {}})
        order.append("other")

    with engine.editing() as snap:
        t = threading.Thread(target=writer)
        t.start()
        time.sleep(0.1)
        order.append("edit")
        assert snap.revision == 1
        engine.apply_document(DOC)
    t.join(5)
    assert order == ["edit", "other"]
    assert engine.snapshot().revision == 3


def test_listeners_run_after_a_commit(engine):
    seen = []
    engine.on_change(lambda: seen.append(engine.snapshot().revision))
    engine.apply_document(DOC)
    assert seen == [2]


def test_nobody_outside_the_engine_takes_its_lock_or_reads_learned():
    bad = re.compile(r"engine\.(_?lock|_learned|learned\b(?!_))")
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "vgw_ryu").rglob("*.py")
                 if p.name != "engine.py" and bad.search(p.read_text())]
    assert offenders == []
