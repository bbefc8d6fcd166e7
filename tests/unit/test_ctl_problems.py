"""What health reports: conntrack-invalid drops per VM port, the state file's rejection,
and whether REST may write (AppBackend.problems / read_only_reason)."""

from __future__ import annotations

import pytest
import yaml

from vgw_ryu.compiler import compile_switch
from vgw_ryu.pipeline import priorities as prio
from vgw_ryu.pipeline import tables as pl
from vgw_ryu.pipeline.cookies import KIND_VM, split_cookie
from vgw_ryu.runtime import problems as pr
from vgw_ryu.runtime.ports import Iface
from vgw_ryu.runtime.statefile import StateFileWatcher
from vgw_ryu.ryuapp.backend import AppBackend

DOC = {"vms": {"web": {"mac": "02:00:00:00:00:01", "ips": ["10.0.0.1"]},
               "open": {"mac": "02:00:00:00:00:02", "ips": ["10.0.0.2"],
                        "protected": False}}}
DPID = 0x2A
WEB = pr.PortRef("web", 3, "tap-web")


@pytest.fixture
def engine(make_engine):
    eng = make_engine(DOC)
    eng.refresh_facts(DPID, [Iface("tap-web", 3, "", {"vm-id": "web"}),
                             Iface("tap-open", 4, "", {"vm-id": "open"})])
    return eng


def test_every_protected_vm_has_its_own_counted_invalid_drop_in_both_state_tables(engine):
    flows, _ = engine.desired_flows(DPID, engine.switch(DPID).ifaces)
    zone = engine.snapshot().ids.zone("web")
    mine = [f for f in flows if f.priority == prio.STATE_INVALID_VM]
    assert sorted(f.table for f in mine) == [pl.T["egress_state"], pl.T["ingress_state"]]
    for f in mine:
        assert split_cookie(f.cookie)[:2] == (KIND_VM, zone)
        assert dict(f.match)["reg6"] == zone and f.actions == ()
    assert prio.STATE_INVALID_VM > prio.STATE_INVALID   # counted before the shared drop
    assert pl.check(flows) == []


def test_zone_ports_maps_protected_vms_only(engine):
    zone = engine.snapshot().ids.zone("web")
    assert pr.zone_ports(engine.snapshot(), DPID) == {zone: WEB}
    assert pr.zone_ports(engine.snapshot(), 0x99) == {}


def test_invalid_drops_become_a_problem_after_the_threshold_and_clear_when_quiet():
    w = pr.InvalidWatch(threshold=3, quiet=60)
    assert w.update(DPID, {7: 0}, {7: WEB}, now=1000) == []
    assert w.update(DPID, {7: 2}, {7: WEB}, now=1003) == []          # below threshold
    (p,) = w.update(DPID, {7: 5}, {7: WEB}, now=1006)
    assert p["code"] == "ct_invalid_drops"
    assert (p["switch"], p["port"], p["ofport"], p["vm"], p["packets"]) == (
        "000000000000002a", "tap-web", 3, "web", 5)
    assert "ethtool -K" in p["message"] and "tx off" in p["message"]
    assert "tap-web" in p["message"] and p["since"].startswith("1970-01-01T00:16:43")
    assert w.update(DPID, {7: 9}, {7: WEB}, now=1009) == []          # raised only once
    assert w.problems()[0]["packets"] == 9
    assert w.port_problems(DPID) == {3: w.problems()}
    w.update(DPID, {7: 9}, {7: WEB}, now=1030)
    assert len(w.problems()) == 1                                    # not quiet long enough
    w.update(DPID, {7: 9}, {7: WEB}, now=1070)
    assert w.problems() == [] and w.port_problems(DPID) == {}


def test_counts_carry_over_only_while_the_summed_counter_is_unchanged():
    last = (7, {1: 5, 2: 2})
    assert pr.carried_counts(None, 7, {1: "a"}) is None          # never read: read
    assert pr.carried_counts(last, 8, {1: "a", 2: "b"}) is None  # a drop since: read
    assert pr.carried_counts(last, 2, {2: "b"}) is None          # a counter lost: read
    # A VM plugged (zone 3) and one gone (zone 2): nothing dropped, nothing to read.
    assert pr.carried_counts(last, 7, {1: "a", 3: "c"}) == {1: 5, 3: 0}


def test_the_first_reading_is_a_baseline_not_a_problem():
    w = pr.InvalidWatch(threshold=3)
    assert w.update(DPID, {7: 500}, {7: WEB}, now=0) == []     # counts from before a restart
    assert w.update(DPID, {7: 501}, {7: WEB}, now=3) == [] and w.problems() == []


def test_a_few_scattered_invalid_packets_are_not_a_problem():
    w = pr.InvalidWatch(threshold=3, quiet=60)
    for i, now in enumerate((0, 100, 200, 300, 400)):
        assert w.update(DPID, {7: i}, {7: WEB}, now=now) == []
    assert w.problems() == []


def test_a_vm_that_left_the_switch_and_a_forgotten_switch_leave_no_problem():
    w = pr.InvalidWatch(threshold=1)
    for dpid in (DPID, 0x2B):
        w.update(dpid, {7: 0}, {7: WEB}, now=0)
        w.update(dpid, {7: 4}, {7: WEB}, now=1)
    assert len(w.problems()) == 2
    w.update(DPID, {}, {}, now=1)
    assert [p["switch"] for p in w.problems()] == ["000000000000002b"]
    w.forget(0x2B)
    assert w.problems() == []


def _backend(engine, state_file=None, invalid=None):
    return AppBackend(engine, None, None, {}, lambda: None, lambda: 0, state_file, invalid)


def test_backend_problems_collect_the_state_file_and_the_invalid_watch(engine, tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(DOC))
    watcher = StateFileWatcher(str(f), engine, "state")
    watcher.load(initial=True)
    invalid = pr.InvalidWatch(threshold=1)
    invalid.update(DPID, {7: 0}, {7: WEB}, now=0)
    b = _backend(engine, watcher, invalid)
    assert b.problems() == []
    f.write_text("vms: [broken")
    watcher.request_reload()
    watcher.check()
    invalid.update(DPID, {7: 3}, {7: WEB}, now=0)
    assert [p["code"] for p in b.problems()] == ["state_file_rejected", "ct_invalid_drops"]
    for p in b.problems():
        assert set(p) >= {"code", "message"}


def test_backend_read_only_reason_follows_the_state_file_mode(engine, tmp_path):
    assert _backend(engine).read_only_reason() is None
    seed = StateFileWatcher(str(tmp_path / "seed.yaml"), engine, "seed")
    assert _backend(engine, seed).read_only_reason() is None
    state = StateFileWatcher(str(tmp_path / "s.yaml"), engine, "state")
    assert str(tmp_path / "s.yaml") in _backend(engine, state).read_only_reason()


def test_compiled_flows_still_fit_the_pipeline_with_the_new_match(engine):
    snap = engine.snapshot()
    flows = compile_switch(snap.state, engine.switch(DPID).facts, snap.ids, snap.effective, {})
    assert pl.check(flows) == []
