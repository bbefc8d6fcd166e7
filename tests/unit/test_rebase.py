"""A document read back from the database, applied by its changed objects (``rebase``),
gives exactly the state a whole parse gives, or says it cannot (None); it shares every
object the document did not change."""

from __future__ import annotations

import copy
import random

import pytest

from tests.unit.test_object_writes import _edit, base_doc
from vgw_ryu.policy import model
from vgw_ryu.policy.analysis import analyze
from vgw_ryu.policy.model import ValidationError
from vgw_ryu.policy.rebase import MAX_OBJECTS, DocCache, rebase
from vgw_ryu.policy.ruleset import effective_rules


def _changed(rng: random.Random, doc: dict) -> dict:
    """``doc`` after one to three random object writes, and now and then a settings or
    assertions change (which rebase leaves to a whole parse)."""
    new = copy.deepcopy(doc)
    for _ in range(rng.choice([1, 1, 2, 3])):
        kind, name, body = _edit(rng, new)
        if body is None:
            new[kind].pop(name, None)
        else:
            new[kind][name] = body
    if rng.random() < 0.1:
        new["settings"]["default_ingress"] = rng.choice(["allow", "deny"])
    if rng.random() < 0.05:
        new["expectations"] = []
    return new


@pytest.mark.parametrize("seed", range(8))
def test_rebased_states_equal_whole_parses(seed):
    rng = random.Random(seed)
    doc = base_doc()
    state = model.parse_state(doc)
    cache = DocCache()
    rebased = 0
    for _ in range(60):
        new = _changed(rng, doc)
        try:
            want = model.parse_state(new)
        except ValidationError:
            # An invalid document is never adopted object by object.
            assert rebase(state, new, cache) is None
            continue
        got = rebase(state, new, cache)
        if got is None:
            got = want
        else:
            rebased += 1
            assert model.state_doc(got) == model.state_doc(want)
            assert [(n, v.protected, v.protected_by) for n, v in sorted(got.vms.items())] \
                == [(n, v.protected, v.protected_by) for n, v in sorted(want.vms.items())]
            assert effective_rules(got) == {n: effective_rules(want)[n] for n in got.vms}
            assert analyze(got) == analyze(want)
            # What the document did not change is the very object held before (but a
            # group's change may move other VMs' protection, making new VM objects).
            for kind in ("vms", "groups", "policies"):
                if kind == "vms" and doc["groups"] != new["groups"]:
                    continue
                for name, obj in getattr(state, kind).items():
                    if doc[kind].get(name) == new[kind].get(name):
                        assert getattr(got, kind)[name] is obj, (kind, name)
        doc, state = model.state_doc(want), got
    assert rebased >= 15


def test_nothing_changed_is_the_state_held_and_a_settings_change_is_a_whole_parse():
    doc = base_doc()
    state = model.parse_state(doc)
    cache = DocCache()
    assert rebase(state, model.state_doc(state), cache) is state
    changed = {**model.state_doc(state), "settings": {"default_ingress": "allow"}}
    assert rebase(state, changed, cache) is None


def test_many_changed_objects_are_parsed_whole():
    doc = base_doc()
    state = model.parse_state(doc)
    many = model.state_doc(state)
    for i in range(MAX_OBJECTS + 1):
        many["vms"][f"x{i}"] = {"mac": f"02:00:00:00:02:{i:02x}", "ips": [f"10.0.2.{i}"]}
    assert rebase(state, many, DocCache()) is None
    few = model.state_doc(state)
    few["vms"]["x0"] = many["vms"]["x0"]
    assert rebase(state, few, DocCache()).vms["x0"].ips == model.parse_state(few).vms["x0"].ips
