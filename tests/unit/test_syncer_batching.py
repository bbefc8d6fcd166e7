"""The sync loop's scheduling: a burst of changes makes one sync per switch, a lone change
is not held back, a stream of changes cannot hold a sync back for long, and a busy switch
cannot starve the others. The switch work itself is faked (no OVS, no Ryu datapath)."""

from __future__ import annotations

import gc
import time

import pytest

from vgw_ryu.ryuapp import compat

compat.apply()   # the syncer imports Ryu's ofctl, which needs it on Python 3.11

from ryu.lib import hub  # noqa: E402

from vgw_ryu.ryuapp import syncer as syncer_mod  # noqa: E402
from vgw_ryu.ryuapp.syncer import BATCH_MAX, BATCH_QUIET, Syncer  # noqa: E402


class Recorder(Syncer):
    """A Syncer whose syncs only record (dpid, when) and take ``work`` seconds."""

    def __init__(self, dps, work: float = 0.0):
        super().__init__(engine=None, io=None, dps=dps, ports=lambda: None, meter_rates={},
                         after_sync=lambda dp: None)
        self.work = work
        self.synced: list[tuple[int, float]] = []
        self.during: list = []   # called at the end of each sync

    def flush_conntrack(self) -> None:
        pass

    def apply_limits(self) -> None:
        pass

    def sync(self, dpid: int, full: bool = False) -> None:
        self.synced.append((dpid, time.monotonic()))
        if self.work:
            hub.sleep(self.work)
        for hook in self.during:
            hook(dpid)


@pytest.fixture
def running(monkeypatch):
    """Start a Recorder's loop in a green thread; stop it and restore the collector."""
    monkeypatch.setattr(syncer_mod, "GC_IDLE", 60.0)   # no full collection in a test
    thresholds = gc.get_threshold()
    threads = []

    def start(dps=(1,), work: float = 0.0) -> Recorder:
        s = Recorder({d: object() for d in dps}, work)
        threads.append(hub.spawn(s.loop))
        hub.sleep(0.01)
        return s

    yield start
    for t in threads:
        hub.kill(t)
    gc.set_threshold(*thresholds)


def test_a_burst_of_changes_is_one_sync(running):
    s = running()
    for i in range(200):   # e.g. the port-status messages of one OVSDB transaction,
        s.schedule(1)      # handled a few at a time between other green threads
        if i % 20 == 0:
            hub.sleep(0)
    hub.sleep(BATCH_MAX * 3)
    assert [d for d, _ in s.synced] == [1]


def test_a_lone_change_is_synced_at_once(running, monkeypatch):
    monkeypatch.setattr(syncer_mod, "BATCH_MAX", 0.5)
    s = running()
    t0 = time.monotonic()
    s.schedule(1)
    hub.sleep(0.3)
    assert len(s.synced) == 1
    assert s.synced[0][1] - t0 < 0.25   # it waited for quiet, not for the cap


def test_a_stream_of_changes_cannot_hold_a_sync_back(running, monkeypatch):
    monkeypatch.setattr(syncer_mod, "BATCH_MAX", 0.05)
    s = running()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 0.3:
        s.schedule(1)
        hub.sleep(BATCH_QUIET / 4)
    hub.sleep(0.1)
    assert s.synced and s.synced[0][1] - t0 < 0.05 + 0.1


def test_a_busy_switch_does_not_starve_another(running):
    s = running(dps=(1, 2), work=0.002)
    # Switch 1 changes again during each of its syncs (e.g. a flapping port).
    s.during.append(lambda dpid: s.schedule(1) if dpid == 1 else None)
    s.schedule(1)
    hub.sleep(BATCH_MAX)
    t2 = time.monotonic()
    s.schedule(2)
    hub.sleep(0.1)
    after = [d for d, t in s.synced if t >= t2]
    # Switch 2 goes next, or after the one sync of switch 1 already under way.
    assert 2 in after and after.index(2) <= 1
    assert after.count(1) > 5   # and switch 1 keeps being synced too


def test_a_large_sync_freezes_what_it_made(running):
    """The long-lived objects of a large sync (its flows) leave the collector's walk once
    the round of syncs ends; a small sync's do not."""
    s = running()
    made: list = []
    sizes = iter([100, 50_000])

    def sync(dpid: int, full: bool = False) -> None:
        n = next(sizes)
        made.append([[i] for i in range(n)])   # n tracked objects, kept alive
        s.note_changed(n)

    s.sync = sync
    gc.unfreeze()
    try:
        s.schedule(1)
        hub.sleep(BATCH_MAX * 5)
        assert len(made) == 1 and gc.get_freeze_count() == 0
        s.schedule(1)
        hub.sleep(BATCH_MAX * 5)
        assert len(made) == 2 and gc.get_freeze_count() >= 50_000
    finally:
        gc.unfreeze()


def test_switches_sync_two_at_once_and_never_one_twice(running):
    """While one switch waits for its commit the next one's sync runs (at most
    SYNC_AHEAD at once); a switch scheduled again during its own sync waits for it."""
    s = running(dps=(1, 2, 3))
    spans: list[tuple[int, float, float]] = []
    now_running: set[int] = set()
    twice: list[int] = []
    most = [0]
    commit = {1: 0.15, 2: 0.02, 3: 0.02}

    def sync(dpid: int, full: bool = False) -> None:
        if dpid in now_running:
            twice.append(dpid)
        now_running.add(dpid)
        most[0] = max(most[0], len(now_running))
        t0 = time.monotonic()
        if dpid == 1 and not any(d == 1 for d, _, _ in spans):
            s.schedule(1)              # changed again while it syncs
        hub.sleep(commit[dpid])        # the commit: another switch's sync goes meanwhile
        now_running.discard(dpid)
        spans.append((dpid, t0, time.monotonic()))

    s.sync = sync
    for d in (1, 2, 3):
        s.schedule(d)
    deadline = time.monotonic() + 5
    while len(spans) < 4 and time.monotonic() < deadline:
        hub.sleep(0.01)
    assert sorted(d for d, _, _ in spans) == [1, 1, 2, 3] and twice == []
    assert most[0] == syncer_mod.SYNC_AHEAD == 2
    ones = sorted((a, b) for d, a, b in spans if d == 1)
    assert ones[1][0] >= ones[0][1]          # the second sync of 1 after the first ended
    # Switches 2 and 3 were synced during switch 1's commit.
    assert all(ones[0][0] < a < ones[0][1] for d, a, _ in spans if d != 1)


def test_flushes_go_before_the_flows_and_limits_after_them(running):
    """A round flushes stale connections before any flow lets a new owner send, and sets
    the connection limits (a round trip to ovs-vswitchd) only once the flows are in."""
    s = running(dps=(1, 2))
    order: list[str] = []
    s.flush_conntrack = lambda: order.append("flush")
    s.apply_limits = lambda: order.append("limits")
    s.during.append(lambda dpid: order.append(f"sync {dpid}"))
    s.schedule(1)
    s.schedule(2)
    hub.sleep(BATCH_MAX * 5)
    assert order == ["flush", "sync 1", "sync 2", "limits"]
