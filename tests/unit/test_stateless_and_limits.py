"""Stateless rules and connection limits: validation, compiled flows, model verdicts."""

from __future__ import annotations

import ipaddress

import pytest

from vgw_ryu.compiler import PortFacts, SwitchFacts, compile_switch
from vgw_ryu.pipeline import tables
from vgw_ryu.policy.ids import Ids
from vgw_ryu.policy.model import ValidationError, parse_state, state_doc
from vgw_ryu.policy.ruleset import connection_limit, effective_rules, evaluate

VM = {"mac": "02:00:00:00:00:01", "ips": ["10.0.0.1"]}


def _doc(rule: dict, **vm_extra) -> dict:
    return {"vms": {"a": {**VM, **vm_extra}},
            "policies": {"p": {"applied_to": ["vm:a"], "rules": [rule]}}}


DNS = {"id": "dns", "direction": "egress", "action": "allow", "protocol": "udp",
       "ports": "53", "stateful": False}


@pytest.mark.parametrize("rule,field", [
    ({**DNS, "action": "deny"}, "policies.p.rules[0].stateful"),
    ({**DNS, "action": "reject"}, "policies.p.rules[0].stateful"),
    ({**DNS, "log": True}, "policies.p.rules[0].log"),
    ({**DNS, "stateful": "no"}, "policies.p.rules[0].stateful"),
])
def test_stateless_rule_validation(rule, field):
    with pytest.raises(ValidationError) as e:
        parse_state(_doc(rule))
    assert e.value.field == field


@pytest.mark.parametrize("value", [-1, 10_000_001, "50", True, 1.5])
def test_bad_connection_limits(value):
    with pytest.raises(ValidationError) as e:
        parse_state(_doc(DNS, max_connections=value))
    assert e.value.field == "vms.a.max_connections"
    with pytest.raises(ValidationError) as e:
        parse_state({"settings": {"max_connections": value}})
    assert e.value.field == "settings.max_connections"


def test_limits_round_trip_and_default():
    st = parse_state({**_doc(DNS, max_connections=50), "settings": {"max_connections": 7}})
    assert parse_state(state_doc(st)) == st
    assert connection_limit(st, "a") == 50
    st2 = parse_state({**_doc(DNS), "settings": {"max_connections": 7}})
    assert connection_limit(st2, "a") == 7
    assert state_doc(st2)["vms"]["a"].get("max_connections") is None
    assert state_doc(st)["policies"]["p"]["rules"][0]["stateful"] is False


def _flows(doc: dict):
    st = parse_state(doc)
    ids = Ids()
    ids.sync(st)
    facts = SwitchFacts((PortFacts(1, "tap-a", "vm", "a", VM["mac"]),))
    return compile_switch(st, facts, ids), ids


def test_stateless_rule_compiles_into_the_ct_table_not_the_rules_table():
    flows, ids = _flows(_doc(DNS))
    assert tables.check(flows) == []
    number = ids.rule("p", "dns")
    ct = [f for f in flows if f.table == tables.T["egress_ct"]]
    assert any(("conj_id", number) in f.match for f in ct)
    assert any(f"conjunction({number}," in f.body for f in ct)
    assert not any(f"conjunction({number}," in f.body or ("conj_id", number) in f.match
                   for f in flows if f.table == tables.T["rules"])
    passing = next(f for f in ct if ("conj_id", number) in f.match)
    assert passing.goto == tables.T["ingress_classify"] and "ct(" not in passing.body


def test_stateless_ingress_rule_outputs_without_conntrack():
    flows, ids = _flows(_doc({**DNS, "direction": "ingress"}))
    assert tables.check(flows) == []
    number = ids.rule("p", "dns")
    passing = next(f for f in flows if f.table == tables.T["ingress_ct"]
                   and ("conj_id", number) in f.match)
    assert "output:NXM_NX_REG5[]" in passing.body and "ct(" not in passing.body


def test_model_judges_stateless_rules_first():
    doc = _doc(DNS)
    doc["policies"]["p"]["rules"].append({"id": "no", "direction": "egress", "action": "deny",
                                          "priority": 900})
    st = parse_state(doc)
    v = evaluate(st, effective_rules(st)["a"], "egress", ipaddress.ip_address("10.9.9.9"),
                 "udp", 53)
    assert (v.verdict, v.rule) == ("allow", "dns")
    v = evaluate(st, effective_rules(st)["a"], "egress", ipaddress.ip_address("10.9.9.9"),
                 "udp", 54)
    assert (v.verdict, v.rule) == ("deny", "no")
