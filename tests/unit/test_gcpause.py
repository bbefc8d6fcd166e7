"""The collector held off while a sync compiles, diffs and encodes: no automatic
collection inside the block, restored after it (errors and nesting included), and the
syncer's compile and encoding run inside it. No OVS, no Ryu datapath."""

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
        self.applied = rev


class _IO:
    def set_meters(self, dp, have, want) -> None:
        pass

    def send_atomically(self, dp, bodies) -> None:
        self.sent = (len(bodies), gc.isenabled())


def test_the_sync_compiles_with_the_collector_paused_and_sends_with_it_on(monkeypatch):
    engine, io = _Engine(), _IO()
    s = Syncer(engine, io, {1: object()}, ports=lambda: None,
               meter_rates={PUNT_BY_PURPOSE["log"].meter: 100}, after_sync=lambda dp: None)
    s.started = time.monotonic() - 3600     # past the wait for the OVSDB replica
    s.known[1], s.meters[1] = syncdiff.index_installed([]), {}
    encoded: list[bool] = []
    real = syncdiff.diff
    monkeypatch.setattr(syncdiff, "diff",
                        lambda *a: (encoded.append(gc.isenabled()), real(*a))[1])
    s.sync(1)
    assert engine.enabled_while == [False] and encoded == [False]
    assert io.sent == (1, True) and engine.applied == 7 and gc.isenabled()
