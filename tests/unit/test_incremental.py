"""Incremental compile: after any sequence of changes it gives exactly the full compile's
flows, keeps unchanged flows as the same objects, and says truly what changed (which the
sync diff relies on)."""

from __future__ import annotations

import copy
import random

import pytest

from tests.unit.incremental_cases import (
    CHANGES,
    SHARED_MAC,
    by_sync_key,
    check_step,
    random_start,
)
from vgw_ryu.compiler import PortFacts, SwitchCompiler, SwitchFacts, compile_switch
from vgw_ryu.compiler import incremental as inc
from vgw_ryu.policy.ids import Ids
from vgw_ryu.policy.model import ValidationError, parse_state
from vgw_ryu.runtime import syncdiff


@pytest.mark.parametrize("seed", range(40))
def test_random_changes_compile_as_the_full_compile(seed):
    _random_changes(seed, 0)


@pytest.mark.parametrize("seed", range(20))
def test_flows_streamed_during_random_changes_leave_the_switch_as_desired(seed):
    _random_changes(seed, 1)   # every new flow streamed as soon as its owner is built


def _random_changes(seed: int, chunk: int) -> None:
    rng = random.Random(seed)
    doc, state, ports, ids, comp, known, flows = random_start(rng)
    applied = 0
    for _ in range(30):
        new_doc, new_ports = copy.deepcopy(doc), list(ports)
        for change in rng.sample(CHANGES, rng.choice([1, 1, 1, 2, 3])):
            change(rng, new_doc, new_ports)
        try:
            new_state = parse_state(new_doc)
        except ValidationError:
            continue   # a change the API would refuse
        doc, ports, state = new_doc, new_ports, new_state
        nxt = Ids.from_doc(ids.to_doc())
        nxt.sync(state)
        ids = nxt
        flows = check_step(comp, state, SwitchFacts(tuple(ports)), ids, flows, known, chunk)
        applied += 1
    assert applied >= 10


def test_random_changes_on_an_agent_with_a_full_zone_range():
    """An agent whose zone range is too small: the VMs left without a zone have their
    ports blocked, in the incremental compile as in the full one, as zones come and go."""
    assert sum(_blocked_during_random_changes(seed) for seed in range(20)) >= 20


def _blocked_during_random_changes(seed: int) -> int:
    rng = random.Random(seed)
    doc, state, ports, _, _, _, _ = random_start(rng)
    ids = Ids(zone_range=(40, 40))
    comp, known, flows = SwitchCompiler(), syncdiff.index_installed([]), None
    blocked = 0
    for step in range(30):
        new_doc, new_ports = copy.deepcopy(doc), list(ports)
        for change in rng.sample(CHANGES, rng.choice([1, 1, 2])):
            change(rng, new_doc, new_ports)
        try:
            new_state = parse_state(new_doc)
        except ValidationError:
            continue
        doc, ports, state = new_doc, new_ports, new_state
        nxt = Ids.from_doc(ids.to_doc())
        if step % 3 == 0:
            nxt.zones_flushed(nxt.flushing())   # a flush went out: zones free again
        nxt.sync(state, local={p.vm for p in ports if p.kind == "vm" and p.vm})
        ids = nxt
        flows = check_step(comp, state, SwitchFacts(tuple(ports)), ids, flows, known)
        for name in ids.unnumbered & {p.vm for p in ports if p.kind == "vm"
                                      and state.vms.get(p.vm) is not None}:
            port = next(p for p in ports if p.vm == name)
            classify = [f for f in flows
                        if f.table == 0 and dict(f.match).get("in_port") == port.ofport]
            assert classify and all(not f.actions and f.goto is None for f in classify), name
            blocked += 1
    return blocked


def test_a_rule_change_touches_only_its_clause_flows():
    rng = random.Random(7)
    doc = {"vms": {f"vm{i}": {"mac": f"02:00:00:00:00:{i:02x}", "ips": [f"10.0.0.{i + 1}"],
                              "labels": {"all": "yes"}} for i in range(20)},
           "groups": {"all": {"match_labels": {"all": "yes"}}},
           "policies": {"p": {"applied_to": ["group:all"], "rules": [
               {"id": f"r{k}", "direction": "ingress", "action": "allow", "protocol": "tcp",
                "ports": str(1000 + k), "peer": "group:all"} for k in range(5)]}}}
    ports = SwitchFacts(tuple(PortFacts(i + 1, f"t{i}", "vm", f"vm{i}") for i in range(20)))
    state = parse_state(doc)
    ids = Ids()
    ids.sync(state)
    comp = SwitchCompiler()
    comp.compile(state, ports, ids)
    doc["policies"]["p"]["rules"][2]["ports"] = str(rng.randint(2000, 3000))
    state = parse_state(doc)
    got = comp.compile(state, ports, ids)
    # The old port's clause goes, the new one comes; the 20 VM clauses and the peer
    # clauses the five rules share stay as they were.
    assert len(got.added) == 1 and len(got.removed) == 1
    assert "tcp_dst" in got.added[0].body or "tp_dst" in got.added[0].body


def test_shared_pair_mac_goes_to_the_last_vm_as_in_the_full_compile():
    vms = {n: {"mac": f"02:00:00:00:00:0{i + 1}", "ips": [f"10.0.0.{i + 1}"],
               "address_pairs": [{"ip": "10.0.9.1", "mac": SHARED_MAC}]}
           for i, n in enumerate(["a", "b", "c"])}
    doc = {"vms": vms}
    ports = [PortFacts(i + 1, n, "vm", n) for i, n in enumerate(["a", "b", "c"])]
    state = parse_state(doc)
    ids = Ids()
    ids.sync(state)
    comp = SwitchCompiler()
    known = syncdiff.index_installed([])
    flows = check_step(comp, state, SwitchFacts(tuple(ports)), ids, None, known)
    for gone in ("c", "a"):
        ports = [p for p in ports if p.vm != gone]
        flows = check_step(comp, state, SwitchFacts(tuple(ports)), ids, flows, known)
    ports.append(PortFacts(9, "c", "vm", "c"))
    check_step(comp, state, SwitchFacts(tuple(ports)), ids, flows, known)


def test_a_streamed_flow_a_later_vm_replaces_is_deleted_after_the_rest():
    # Three VMs carrying one pair MAC plugged at once: the first VM compiled sends its
    # flow under the shared key while the compile runs, and the last VM by name owns
    # it in the end. (Which VM comes first follows string hashing: ten trios make
    # "not the last" all but certain at least once.)
    dropped: list = []
    real = syncdiff.after_stream

    def seen(d, sent):
        rest, gone = real(d, sent)
        dropped.extend(gone)
        return rest, gone

    syncdiff.after_stream = seen
    try:
        for k in range(10):
            names = [f"{x}{k}" for x in "abc"]
            state = parse_state({"vms": {n: {
                "mac": f"02:00:00:00:00:0{i + 1}", "ips": [f"10.0.0.{i + 1}"],
                "address_pairs": [{"ip": "10.0.9.1", "mac": SHARED_MAC}]}
                for i, n in enumerate(names)}})
            ids = Ids()
            ids.sync(state)
            comp = SwitchCompiler()
            known = syncdiff.index_installed([])
            flows = check_step(comp, state, SwitchFacts(), ids, None, known)
            ports = SwitchFacts(tuple(PortFacts(i + 1, n, "vm", n)
                                      for i, n in enumerate(names)))
            check_step(comp, state, ports, ids, flows, known, chunk=1)
    finally:
        syncdiff.after_stream = real
    assert dropped


def test_nothing_is_streamed_unless_the_switch_holds_the_last_result():
    state, ids, facts, comp = _one_vm()
    for case in ("no result", "an older result", "the last result"):
        comp.compile(state, SwitchFacts(), ids)   # the VM unplugged: its flows go
        last = comp.gen
        holds = {"no result": None, "an older result": last - 1, "the last result": last}
        sent: list = []
        comp.compile(state, facts, ids, stream=sent.extend, holds=holds[case], chunk=1)
        assert bool(sent) == (case == "the last result"), case


def _one_vm() -> tuple:
    """(state, ids, facts, a fresh compiler) of one protected VM on port 1."""
    state = parse_state({"vms": {"a": {"mac": "02:00:00:00:00:01", "ips": ["10.0.0.1"]}}})
    ids = Ids()
    ids.sync(state)
    return state, ids, SwitchFacts((PortFacts(1, "a", "vm", "a"),)), SwitchCompiler()


def test_a_failed_compile_starts_over(monkeypatch):
    state, ids, facts, comp = _one_vm()
    first = comp.compile(state, facts, ids)

    def boom(*_a, **_k):
        raise RuntimeError("boom")

    monkeypatch.setattr(comp.templates, "vm_flows", boom)
    with pytest.raises(RuntimeError):
        comp.compile(state, SwitchFacts((PortFacts(2, "a", "vm", "a"),)), ids)
    monkeypatch.undo()
    again = comp.compile(state, facts, ids)
    # Nothing to compare with: the sync diffs everything, and gets the same flows.
    assert again.base is None
    assert by_sync_key(again) == by_sync_key(first)


def test_two_owners_disagreeing_fall_back_to_the_full_compile(monkeypatch):
    state, ids, facts, comp = _one_vm()
    comp.compile(state, facts, ids)
    calls = []

    def full(*args):
        calls.append(args)
        return compile_switch(*args)

    def disagree(self, k):
        raise inc.FlowConflictError("test")

    monkeypatch.setattr(inc, "compile_switch", full)
    monkeypatch.setattr(inc.SwitchCompiler, "_resolve", disagree)
    # A second owner of a key: the unknown port and the VM both claim in_port=1.
    both = SwitchFacts((PortFacts(1, "a", "vm", "a"), PortFacts(1, "x", "uplink")))
    got = comp.compile(state, both, ids)
    assert calls and got.base is None
    assert by_sync_key(got) == by_sync_key(compile_switch(state, both, ids))
