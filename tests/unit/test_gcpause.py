"""The collector held off while a sync's CPU-bound steps run: no automatic collection
inside the block, restored after it (errors and nesting included), a step that made
many objects freezes them, and the syncer compiles, diffs and encodes inside it and
waits for the switch outside it. No OVS, no Ryu datapath."""

from __future__ import annotations

import gc
import time

import pytest

from vgw_ryu.compiler.owned import FlowList
from vgw_ryu.pipeline.flows import Flow
from vgw_ryu.pipeline.tables import PUNT_BY_PURPOSE
from vgw_ryu.runtime import gcpause, syncdiff
from vgw_ryu.runtime.gcpause import FREEZE_OBJECTS, freeze_if_many, paused_gc
from vgw_ryu.ryuapp import compat

compat.apply()   # the syncer imports Ryu's ofctl, which needs it on Python 3.11

from vgw_ryu.ryuapp.syncer import Syncer  # noqa: E402


def _collections_during(make) -> int:
    seen: list[str] = []

    def note(phase: str, info: dict) -> None:
        if phase == "start":
            seen.append(phase)

    gc.callbacks.append(note)
    try:
        make()
    finally:
        gc.callbacks.remove(note)
    return len(seen)


def _burst() -> list:
    return [[i] for i in range(50_000)]   # containers: each counts toward a collection


def test_no_automatic_collection_inside_and_the_collector_restored():
    assert gc.isenabled()
    assert _collections_during(_burst) > 0          # the burst alone triggers some
    with paused_gc():
        assert not gc.isenabled()
        assert _collections_during(_burst) == 0
        with paused_gc():
            pass
        assert not gc.isenabled()                   # the inner block left it paused
    assert gc.isenabled()
    with pytest.raises(ValueError), paused_gc():
        raise ValueError
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()                   # off before: off after
    finally:
        gc.enable()


def test_a_step_that_made_many_objects_freezes_them():
    gc.collect()
    gc.unfreeze()
    try:
        with paused_gc():
            few = [[i] for i in range(100)]
            freeze_if_many()
        assert gc.get_freeze_count() == 0
        with paused_gc():
            many = [[i] for i in range(FREEZE_OBJECTS + 1000)]
            freeze_if_many()
        assert gc.get_freeze_count() >= FREEZE_OBJECTS and few and many
    finally:
        gc.unfreeze()


class _Engine:
    def __init__(self) -> None:
        self.enabled_while: list[bool] = []

    def desired_flows(self, dpid, ifaces, *streaming):
        self.enabled_while.append(gc.isenabled())
        return FlowList([Flow.make(0, 5, {"in_port": 3}, [])], gen=1), 7

    def mark_applied(self, dpid, rev, count) -> None:
        self.applied = (rev, gc.isenabled(), gc.get_freeze_count())


class _IO:
    def set_meters(self, dp, have, want) -> None:
        pass

    def send_atomically(self, dp, bodies) -> None:
        self.sent = (len(bodies), gc.isenabled())


@pytest.mark.parametrize("freeze_objects", [1, 10**9])
def test_a_sync_computes_with_the_collector_paused_and_waits_with_it_on(monkeypatch,
                                                                         freeze_objects):
    monkeypatch.setattr(gcpause, "FREEZE_OBJECTS", freeze_objects)
    engine, io = _Engine(), _IO()
    s = Syncer(engine, io, {1: object()}, ports=lambda: None,
               meter_rates={PUNT_BY_PURPOSE["log"].meter: 100}, after_sync=lambda dp: None)
    s.started = time.monotonic() - 3600     # past the wait for the OVSDB replica
    s.known[1], s.meters[1] = syncdiff.index_installed([]), {}
    encoded: list[bool] = []
    real = syncdiff.diff
    monkeypatch.setattr(syncdiff, "diff",
                        lambda *a: (encoded.append(gc.isenabled()), real(*a))[1])
    recorded: list[bool] = []
    real_record = syncdiff.record
    monkeypatch.setattr(syncdiff, "record",
                        lambda *a: (recorded.append(gc.isenabled()), real_record(*a))[1])
    gc.unfreeze()
    try:
        s._sync_one(1, False)
        rev, enabled, frozen = engine.applied
        assert engine.enabled_while == [False] and encoded == recorded == [False]
        assert io.sent == (1, True) and (rev, enabled) == (7, True)
        assert (frozen > 0) == (freeze_objects == 1)   # its steps' objects frozen
        assert gc.isenabled()
    finally:
        gc.unfreeze()
