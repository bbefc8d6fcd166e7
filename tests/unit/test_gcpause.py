"""The collector held off while a sync runs: no automatic collection inside the block,
restored after it (errors and nesting included), and a whole sync (compile, diff,
encoding, sending) runs inside it, a large one freezing what it made before it ends.
No OVS, no Ryu datapath."""

from __future__ import annotations

import gc
import time

import pytest

from vgw_ryu.compiler.owned import FlowList
from vgw_ryu.pipeline.flows import Flow
from vgw_ryu.pipeline.tables import PUNT_BY_PURPOSE
from vgw_ryu.runtime import syncdiff
from vgw_ryu.runtime.gcpause import paused_gc
from vgw_ryu.ryuapp import compat

compat.apply()   # the syncer imports Ryu's ofctl, which needs it on Python 3.11

from vgw_ryu.ryuapp import syncer as syncer_mod  # noqa: E402
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


class _Engine:
    def __init__(self) -> None:
        self.enabled_while: list[bool] = []

    def desired_flows(self, dpid, ifaces):
        self.enabled_while.append(gc.isenabled())
        return FlowList([Flow.make(0, 5, {"in_port": 3}, [])], gen=1), 7

    def mark_applied(self, dpid, rev, count) -> None:
        self.applied = (rev, gc.isenabled(), gc.get_freeze_count())


class _IO:
    def set_meters(self, dp, have, want) -> None:
        pass

    def send_atomically(self, dp, bodies) -> None:
        self.sent = (len(bodies), gc.isenabled())


@pytest.mark.parametrize("freeze_after", [1, 10])
def test_a_sync_runs_with_the_collector_paused_and_a_large_one_freezes(monkeypatch,
                                                                       freeze_after):
    monkeypatch.setattr(syncer_mod, "FREEZE_AFTER", freeze_after)
    engine, io = _Engine(), _IO()
    s = Syncer(engine, io, {1: object()}, ports=lambda: None,
               meter_rates={PUNT_BY_PURPOSE["log"].meter: 100}, after_sync=lambda dp: None)
    s.started = time.monotonic() - 3600     # past the wait for the OVSDB replica
    s.known[1], s.meters[1] = syncdiff.index_installed([]), {}
    encoded: list[bool] = []
    real = syncdiff.diff
    monkeypatch.setattr(syncdiff, "diff",
                        lambda *a: (encoded.append(gc.isenabled()), real(*a))[1])
    gc.unfreeze()
    try:
        s._sync_one(1, False)
        rev, enabled, frozen = engine.applied
        assert engine.enabled_while == [False] and encoded == [False]
        assert io.sent == (1, False) and (rev, enabled) == (7, False)
        assert (frozen > 0) == (freeze_after == 1)   # one flow mod sent
        assert gc.isenabled()
    finally:
        gc.unfreeze()
