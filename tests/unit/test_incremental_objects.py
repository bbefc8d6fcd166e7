"""Incremental compile under one-object writes, as the REST API makes them: the new
state shares the settings and every untouched VM, group and policy object with the old
one, and the ports keep their objects, so the compiler takes its shortcuts (only the
VMs whose object, port or zone changed are looked at again). It must still give exactly
the full compile's flows after any sequence of changes."""

from __future__ import annotations

import copy
import random

import pytest

from tests.unit.incremental_cases import CHANGES, check_step, random_ports, random_start
from vgw_ryu.compiler import SwitchCompiler, SwitchFacts
from vgw_ryu.policy import model
from vgw_ryu.policy.ids import Ids
from vgw_ryu.policy.model import ValidationError, parse_state
from vgw_ryu.runtime import syncdiff

SECTIONS = ("vms", "groups", "policies")


def _written(state: model.State, old: dict, new: dict) -> model.State:
    """``new`` reached from ``state`` (which is ``old``) by one-object writes: added and
    changed objects first (VMs, groups, policies), then removals in reverse. Raises
    ValidationError if a step on the way is invalid."""
    for kind in SECTIONS:
        for name in sorted(new[kind]):
            if old[kind].get(name) != new[kind][name]:
                state = model.replace_object(state, kind, name, new[kind][name])
    for kind in reversed(SECTIONS):
        for name in sorted(old[kind].keys() - new[kind].keys()):
            state = model.remove_object(state, kind, name)
    return state


@pytest.mark.parametrize("seed", range(30))
def test_one_object_writes_compile_as_the_full_compile(seed):
    rng = random.Random(1000 + seed)
    doc, state, ports, ids, comp, known, flows = random_start(rng)
    by_object = 0
    for _ in range(30):
        new_doc, new_ports = copy.deepcopy(doc), list(ports)
        # Settings stay as they are: their object is shared, as a one-object write
        # leaves it (the whole-document path is test_incremental's).
        for change in rng.sample([c for c in CHANGES if c.__name__ != "_edit_settings"],
                                 rng.choice([1, 1, 2])):
            change(rng, new_doc, new_ports)
        try:
            new_state = _written(state, doc, new_doc)
            by_object += 1
        except ValidationError:
            try:
                new_state = parse_state(new_doc)   # a step on the way was invalid
            except ValidationError:
                continue
        if new_state.settings is not state.settings:
            continue   # the shortcut needs the very settings object; nothing to test
        doc, ports, state = new_doc, new_ports, new_state
        nxt = Ids.from_doc(ids.to_doc())
        nxt.sync(state)
        ids = nxt
        flows = check_step(comp, state, SwitchFacts(tuple(ports)), ids, flows, known)
    assert by_object >= 10


def test_a_vm_renumbered_alone_gets_its_new_zone():
    """The same state and port objects, only a VM's zone differs (an agent numbering its
    VMs as they appear): that VM's flows follow its new zone."""
    state = parse_state({
        "vms": {"a": {"mac": "02:00:00:00:00:01", "ips": ["10.0.0.1"], "labels": {"r": "w"}},
                "b": {"mac": "02:00:00:00:00:02", "ips": ["10.0.0.2"], "labels": {"r": "w"}}},
        "groups": {"w": {"match_labels": {"r": "w"}}},
        "policies": {"p": {"applied_to": ["group:w"], "rules": [
            {"id": "r1", "direction": "ingress", "action": "allow", "protocol": "tcp",
             "ports": "22", "peer": "group:w"}]}}})
    facts = SwitchFacts(tuple(random_ports(random.Random(0), {"vms": {"a": {}, "b": {}}})))
    comp = SwitchCompiler()
    known = syncdiff.index_installed([])
    ids = Ids()
    ids.sync(state)
    flows = check_step(comp, state, facts, ids, None, known)
    doc = ids.to_doc()
    moved = Ids.from_doc({**doc, "zones": {**doc["zones"], "a": 9}})
    flows = check_step(comp, state, facts, moved, flows, known)
    assert any("reg6=0x9" in f.ofctl() for f in flows)
