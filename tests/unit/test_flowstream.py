"""A sync that streams the compile's new flows into the switch's open bundle: what it
sends in which order, and what it throws away when the compile fails or is voided.
A recording stand-in for the OpenFlow side; the flows and diffs are the real ones (the
real switch's side is tests/sandbox/test_incremental_sync.py)."""

from __future__ import annotations

import time

import pytest

from vgw_ryu.compiler.owned import FlowList
from vgw_ryu.pipeline import wire
from vgw_ryu.pipeline.flows import Flow
from vgw_ryu.pipeline.tables import PUNT_BY_PURPOSE
from vgw_ryu.runtime import syncdiff
from vgw_ryu.ryuapp import compat

compat.apply()   # the syncer imports Ryu's ofctl, which needs it on Python 3.11

from vgw_ryu.ryuapp import flowstream  # noqa: E402
from vgw_ryu.ryuapp.syncer import Syncer  # noqa: E402

OLD = Flow.make(0, 5, {"in_port": 1}, [])
METER = 70_000   # a VM's own log meter, named by a streamed flow
NEW = [Flow.make(0, 5, {"in_port": p}, [], meter=METER if p == 2 else None)
       for p in (2, 3, 4)]


class _IO:
    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.in_compile = False   # the compile holds the engine lock

    def has_bundles(self, dp) -> bool:
        return True

    def set_meters(self, dp, have, want) -> None:
        new = sorted(set(want) - set(have))
        if new:
            self.calls.append(("meters", new))
        have.update(want)

    def delete_meters(self, dp, have, ids) -> None:
        self.calls.append(("delete meters", sorted(ids)))
        for m in ids:
            have.pop(m, None)

    def open_bundle(self, dp) -> tuple[int, int]:
        assert not self.in_compile, "waited for the switch under the engine lock"
        self.calls.append(("open",))
        return (7, 3)

    def bundle_add(self, dp, bundle, bodies) -> None:
        self.calls.append(("add", bundle, list(bodies)))

    def commit_bundle(self, dp, bundle) -> None:
        self.calls.append(("commit", bundle))

    def discard_bundle(self, dp, bundle) -> None:
        self.calls.append(("discard", bundle))

    def send_atomically(self, dp, bodies) -> None:
        self.calls.append(("atomic", list(bodies)))


class _Engine:
    """Streams ``streams`` while it compiles, then answers ``result`` (or raises)."""

    def __init__(self, result) -> None:
        self.result = result
        self.streams = NEW[:2]

    def desired_flows(self, dpid, ifaces, stream, holds, chunk):
        assert stream is not None and holds == 1
        self.io.in_compile = True
        if self.streams:
            stream(self.streams)
        self.io.in_compile = False
        if isinstance(self.result, Exception):
            raise self.result
        return self.result, 9

    def mark_applied(self, dpid, rev, count) -> None:
        self.applied = (rev, count)


def _syncer(result) -> tuple[Syncer, _IO, syncdiff.Installed, _Engine]:
    """A syncer of one switch that holds OLD, as the compiler's result 1."""
    io, engine = _IO(), _Engine(result)
    engine.io = io
    s = Syncer(engine, io, {1: object()}, ports=lambda: None,
               meter_rates={PUNT_BY_PURPOSE["log"].meter: 100}, after_sync=lambda dp: None)
    s.started = time.monotonic() - 3600     # past the wait for the OVSDB replica
    known = syncdiff.index_installed([(0, OLD.cookie, 5, wire.match_of(OLD))])
    known.synced = 1
    s.known[1], s.meters[1] = known, {}
    return s, io, known, engine


def test_streamed_flows_go_first_and_the_rest_commits_in_the_same_bundle():
    # Result 2 (from 1): NEW[0] and NEW[2] came, OLD went; NEW[1] was streamed and is
    # not in it after all.
    s, io, known, engine = _syncer(FlowList([NEW[0], NEW[2]], 2, 1,
                                            added=[NEW[0], NEW[2]],
                                            removed=[(0, OLD.cookie)]))
    s.sync(1)
    # The meter a streamed flow names goes first; the other meters the sync wants come
    # after the compile.
    assert [c[0] for c in io.calls] == ["open", "meters", "add", "meters", "add", "commit"]
    assert io.calls[1][1] == [METER] and METER not in io.calls[3][1]
    assert io.calls[2][2] == [wire.add(NEW[0]), wire.add(NEW[1])]
    assert io.calls[4][2] == [
        wire.add(NEW[2]),
        wire.delete_strict(0, 5, wire.match_of(OLD), OLD.cookie),
        wire.delete_strict(0, 5, wire.match_of(NEW[1]), NEW[1].cookie)]
    assert set(known) == {(0, NEW[0].cookie), (0, NEW[2].cookie)} and known.synced == 2
    assert engine.applied == (9, 2)


def test_a_failed_compile_discards_what_it_streamed():
    s, io, known, _ = _syncer(RuntimeError("boom"))
    with pytest.raises(RuntimeError):
        s.sync(1)
    assert [c[0] for c in io.calls] == ["open", "meters", "add", "discard"]
    assert set(known) == {(0, OLD.cookie)} and known.synced == 1


def test_a_sync_with_nothing_to_change_throws_its_bundle_away():
    s, io, known, engine = _syncer(FlowList([OLD], 2, 1))
    engine.streams = []   # the compile sends nothing
    s.sync(1)
    assert [c[0] for c in io.calls if c[0] != "meters"] == ["open", "discard"]
    assert set(known) == {(0, OLD.cookie)} and known.synced == 2


def test_a_full_compile_instead_voids_the_stream_and_sends_its_own_diff():
    # A result with no base (the compiler fell back to a full compile).
    s, io, known, _ = _syncer(FlowList([NEW[2]], 5))
    s.sync(1)
    assert [c[0] for c in io.calls if c[0] != "meters"] == ["open", "add", "discard",
                                                           "atomic", "delete meters"]
    assert io.calls[-2][1] == [wire.add(NEW[2]),
                              wire.delete_strict(0, 5, wire.match_of(OLD), OLD.cookie)]
    assert io.calls[-1][1] == [METER]   # the streamed flow's meter, unused after all
    assert set(known) == {(0, NEW[2].cookie)}




def _paced(monkeypatch, engine: _Engine, steps: list) -> None:
    """The compile, on a clock: ``steps`` are seconds passing (numbers) and chunks it
    streams (lists of flows), in order."""
    clock = [1000.0]
    monkeypatch.setattr(flowstream, "clock", lambda: clock[0])

    def compile_(dpid, ifaces, stream, holds, chunk):
        engine.io.in_compile = True
        for step in steps:
            if isinstance(step, list):
                stream(step)
            else:
                clock[0] += step
        engine.io.in_compile = False
        return engine.result, 9
    engine.desired_flows = compile_


def _result_2() -> FlowList:
    return FlowList([NEW[0], NEW[2]], 2, 1, added=[NEW[0], NEW[2]], removed=[(0, OLD.cookie)])


def _sent_whole_in_a_new_bundle(io: _IO, known: syncdiff.Installed, adds: int) -> None:
    assert [c[0] for c in io.calls if c[0] != "meters"] == ["open", *["add"] * adds,
                                                           "discard", "atomic"]
    assert io.calls[-1][1] == [wire.add(NEW[0]), wire.add(NEW[2]),
                              wire.delete_strict(0, 5, wire.match_of(OLD), OLD.cookie)]
    assert set(known) == {(0, NEW[0].cookie), (0, NEW[2].cookie)} and known.synced == 2


def test_a_bundle_left_idle_past_the_limit_is_replaced_by_a_new_one(monkeypatch):
    # ovs-vswitchd drops a bundle idle for its timeout: after a compile that sent
    # nothing for that long, the streamed bundle is thrown away and the whole change
    # (the streamed flows too) goes atomically in a new one.
    s, io, known, engine = _syncer(_result_2())
    _paced(monkeypatch, engine, [NEW[:1], flowstream.IDLE_LIMIT + 0.1])
    s.sync(1)
    _sent_whole_in_a_new_bundle(io, known, 1)


def test_a_gap_past_the_limit_between_chunks_voids_the_bundle(monkeypatch):
    # The switch may have dropped the bundle with the first chunk; an add to its id
    # would quietly open a new one without it. Nothing more is streamed, and the whole
    # change goes in a new bundle, though the compile ended right after.
    s, io, known, engine = _syncer(_result_2())
    _paced(monkeypatch, engine, [NEW[:1], flowstream.IDLE_LIMIT + 6, [NEW[2]], 0.5])
    s.sync(1)
    _sent_whole_in_a_new_bundle(io, known, 1)


def test_a_bundle_fed_within_the_limit_is_kept(monkeypatch):
    # A compile far longer than the limit that streams often enough.
    s, io, known, engine = _syncer(_result_2())
    gap = flowstream.IDLE_LIMIT - 0.5
    _paced(monkeypatch, engine, [gap, NEW[:1], gap])
    s.sync(1)
    assert [c[0] for c in io.calls if c[0] != "meters"] == ["open", "add", "add", "commit"]
    assert io.calls[-2][2] == [wire.add(NEW[2]),
                               wire.delete_strict(0, 5, wire.match_of(OLD), OLD.cookie)]
    assert set(known) == {(0, NEW[0].cookie), (0, NEW[2].cookie)} and known.synced == 2
