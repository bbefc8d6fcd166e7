"""The engine without Ryu: state through the store, port identity, switch views."""

from __future__ import annotations

import copy
import json

import pytest

from vgw_ryu.pipeline import tables as pipeline
from vgw_ryu.policy.model import ValidationError, parse_state, state_doc
from vgw_ryu.runtime.engine import Engine, classify_port
from vgw_ryu.runtime.ports import Iface
from vgw_ryu.store.memory import MemoryStore
from vgw_ryu.store.ovsdb import ConflictError
from vgw_ryu.store.zonefile import ZoneFile

DOC = {
    "settings": {"uplinks": ["eth*", "bond?"]},
    "vms": {
        "web1": {"mac": "02:00:00:00:01:01", "ips": ["10.0.0.11"], "labels": {"tier": "web"}},
        "app1": {"mac": "02:00:00:00:02:01", "ips": ["10.0.0.21"]},
        "nomac": {"ips": ["10.0.0.31"]},
        "open1": {"mac": "02:00:00:00:04:01", "ips": ["10.0.0.41"], "protected": False},
    },
    "policies": {"web-in": {"applied_to": ["vm:web1"], "rules": [
        {"id": "http", "direction": "ingress", "action": "allow", "protocol": "tcp",
         "ports": "80"}]}},
}
STATE = parse_state(DOC)


@pytest.fixture
def stores(tmp_path):
    """The same name gives the same store, as reopening a database would."""
    made: dict[str, MemoryStore] = {}

    def make(name: str = "state.db") -> MemoryStore:
        return made.setdefault(name, MemoryStore(str(tmp_path / name)))

    return make


def _engine(store: MemoryStore) -> Engine:
    """An engine with this store and its hypervisor's zone file beside it."""
    return Engine(store, ZoneFile(store.path + ".zones"))


@pytest.fixture
def engine(stores) -> Engine:
    e = _engine(stores())
    assert e.apply_document(copy.deepcopy(DOC)) == 1
    return e


def doc_bytes(e: Engine) -> str:
    return json.dumps(e.state_document(), sort_keys=True)


# --- state ---------------------------------------------------------------------------------
def test_empty_store_gives_empty_state_at_revision_zero(stores):
    e = _engine(stores())
    assert e.revision == 0
    doc = e.state_document()
    assert doc["revision"] == 0
    assert (doc["vms"], doc["groups"], doc["policies"]) == ({}, {}, {})
    assert doc["settings"]["default_ingress"] == "deny"


def test_apply_document_returns_successive_revisions(engine):
    assert engine.revision == 1
    doc = engine.state_document()
    doc.pop("revision")
    doc["vms"]["db1"] = {"ips": ["10.0.0.51"]}
    assert engine.apply_document(doc) == 2
    assert engine.apply_document(doc) == 3        # same content is still a new revision
    assert engine.revision == 3 and engine.state_document()["revision"] == 3
    assert "db1" in engine.state_document()["vms"]


def test_state_document_is_a_copy(engine):
    doc = engine.state_document()
    doc["vms"].clear()
    assert set(engine.state_document()["vms"]) == {"web1", "app1", "nomac", "open1"}


@pytest.mark.parametrize("bad,field", [
    ({"vms": {"x": {"ips": ["nope"]}}}, "vms.x.ips[0]"),
    ({"policies": {"p": {"applied_to": ["vm:ghost"]}}}, "policies.p.applied_to[0]"),
    ([1, 2], ""),
])
def test_invalid_document_raises_and_changes_nothing(engine, stores, bad, field):
    before = doc_bytes(engine)
    with pytest.raises(ValidationError) as e:
        engine.apply_document(bad)
    assert e.value.field == field
    assert doc_bytes(engine) == before and engine.revision == 1
    assert doc_bytes(_engine(stores())) == before     # nothing reached the store


def test_if_match_through_the_engine(engine):
    doc = {k: v for k, v in engine.state_document().items() if k != "revision"}
    assert engine.apply_document(doc, if_match=1) == 2
    with pytest.raises(ConflictError):
        engine.apply_document(doc, if_match=1)
    assert engine.revision == 2


def test_a_new_engine_sees_the_committed_state_and_zones(engine, stores, tmp_path):
    zones_before = _zones(engine)
    again = _engine(stores())
    assert again.revision == 1
    assert doc_bytes(again) == doc_bytes(engine)
    assert _zones(again) == zones_before


def _zones(e: Engine) -> dict[str, int | None]:
    """Zone of each VM as the engine reports it where the VM is seen."""
    ifaces = [Iface(f"tap-{n}", i + 1, "", {"vm-id": n})
              for i, n in enumerate(sorted(e.state_document()["vms"]))]
    e.refresh_facts(0x99, ifaces)
    return {vm: locs[0]["zone"] for vm, locs in e.vm_locations().items()}


def test_zones_allocated_locally_for_a_state_written_elsewhere(stores):
    s = stores()
    s.write(state_doc(STATE), {"web-in/http": 1}, 0)   # e.g. written by an API server
    e = _engine(s)
    assert _zones(e) == {"app1": 1, "nomac": 2, "web1": 3, "open1": None}
    assert ZoneFile(s.path + ".zones").load()["zones"] == {"app1": 1, "nomac": 2,
                                                           "web1": 3}   # persisted
    assert s.revision() == 1


def test_invalid_stored_state_refuses_to_start(stores):
    s = stores()
    s.write({"vms": {"x": {"ips": ["nope"]}}}, {}, 0)
    with pytest.raises(RuntimeError, match=r"is invalid: .*vms\.x\.ips"):
        _engine(s)


def test_apply_if_changed_makes_the_state_equal_and_restores_drift(stores):
    s = stores()
    e = _engine(s)
    assert e.apply_if_changed(json.loads(json.dumps(DOC))) == 1
    assert e.apply_if_changed(json.loads(json.dumps(DOC))) is None   # already equal
    assert e.revision == 1
    # Drift (any other write) is undone by applying the same document again.
    doc = {k: v for k, v in e.state_document().items() if k != "revision"}
    doc["vms"]["db1"] = {"ips": []}
    assert e.apply_document(doc) == 2
    again = _engine(s)
    assert again.apply_if_changed(json.loads(json.dumps(DOC))) == 3
    assert "db1" not in again.state_document()["vms"]
    assert s.meta("source") == "state-file"


def test_apply_if_changed_rejects_an_invalid_document_and_changes_nothing(stores):
    e = _engine(stores())
    with pytest.raises(ValidationError):
        e.apply_if_changed({"vms": []})
    assert e.revision == 0
    assert e.apply_if_changed(DOC) == 1


# --- port identity ------------------------------------------------------------------------
def kind(iface: Iface, learned: str | None = None) -> tuple:
    p = classify_port(STATE, iface, learned)
    return p.ofport, p.name, p.kind, p.vm, p.mac


@pytest.mark.parametrize("key", ["vm-id", "iface-id"])
def test_classify_by_vm_or_iface_id(key):
    assert kind(Iface("tap0", 3, "", {key: "web1"})) == \
        (3, "tap0", "vm", "web1", "02:00:00:00:01:01")


def test_vm_id_wins_over_iface_id():
    assert kind(Iface("tap0", 3, "", {"vm-id": "app1", "iface-id": "web1"}))[3] == "app1"


def test_id_of_vm_without_mac_takes_the_attached_mac():
    assert kind(Iface("tap0", 3, "", {"vm-id": "nomac",
                                      "attached-mac": "02:AA:00:00:00:01"})) == \
        (3, "tap0", "vm", "nomac", "02:aa:00:00:00:01")


def test_declared_mac_wins_over_attached_mac():
    assert kind(Iface("tap0", 3, "", {"vm-id": "web1", "attached-mac": "02:aa:00:00:00:01"}))[4] \
        == "02:00:00:00:01:01"


def test_classify_by_attached_mac_case_insensitive():
    assert kind(Iface("vnet7", 4, "", {"attached-mac": "02:00:00:00:02:01".upper()})) == \
        (4, "vnet7", "vm", "app1", "02:00:00:00:02:01")


def test_classify_by_learned_mac():
    assert kind(Iface("vnet8", 5, ""), learned="02:00:00:00:01:01")[2:4] == ("vm", "web1")


def test_unknown_vm_id_falls_back_to_mac():
    assert kind(Iface("tap0", 3, "", {"vm-id": "ghost",
                                      "attached-mac": "02:00:00:00:02:01"}))[2:4] == ("vm", "app1")


def test_uplink_role_wins_over_everything():
    assert kind(Iface("tap0", 3, "", {"vgw-role": "uplink", "vm-id": "web1"})) == \
        (3, "tap0", "uplink", None, None)


@pytest.mark.parametrize("type_", ["vxlan", "geneve", "gre", "patch", "stt"])
def test_tunnels_and_patch_ports_are_uplinks(type_):
    assert kind(Iface("t0", 7, type_))[2] == "uplink"


def test_declared_vm_on_a_tunnel_named_port_is_still_the_vm():
    assert kind(Iface("eth9", 3, "", {"vm-id": "web1"}))[2:4] == ("vm", "web1")


@pytest.mark.parametrize("name,want", [("eth0", "uplink"), ("eth10", "uplink"),
                                       ("bond0", "uplink"), ("bond10", "unknown"),
                                       ("veth0", "unknown"), ("ETH0", "unknown")])
def test_uplinks_by_name_pattern(name, want):
    assert kind(Iface(name, 2, ""))[2] == want


def test_uplink_name_beats_a_vm_mac():
    assert kind(Iface("eth1", 2, "", {"attached-mac": "02:00:00:00:01:01"}))[2] == "uplink"


@pytest.mark.parametrize("eid,learned,mac", [
    ({}, None, None),
    ({"attached-mac": "02:99:00:00:00:01"}, None, "02:99:00:00:00:01"),
    ({}, "02:98:00:00:00:01", "02:98:00:00:00:01"),
    ({"attached-mac": "02:99:00:00:00:01"}, "02:98:00:00:00:01", "02:99:00:00:00:01"),
])
def test_unknown_ports_keep_what_mac_is_known(eid, learned, mac):
    assert kind(Iface("tapx", 6, "internal", eid), learned) == (6, "tapx", "unknown", None, mac)


# --- switch views ----------------------------------------------------------------------------
IFACES = [
    Iface("tap-web1", 1, "", {"vm-id": "web1"}),
    Iface("tap-open1", 2, "", {"attached-mac": "02:00:00:00:04:01"}),
    Iface("eth0", 3, ""),
    Iface("vx0", 4, "vxlan"),
    Iface("tap-x", 5, "", {"attached-mac": "02:99:00:00:00:01"}),
    Iface("br-int", 65534, "internal"),
    Iface("br-int", 0xFFFFFFFE, "internal"),
]


def test_refresh_facts_skips_the_local_port(engine):
    facts = engine.refresh_facts(0x1, IFACES)
    assert [(p.ofport, p.kind, p.vm) for p in facts.ports] == [
        (1, "vm", "web1"), (2, "vm", "open1"), (3, "uplink", None), (4, "uplink", None),
        (5, "unknown", None)]


def test_switches_view_shape(engine):
    assert engine.switches_view() == []
    engine.refresh_facts(0xBEEF, IFACES)
    engine.refresh_facts(0x1, IFACES[:1])
    view = engine.switches_view()
    assert [s["dpid"] for s in view] == ["0000000000000001", "000000000000beef"]
    sw = view[1]
    assert set(sw) == {"dpid", "bridge", "of_version", "applied_revision", "flows",
                       "vm_ports", "uplinks", "unknown_ports"}
    assert sw["bridge"] is None
    assert (sw["of_version"], sw["applied_revision"], sw["flows"]) == (0, None, 0)
    assert sw["vm_ports"] == [
        {"ofport": 1, "name": "tap-web1", "kind": "vm", "vm": "web1"},
        {"ofport": 2, "name": "tap-open1", "kind": "vm", "vm": "open1"}]
    assert sw["uplinks"] == [
        {"ofport": 3, "name": "eth0", "kind": "uplink", "vm": None},
        {"ofport": 4, "name": "vx0", "kind": "uplink", "vm": None}]
    assert sw["unknown_ports"] == [{"ofport": 5, "name": "tap-x", "kind": "unknown",
                                    "vm": None}]
    json.dumps(view)   # what the API sends


def test_switches_view_names_the_bridge_and_an_unknown_ports_vm_id(engine):
    engine.refresh_facts(0x7, [Iface("tap-typo", 1, "", {"vm-id": "web-1"}),
                               Iface("tap-os", 2, "", {"iface-id": "nova-42"}),
                               Iface("tap-bare", 3, "")])
    engine.set_bridge(0x7, "br-vms")
    (sw,) = engine.switches_view()
    assert sw["bridge"] == "br-vms"
    assert [(p["name"], p.get("vm_id")) for p in sw["unknown_ports"]] == [
        ("tap-typo", "web-1"), ("tap-os", "nova-42"), ("tap-bare", None)]
    assert "vm_id" not in sw["unknown_ports"][2]   # only when the port carries one
    json.dumps(sw)


def test_port_problems_show_on_their_port_only(engine):
    engine.refresh_facts(0x7, IFACES[:2])
    found = {"code": "ct_invalid_drops", "message": "m", "ofport": 1}
    engine.set_port_problems(0x7, {1: [found]})
    ports = engine.switches_view()[0]["vm_ports"]
    assert ports[0]["problems"] == [found]
    assert "problems" not in ports[1]
    engine.set_port_problems(0x7, {})
    assert "problems" not in engine.switches_view()[0]["vm_ports"][0]
    engine.set_port_problems(0x99, {1: [found]})    # unknown switch: nothing created
    assert len(engine.switches_view()) == 1


def test_vm_locations_shape(engine):
    assert engine.vm_locations() == {}
    engine.refresh_facts(0xBEEF, IFACES)
    engine.refresh_facts(0x1, [Iface("p9", 9, "", {"vm-id": "web1"})])
    where = engine.vm_locations()
    assert where == {
        "web1": [{"switch": "0000000000000001", "ofport": 9, "port": "p9", "zone": 3},
                 {"switch": "000000000000beef", "ofport": 1, "port": "tap-web1",
                  "zone": 3}],
        "open1": [{"switch": "000000000000beef", "ofport": 2, "port": "tap-open1",
                   "zone": None}],
    }


def test_learned_mac_identifies_a_port_on_the_next_refresh(engine):
    port = Iface("vnet3", 7, "")
    assert engine.refresh_facts(0x2, [port]).ports[0].kind == "unknown"
    assert engine.learn_mac(0x2, 7, "02:00:00:00:02:01".upper()) is True
    assert engine.learn_mac(0x2, 8, "02:99:00:00:00:09") is False
    facts = engine.refresh_facts(0x2, [port])
    assert (facts.ports[0].kind, facts.ports[0].vm) == ("vm", "app1")
    # Learned MACs belong to their switch: another switch's port 7 is not app1.
    assert engine.refresh_facts(0x3, [port]).ports[0].kind == "unknown"


def test_forget_switch_drops_view_and_learned_macs(engine):
    port = Iface("vnet3", 7, "")
    engine.learn_mac(0x2, 7, "02:00:00:00:02:01")
    engine.refresh_facts(0x2, [port])
    assert engine.vm_locations()["app1"][0]["switch"] == "0000000000000002"
    engine.forget_switch(0x2)
    assert engine.switches_view() == [] and engine.vm_locations() == {}
    assert engine.refresh_facts(0x2, [port]).ports[0].kind == "unknown"


def test_state_change_reclassifies_on_refresh(engine):
    engine.refresh_facts(0x1, [Iface("tap-db", 1, "", {"vm-id": "db1"})])
    assert engine.switches_view()[0]["unknown_ports"][0]["name"] == "tap-db"
    doc = {k: v for k, v in engine.state_document().items() if k != "revision"}
    doc["vms"]["db1"] = {"ips": ["10.0.0.51"]}
    engine.apply_document(doc)
    engine.refresh_facts(0x1, [Iface("tap-db", 1, "", {"vm-id": "db1"})])
    where = engine.vm_locations()
    # Existing zones keep their numbers (app1 1, nomac 2, web1 3); db1 gets the next.
    assert where["db1"] == [{"switch": "0000000000000001", "ofport": 1, "port": "tap-db",
                             "zone": 4}]


def test_desired_flows_follow_the_revision(engine):
    flows, rev = engine.desired_flows(0x1, IFACES)
    assert rev == 1 and flows
    assert pipeline.check(flows) == []
    assert any(f.table == pipeline.T["classify"] and ("in_port", 1) in f.match for f in flows)
    doc = {k: v for k, v in engine.state_document().items() if k != "revision"}
    doc["policies"] = {}
    engine.apply_document(doc)
    flows2, rev2 = engine.desired_flows(0x1, IFACES)
    assert rev2 == 2 and {f.ofctl() for f in flows2} != {f.ofctl() for f in flows}

