"""Validation: every bad input is named by its field path and reason."""

import copy

import pytest

from vgw_ryu.policy.model import ValidationError, parse_object, parse_state, state_doc

BASE = {
    "settings": {"default_ingress": "deny", "default_egress": "allow"},
    "vms": {
        "web1": {"mac": "02:00:00:00:01:01", "ips": ["10.0.0.11", "fd00::11"],
                 "labels": {"tier": "web"}},
        "jump1": {"mac": "02:00:00:00:09:01", "ips": ["10.0.0.91"]},
    },
    "groups": {"web": {"match_labels": {"tier": "web"}},
               "admins": {"members": ["jump1"], "cidrs": ["192.0.2.0/24"]}},
    "policies": {"web-in": {"applied_to": ["group:web"], "rules": [
        {"id": "http", "direction": "ingress", "action": "allow", "protocol": "tcp",
         "ports": "80,443", "peer": "any"},
        {"id": "ssh", "direction": "ingress", "action": "allow", "protocol": "tcp",
         "ports": "22", "peer": "group:admins", "log": True},
    ]}},
}


def with_change(path: str, value):
    doc = copy.deepcopy(BASE)
    keys = path.split("/")
    cur = doc
    for k in keys[:-1]:
        cur = cur[int(k)] if isinstance(cur, list) else cur[k]
    last = keys[-1]
    if isinstance(cur, list):
        cur[int(last)] = value
    elif value is DELETE:
        del cur[last]
    else:
        cur[last] = value
    return doc


DELETE = object()
R1 = "policies/web-in/rules/1"

CASES = [
    # (change path, new value, expected field, expected message fragment)
    ("vms/Web1", {"ips": []}, "vms.Web1", "not a valid name"),
    ("vms/-x", {"ips": []}, "vms.-x", "not a valid name"),
    ("vms/" + "a" * 64, {"ips": []}, "vms." + "a" * 64, "not a valid name"),
    ("groups/a b", {}, "groups.a b", "not a valid name"),
    ("vms/web1/mac", "02:00:00:00:01", "vms.web1.mac", "not a MAC"),
    ("vms/web1/mac", "01:00:5e:00:00:01", "vms.web1.mac", "multicast"),
    ("vms/web1/ips", ["10.0.0.300"], "vms.web1.ips[0]", "not an IP address"),
    ("vms/web1/ips", "10.0.0.1", "vms.web1.ips", "must be a list"),
    ("groups/admins/cidrs", ["192.0.2.1/24"], "groups.admins.cidrs[0]", "host bits"),
    ("groups/admins/cidrs", ["banana"], "groups.admins.cidrs[0]", "not a CIDR"),
    (R1 + "/ports", "70000", "policies.web-in.rules[1].ports", "70000 is not a port (1-65535)"),
    (R1 + "/ports", "0", "policies.web-in.rules[1].ports", "0 is not a port"),
    (R1 + "/ports", "90-80", "policies.web-in.rules[1].ports", "reversed range"),
    (R1 + "/ports", "http", "policies.web-in.rules[1].ports", "not a port or range"),
    (R1, {"id": "x", "direction": "ingress", "action": "allow", "protocol": "icmp",
          "ports": "80"}, "policies.web-in.rules[1].ports", "need protocol tcp or udp"),
    (R1, {"id": "x", "direction": "ingress", "action": "allow", "ports": "80"},
     "policies.web-in.rules[1].ports", "need protocol tcp or udp"),
    (R1 + "/direction", "inbound", "policies.web-in.rules[1].direction", "not one of"),
    (R1 + "/action", "permit", "policies.web-in.rules[1].action", "not one of"),
    (R1 + "/protocol", "quic", "policies.web-in.rules[1].protocol", "not a protocol"),
    (R1 + "/priority", 0, "policies.web-in.rules[1].priority", "not a priority (1-1000)"),
    (R1 + "/priority", 1001, "policies.web-in.rules[1].priority", "not a priority"),
    (R1 + "/priority", "high", "policies.web-in.rules[1].priority", "not a priority"),
    (R1 + "/peer", "vm:ghost", "policies.web-in.rules[1].peer", "vm 'ghost' does not exist"),
    (R1 + "/peer", "group:ghost", "policies.web-in.rules[1].peer", "does not exist"),
    (R1 + "/peer", "host:x", "policies.web-in.rules[1].peer", "not a peer"),
    (R1 + "/peer", "cidr:10.0.0.0/33", "policies.web-in.rules[1].peer", "not a CIDR"),
    ("policies/web-in/applied_to", ["vm:ghost"], "policies.web-in.applied_to[0]",
     "does not exist"),
    ("policies/web-in/applied_to", ["group:ghost"], "policies.web-in.applied_to[0]",
     "does not exist"),
    ("policies/web-in/applied_to", ["web1"], "policies.web-in.applied_to[0]",
     "not vm:NAME or group:NAME"),
    (R1 + "/id", "http", "policies.web-in.rules[1].id", "duplicate rule id"),
    (R1, {"id": "x", "direction": "ingress", "action": "allow", "protocol": "icmpv6",
          "peer": "cidr:192.0.2.0/24"}, "policies.web-in.rules[1].peer",
     "IPv4 prefix cannot be the peer of a icmpv6 rule"),
    (R1 + "/colour", "red", "policies.web-in.rules[1].colour", "unknown field"),
    ("vms/web1/color", "red", "vms.web1.color", "unknown field"),
    ("settings/default_ingress", "maybe", "settings.default_ingress", "not one of"),
    ("settings/unknown_ports", "flood", "settings.unknown_ports", "not one of"),
    ("settings/log_default_deny", "yes", "settings.log_default_deny", "true or false"),
    ("settings/extra", 1, "settings.extra", "unknown field"),
    ("groups/admins/members", ["ghost"], "groups.admins.members[0]", "does not exist"),
    ("vms/web1/labels", {"tier": 5}, "vms.web1.labels.tier", "label values"),
    (R1 + "/log", "yes", "policies.web-in.rules[1].log", "true or false"),
    (R1 + "/direction", DELETE, "policies.web-in.rules[1].direction", "is required"),
    ("vms/jump1/mac", "02:00:00:00:01:01", "vms.web1.mac", "also the MAC of vm 'jump1'"),
    ("vms/jump1/ips", ["10.0.0.11"], "vms.web1.ips[0]", "also an address of vm 'jump1'"),
]


@pytest.mark.parametrize("path,value,field,fragment", CASES,
                         ids=[f"{c[0]}={c[1]!r}"[:60] for c in CASES])
def test_bad_input_names_the_field(path, value, field, fragment):
    doc = with_change(path, value)
    with pytest.raises(ValidationError) as e:
        parse_state(doc)
    fields = [err.path for err in e.value.errors]
    assert field in fields, (fields, str(e.value))
    msg = next(str(err) for err in e.value.errors if err.path == field)
    assert fragment in msg
    assert msg.startswith(field + ": ")


def test_error_message_example_from_issue():
    doc = with_change(R1 + "/ports", "70000")
    with pytest.raises(ValidationError) as e:
        parse_state(doc)
    assert str(e.value) == "policies.web-in.rules[1].ports: 70000 is not a port (1-65535)"


def test_top_level_must_be_an_object():
    with pytest.raises(ValidationError) as e:
        parse_state(["not", "a", "dict"])
    assert "must be an object" in str(e.value)
    with pytest.raises(ValidationError) as e:
        parse_state({"vms": []})
    assert e.value.field == "vms"


def test_valid_document_round_trips():
    state = parse_state(BASE)
    doc = state_doc(state)
    assert parse_state(doc) == state
    assert doc["policies"]["web-in"]["rules"][0]["ports"] == "80,443"
    assert doc["vms"]["web1"]["ips"] == ["10.0.0.11", "fd00::11"]


def test_ports_normalised_and_ranges():
    doc = with_change(R1 + "/ports", "443, 80,8000-8080,80")
    rule = parse_state(doc).policies["web-in"].rules[1]
    assert rule.ports == ((80, 80), (443, 443), (8000, 8080))
    assert rule.ports_text() == "80,443,8000-8080"
    doc = with_change(R1 + "/ports", 22)
    assert parse_state(doc).policies["web-in"].rules[1].ports == ((22, 22),)


def test_defaults():
    state = parse_state({})
    assert state.settings.default_ingress == "deny"
    assert state.settings.default_egress == "allow"
    assert state.settings.unknown_ports == "drop"
    state = parse_state(BASE)
    rule = state.policies["web-in"].rules[0]
    assert (rule.priority, rule.log) == (100, False)
    assert state.vms["web1"].protected is True


def test_parse_object_checks_one_object():
    vm = parse_object("vms", "db1", {"mac": "02:00:00:00:03:01", "ips": ["10.0.0.31"]})
    assert vm.mac == "02:00:00:00:03:01"
    with pytest.raises(ValidationError) as e:
        parse_object("vms", "db1", {"mac": "zz"})
    assert e.value.field == "vms.db1.mac"
    with pytest.raises(ValidationError) as e:
        parse_object("policies", "../etc", {})
    assert e.value.field == "policies.../etc"


def test_mac_is_lowercased():
    doc = with_change("vms/web1/mac", "02:AA:00:00:01:01")
    assert parse_state(doc).vms["web1"].mac == "02:aa:00:00:01:01"


def test_ports_as_a_yaml_list():
    rule = {"id": "r", "direction": "ingress", "action": "allow", "protocol": "udp"}
    st = parse_state({"policies": {"p": {"rules": [{**rule, "ports": [53, "5000-5010"]}]}}})
    assert st.policies["p"].rules[0].ports == ((53, 53), (5000, 5010))
    assert state_doc(st)["policies"]["p"]["rules"][0]["ports"] == "53,5000-5010"
    for bad in ([], [True], [[53]], [70000]):
        with pytest.raises(ValidationError) as e:
            parse_state({"policies": {"p": {"rules": [{**rule, "ports": bad}]}}})
        assert e.value.field == "policies.p.rules[0].ports"


@pytest.mark.parametrize("extra,field", [
    ({"protocol": "tcp", "icmp_type": 8}, "icmp_type"),
    ({"protocol": "icmp", "icmp_code": 0}, "icmp_code"),
    ({"protocol": "icmp", "icmp_type": 256}, "icmp_type"),
    ({"protocol": "icmp", "icmp_type": True}, "icmp_type"),
    ({"protocol": "icmp", "src_ports": "53"}, "src_ports"),
    ({"protocol": "udp", "src_ports": "70000"}, "src_ports"),
    ({"protocol": 256}, "protocol"),
    ({"protocol": "quic"}, "protocol"),
    ({"protocol": True}, "protocol"),
])
def test_rich_match_errors_name_the_field(extra, field):
    rule = {"id": "r", "direction": "ingress", "action": "allow", **extra}
    with pytest.raises(ValidationError) as e:
        parse_state({"policies": {"p": {"rules": [rule]}}})
    assert e.value.field == f"policies.p.rules[0].{field}"


@pytest.mark.parametrize("given,stored", [(6, "tcp"), ("17", "udp"), (47, "gre"),
                                          ("132", "sctp"), (253, "253"), ("vrrp", "vrrp")])
def test_protocols_by_number_or_name(given, stored):
    rule = {"id": "r", "direction": "ingress", "action": "allow", "protocol": given}
    st = parse_state({"policies": {"p": {"rules": [rule]}}})
    assert st.policies["p"].rules[0].protocol == stored
    assert parse_state(state_doc(st)) == st


def test_icmp_type_and_source_ports_round_trip():
    rules = [{"id": "e", "direction": "ingress", "action": "allow", "protocol": "icmpv6",
              "icmp_type": 128, "icmp_code": 0},
             {"id": "d", "direction": "ingress", "action": "allow", "protocol": "udp",
              "src_ports": [53], "ports": "1024-65535"}]
    st = parse_state({"policies": {"p": {"rules": rules}}})
    doc = state_doc(st)["policies"]["p"]["rules"]
    assert (doc[0]["icmp_type"], doc[0]["icmp_code"], doc[1]["src_ports"]) == (128, 0, "53")
    assert parse_state(state_doc(st)) == st


def test_address_pairs_round_trip_and_errors():
    vm = {"mac": "02:00:00:00:00:01", "ips": ["10.0.0.1"],
          "address_pairs": [{"ip": "10.0.0.100"}, {"ip": "10.0.1.0/28",
                                                  "mac": "00:00:5E:00:01:07"}]}
    st = parse_state({"vms": {"a": vm}})
    assert state_doc(st)["vms"]["a"]["address_pairs"] == [
        {"ip": "10.0.0.100"}, {"ip": "10.0.1.0/28", "mac": "00:00:5e:00:01:07"}]
    assert parse_state(state_doc(st)) == st
    for bad, field in (({"ip": "nope"}, "address_pairs[0].ip"),
                       ({"ip": "10.0.0.5", "mac": "01:00:00:00:00:01"},
                        "address_pairs[0].mac"),
                       ({"mac": "02:00:00:00:00:09"}, "address_pairs[0].ip"),
                       ({"ip": "10.0.0.5", "vip": True}, "address_pairs[0].vip")):
        with pytest.raises(ValidationError) as e:
            parse_state({"vms": {"a": {**vm, "address_pairs": [bad]}}})
        assert e.value.field == f"vms.a.{field}"


def test_group_except_prefixes():
    st = parse_state({"groups": {"g": {"cidrs": ["10.0.0.0/24"],
                                       "except": ["10.0.0.0/25"]}}})
    assert [str(n) for n in st.groups["g"].resolved_cidrs()] == ["10.0.0.128/25"]
    assert state_doc(st)["groups"]["g"]["except"] == ["10.0.0.0/25"]
    assert parse_state(state_doc(st)) == st
    for outside in ("10.1.0.0/24", "10.0.0.0/16"):   # elsewhere, or larger than the cidr
        with pytest.raises(ValidationError) as e:
            parse_state({"groups": {"g": {"cidrs": ["10.0.0.0/24"], "except": [outside]}}})
        assert e.value.field == "groups.g.except[0]"


TIERED = {"tiers": ["admin", "application", "baseline"], "default_tier": "application"}


@pytest.mark.parametrize("doc,field", [
    ({"settings": TIERED, "policies": {"p": {"tier": "nope"}}}, "policies.p.tier"),
    ({"settings": TIERED, "policies": {"p": {"tier": "baseline", "rules": [
        {"id": "r", "direction": "ingress", "action": "pass"}]}}}, "policies.p.rules[0].action"),
    ({"policies": {"p": {"rules": [{"id": "r", "direction": "ingress", "action": "pass"}]}}},
     "policies.p.rules[0].action"),   # one tier: pass has nowhere to go
    ({"settings": TIERED, "policies": {"p": {"rules": [
        {"id": "r", "direction": "ingress", "action": "pass", "log": True}]}}},
     "policies.p.rules[0].log"),
    ({"settings": {"tiers": [f"t{i}" for i in range(9)]}}, "settings.tiers"),
    ({"settings": {"tiers": ["a", "a"]}}, "settings.tiers"),
    ({"settings": {"tiers": ["a", "B"]}}, "settings.tiers[1]"),
    ({"settings": {"tiers": ["a", "b"], "default_tier": "c"}}, "settings.default_tier"),
])
def test_tier_errors_name_the_field(doc, field):
    with pytest.raises(ValidationError) as e:
        parse_state(doc)
    assert e.value.field == field


def test_tiers_round_trip_and_defaults():
    st = parse_state({"settings": TIERED, "policies": {
        "a": {"tier": "admin", "rules": [{"id": "r", "direction": "ingress",
                                          "action": "pass"}]},
        "b": {}}})
    assert st.settings.tier_of(st.policies["a"].tier) == 0
    assert st.settings.tier_of(st.policies["b"].tier) == 1     # default_tier
    assert parse_state(state_doc(st)) == st
    assert parse_state({}).settings.tiers == ("default",)


@pytest.mark.parametrize("vm_says,groups,default,want", [
    (None, {}, True, True),
    (None, {}, False, False),
    (None, {"g": {"members": ["a"], "protected": True}}, False, True),
    (None, {"g": {"match_labels": {"t": "x"}, "protected": True}}, False, True),
    (None, {"g": {"cidrs": ["10.0.0.0/24"], "protected": True}}, False, True),
    (None, {"g": {"cidrs": ["10.9.0.0/24"], "protected": True}}, False, False),
    (None, {"g": {"members": ["a"], "protected": False}}, True, False),
    (None, {"g": {"members": ["a"], "protected": False},
            "h": {"members": ["a"], "protected": True}}, True, True),   # protect wins
    (False, {"g": {"members": ["a"], "protected": True}}, True, False),  # the VM's own word
    (True, {"g": {"members": ["a"], "protected": False}}, False, True),
])
def test_protection_by_group(vm_says, groups, default, want):
    vm = {"mac": "02:00:00:00:00:01", "ips": ["10.0.0.1"], "labels": {"t": "x"}}
    if vm_says is not None:
        vm["protected"] = vm_says
    st = parse_state({"settings": {"default_protected": default}, "vms": {"a": vm},
                      "groups": groups})
    assert st.vms["a"].protected is want
    doc = state_doc(st)
    assert doc["vms"]["a"].get("protected") == vm_says   # only what the VM itself said
    assert parse_state(doc) == st
