"""One-object writes (replace_object / remove_object) validate exactly as parsing the
whole document with that one change: same state (protection included) or the same
errors, over random edits of every kind, valid and not."""

from __future__ import annotations

import copy
import random

import pytest

from vgw_ryu.policy import model
from vgw_ryu.policy.analysis import analyze
from vgw_ryu.policy.model import ValidationError
from vgw_ryu.policy.ruleset import effective_rules


def base_doc() -> dict:
    vms = {f"vm{i}": {"mac": f"02:00:00:00:01:{i:02x}", "ips": [f"10.0.1.{i}"],
                      "labels": {"tier": ("web", "db", "app")[i % 3]}}
           for i in range(12)}
    vms["vm3"]["protected"] = False
    return {
        "settings": {"default_ingress": "deny", "tiers": ["admin", "app"],
                     "default_tier": "app", "default_protected": False},
        "vms": vms,
        "groups": {"web": {"match_labels": {"tier": "web"}, "protected": True},
                   "db": {"match_labels": {"tier": "db"}},
                   "ops": {"members": ["vm1", "vm2"], "cidrs": ["10.0.9.0/24"]},
                   "net": {"cidrs": ["10.0.1.8/30"], "protected": True}},
        "policies": {
            "web-in": {"applied_to": ["group:web"], "rules": [
                {"id": "http", "direction": "ingress", "action": "allow",
                 "protocol": "tcp", "ports": "80", "peer": "group:db"},
                {"id": "ops", "direction": "ingress", "action": "allow",
                 "protocol": "tcp", "ports": "22", "peer": "group:ops"}]},
            "db-in": {"applied_to": ["group:db", "vm:vm11"], "tier": "admin", "rules": [
                {"id": "sql", "direction": "ingress", "action": "pass",
                 "protocol": "tcp", "ports": "5432", "peer": "group:web"}]}},
        "expectations": [{"from": "vm:vm0", "to": "group:db", "protocol": "tcp",
                          "port": 5432, "verdict": "allow"}],
    }


def _edit(rng: random.Random, doc: dict) -> tuple[str, str, object]:
    """A random write of one object: (section, name, new body or None to delete)."""
    kind = rng.choice(["vms", "vms", "groups", "policies"])
    names = sorted(doc[kind])
    name = rng.choice([*names, f"new-{kind}"])
    if rng.random() < 0.15:
        return kind, name, None
    pool = list(doc[kind].values()) or list(base_doc()[kind].values())
    body = copy.deepcopy(doc[kind].get(name) or rng.choice(pool))
    if kind == "vms":
        other = doc["vms"][rng.choice(sorted(doc["vms"]))]
        choice = rng.randrange(7)
        if choice == 0:
            body["ips"] = [other["ips"][0]]                      # maybe a clash
        elif choice == 1:
            body["mac"] = other["mac"]
        elif choice == 2:
            body["labels"] = {"tier": rng.choice(["web", "db", "app", "x"])}
        elif choice == 3:
            body["protected"] = rng.choice([True, False])
        elif choice == 4:
            body["ips"] = [f"10.0.1.{rng.randrange(8, 12)}"]     # into group net's cidr
        elif choice == 5:
            body["ips"] = ["not-an-ip"]
        else:
            body["mac"] = f"02:00:00:00:02:{rng.randrange(256):02x}"
            body["ips"] = [f"10.0.2.{rng.randrange(256)}"]
    elif kind == "groups":
        choice = rng.randrange(5)
        if choice == 0:
            body["members"] = [rng.choice([*sorted(doc["vms"]), "ghost"])]
        elif choice == 1:
            body["protected"] = rng.choice([True, False])
        elif choice == 2:
            body["match_labels"] = {"tier": rng.choice(["web", "db", "app"])}
        elif choice == 3:
            body.pop("protected", None)
        else:
            body["cidrs"] = ["10.0.1.0/29"]
    else:
        choice = rng.randrange(5)
        if choice == 0:
            body["applied_to"] = [rng.choice(["vm:vm1", "vm:ghost", "group:db",
                                              "group:ghost"])]
        elif choice == 1:
            body["rules"] = body["rules"][::-1]
        elif choice == 3:
            body["rules"] = []
        elif choice == 2:
            body["tier"] = rng.choice(["admin", "app", "nope"])
        elif choice == 3 and body["rules"]:
            body["rules"] = [dict(body["rules"][0], id="extra",
                                  peer=rng.choice(["group:web", "vm:vm2", "group:gone"]))]
        else:
            body["rules"] = [dict(r, ports="70000") for r in body["rules"]]
    return kind, name, body


def _errors(e: ValidationError) -> set[tuple[str, str]]:
    return {(f.path, f.message) for f in e.errors}


def _whole(doc: dict, kind: str, name: str, body: object) -> model.State:
    changed = copy.deepcopy(doc)
    if body is None:
        changed[kind].pop(name, None)
    else:
        changed[kind][name] = body
    return model.parse_state(changed)


@pytest.mark.parametrize("seed", range(8))
def test_one_object_writes_validate_as_the_whole_document_would(seed):
    rng = random.Random(seed)
    doc = base_doc()
    state = model.parse_state(doc)
    for _ in range(60):
        kind, name, body = _edit(rng, doc)
        try:
            want = _whole(doc, kind, name, body)
        except ValidationError as e:
            with pytest.raises(ValidationError) as got:
                if body is None:
                    model.remove_object(state, kind, name)
                else:
                    model.replace_object(state, kind, name, body)
            assert _errors(got.value) == _errors(e), (kind, name, body)
            continue
        got = (model.remove_object(state, kind, name) if body is None
               else model.replace_object(state, kind, name, body))
        assert got == want, (kind, name, body)
        assert [(v.protected, v.protected_by) for v in got.vms.values()] == \
            [(v.protected, v.protected_by) for v in want.vms.values()]
        assert list(got.vms) == list(want.vms)     # sections stay sorted by name
        assert effective_rules(got) == effective_rules(want)
        assert analyze(got) == analyze(want)
        doc, state = model.state_doc(want), got


def test_a_vm_taking_another_vms_address_names_both_as_the_whole_check_does():
    doc = base_doc()
    state = model.parse_state(doc)
    body = dict(doc["vms"]["vm0"], ips=["10.0.1.5"])
    with pytest.raises(ValidationError) as e:
        model.replace_object(state, "vms", "vm0", body)
    assert ("vms.vm5.ips[0]", "10.0.1.5 is also an address of vm 'vm0'") in _errors(e.value)


def test_removing_a_referenced_vm_is_an_error_naming_the_reference():
    state = model.parse_state(base_doc())
    with pytest.raises(ValidationError) as e:
        model.remove_object(state, "vms", "vm1")
    assert {p for p, _ in _errors(e.value)} == {"groups.ops.members[0]"}
