"""Connectivity assertions: parsing with field paths, and their check on the model."""

from __future__ import annotations

import pytest

from vgw_ryu.policy.expectations import check
from vgw_ryu.policy.model import ValidationError, parse_state, state_doc
from vgw_ryu.policy.ruleset import effective_rules

BASE = {
    "settings": {"default_ingress": "deny", "default_egress": "allow"},
    "vms": {"client": {"mac": "02:00:00:00:00:01", "ips": ["10.0.0.1"], "protected": False},
            "web1": {"mac": "02:00:00:00:00:02", "ips": ["10.0.0.2"],
                     "labels": {"tier": "web"}},
            "web2": {"mac": "02:00:00:00:00:03", "ips": ["10.0.0.3"],
                     "labels": {"tier": "web"}},
            "db": {"mac": "02:00:00:00:00:04", "ips": ["10.0.0.4"]}},
    "groups": {"web": {"match_labels": {"tier": "web"}}},
    "policies": {"web": {"applied_to": ["group:web"], "rules": [
        {"id": "http", "direction": "ingress", "action": "allow", "protocol": "tcp",
         "ports": "80"},
        {"id": "no-db", "direction": "egress", "action": "reject", "protocol": "tcp",
         "ports": "5432", "peer": "vm:db"}]}},
}


def _check(expectations: list[dict]) -> list[dict]:
    st = parse_state({**BASE, "expectations": expectations})
    return check(st, effective_rules(st))


def test_round_trip_and_bare_vm_names():
    exp = [{"from": "client", "to": "group:web", "protocol": "tcp", "port": 80,
            "verdict": "allow"},
           {"from": "vm:web1", "to": "cidr:192.0.2.0/24", "protocol": "icmp",
            "verdict": "allow"}]
    st = parse_state({**BASE, "expectations": exp})
    assert parse_state(state_doc(st)) == st
    assert state_doc(st)["expectations"][0]["from"] == "client"
    assert "expectations" not in state_doc(parse_state(BASE))


def test_kept_expectations_pass():
    assert _check([{"from": "client", "to": "group:web", "protocol": "tcp", "port": 80,
                    "verdict": "allow"},
                   {"from": "client", "to": "db", "protocol": "tcp", "port": 5432,
                    "verdict": "deny"},
                   {"from": "web1", "to": "db", "protocol": "tcp", "port": 5432,
                    "verdict": "reject"}]) == []


def test_broken_expectation_names_each_pair_and_the_deciding_rule():
    got = _check([{"from": "client", "to": "group:web", "protocol": "tcp", "port": 22,
                   "verdict": "allow"}])
    assert [v["pair"] for v in got] == [["client", "web1"], ["client", "web2"]]
    assert got[0]["got"] == "deny" and got[0]["decided_by"] == "web1 ingress: default"
    got = _check([{"from": "web2", "to": "db", "protocol": "tcp", "port": 5432,
                   "verdict": "allow"}])
    assert got[0]["got"] == "reject" and got[0]["decided_by"] == "web2 egress: web/no-db"


def test_an_outside_host_is_judged_by_the_vm_side_only():
    assert _check([{"from": "cidr:198.51.100.0/24", "to": "web1", "protocol": "tcp",
                    "port": 80, "verdict": "allow"}]) == []
    assert _check([{"from": "cidr:198.51.100.0/24", "to": "db", "protocol": "tcp",
                    "port": 80, "verdict": "allow"}])[0]["got"] == "deny"


@pytest.mark.parametrize("exp,field", [
    ({"from": "ghost", "to": "web1", "verdict": "allow", "port": 1}, "expectations[0].from"),
    ({"from": "web1", "to": "group:nope", "verdict": "allow", "port": 1},
     "expectations[0].to"),
    ({"from": "web1", "to": "db", "verdict": "maybe", "port": 1}, "expectations[0].verdict"),
    ({"from": "web1", "to": "db", "verdict": "allow"}, "expectations[0].port"),
    ({"from": "web1", "to": "db", "protocol": "icmp", "port": 3, "verdict": "allow"},
     "expectations[0].port"),
    ({"from": "web1", "to": "db", "protocol": "sctp", "port": 3, "verdict": "allow"},
     "expectations[0].protocol"),
    ({"from": "cidr:10.0.0.0/8", "to": "cidr:10.1.0.0/16", "port": 1, "verdict": "allow"},
     "expectations[0]"),
    ({"from": "cidr:nope", "to": "db", "port": 1, "verdict": "allow"},
     "expectations[0].from"),
    ({"to": "db", "port": 1, "verdict": "allow"}, "expectations[0].from"),
    ({"from": "web1", "to": "db", "port": 1, "verdict": "allow", "why": "x"},
     "expectations[0].why"),
])
def test_bad_expectations_name_the_field(exp, field):
    with pytest.raises(ValidationError) as e:
        parse_state({**BASE, "expectations": [exp]})
    assert e.value.field == field


def test_expectations_must_be_a_list():
    with pytest.raises(ValidationError) as e:
        parse_state({**BASE, "expectations": {"from": "web1"}})
    assert e.value.field == "expectations"
