"""Where VMs are decides two things in the engine: a fleet agent's zones (only the VMs
it hosts) and protection by portgroup (the bridges and VLAN tags of their ports)."""

from __future__ import annotations

import copy

from vgw_ryu.pipeline import tables as pipeline
from vgw_ryu.runtime.engine import Engine
from vgw_ryu.runtime.ports import Iface
from vgw_ryu.store.memory import MemoryStore
from vgw_ryu.store.zonefile import ZoneFile


def test_a_fleet_agent_numbers_only_the_vms_it_hosts(tmp_path):
    """Zones per hypervisor: a VM gets one when first seen here, durably, and keeps it
    while it exists; VMs hosted elsewhere take none."""
    store = MemoryStore()
    store.write({"vms": {"web1": {"ips": ["10.0.0.11"]}, "app1": {"ips": ["10.0.0.21"]},
                         "open1": {"ips": ["10.0.0.41"], "protected": False}}}, {}, 0)
    zf = ZoneFile(tmp_path / "zones.json")
    e = Engine(store, zf, local_zones=True)
    assert e.ids.zones() == {}
    assert e.ids.zone("web1") is None
    e.refresh_facts(1, [Iface("tap-web1", 1, "", {"vm-id": "web1"})])
    assert e.ids.zones() == {"web1": 1}
    assert ZoneFile(tmp_path / "zones.json").load()["zones"] == {"web1": 1}
    flows, _ = e.desired_flows(1, [Iface("tap-web1", 1, "", {"vm-id": "web1"})])
    assert any(("in_port", 1) in f.match and f.table == pipeline.T["classify"] for f in flows)
    # The VM leaves this host: its zone stays (a move back must not renumber it).
    e.refresh_facts(1, [])
    e.refresh_facts(1, [Iface("tap-app1", 2, "", {"vm-id": "app1"})])
    assert e.ids.zones() == {"web1": 1, "app1": 2}
    # A restarted agent keeps its numbers.
    again = Engine(store, ZoneFile(tmp_path / "zones.json"), local_zones=True)
    assert again.ids.zones() == {"web1": 1, "app1": 2}


PG_DOC = {"settings": {"default_protected": False,
                       "portgroups": [{"bridge": "br-dmz", "protected": True},
                                      {"vlan": 30, "protected": True}]},
          "vms": {"a": {"ips": ["10.0.0.1"]}, "b": {"ips": ["10.0.0.2"]},
                  "c": {"ips": ["10.0.0.3"], "protected": False}}}


def test_protection_by_portgroup_follows_the_ports(tmp_path):
    """A VM is protected while a port of it is on a protected bridge or VLAN tag; its
    own setting overrides; VMs elsewhere stay unprotected (no zone, no flows)."""
    e = Engine(MemoryStore(), ZoneFile(tmp_path / "z.json"))
    e.apply_document(copy.deepcopy(PG_DOC))
    assert not any(v.protected for v in e.state.vms.values())
    calls = []
    e.on_change(lambda: calls.append(1))
    e.refresh_facts(1, [Iface("ta", 1, "", {"vm-id": "a"}, "br-dmz"),
                        Iface("tc", 3, "", {"vm-id": "c"}, "br-dmz")])
    e.refresh_facts(2, [Iface("tb", 1, "", {"vm-id": "b"}, "br-int", 20)])
    a, b, c = (e.state.vms[n] for n in "abc")
    assert (a.protected, a.protected_by) == (True, "portgroup")
    assert (b.protected, b.protected_by) == (False, "default")
    assert (c.protected, c.protected_by) == (False, "vm")      # its own setting wins
    assert e.ids.zone("a") and e.ids.zone("b") is None and calls
    # b's port moves to VLAN 30: protected; a leaves br-dmz: unprotected, zone released.
    e.refresh_facts(2, [Iface("tb", 1, "", {"vm-id": "b"}, "br-int", 30)])
    e.refresh_facts(1, [Iface("ta", 1, "", {"vm-id": "a"}, "br-ext")])
    assert e.state.vms["b"].protected and not e.state.vms["a"].protected
    assert e.ids.zone("a") is None and e.ids.zone("b")
    assert e.state_document()["settings"]["portgroups"] == PG_DOC["settings"]["portgroups"]
    # The document never carries the located result.
    assert "protected" not in e.state_document()["vms"]["a"]


def test_a_fleet_agent_gives_back_the_zone_of_a_vm_that_left(tmp_path):
    """A VM on none of the agent's switches for the grace period gives its zone back:
    flushed first, then free for another VM; one that comes back in time keeps it."""
    store = MemoryStore()
    store.write({"vms": {n: {"ips": [f"10.0.0.{i + 1}"]} for i, n in enumerate("abc")}},
                {}, 0)
    e = Engine(store, ZoneFile(tmp_path / "zones.json"), local_zones=True)
    calls = []
    e.on_change(lambda: calls.append(1))
    port = {n: Iface(f"tap-{n}", i + 1, "", {"vm-id": n}) for i, n in enumerate("abc")}
    e.refresh_facts(1, [port["a"], port["b"]])
    assert e.ids.zones() == {"a": 1, "b": 2}
    e.refresh_facts(1, [port["b"]])                  # a moved away
    assert not e.release_departed(300, now=1000.0)   # first noticed now
    e.refresh_facts(1, [])                           # b unplugged for a moment...
    assert not e.release_departed(300, now=1200.0)
    e.refresh_facts(1, [port["b"]])                  # ...and back in time: keeps 2
    assert e.release_departed(300, now=1300.0)       # a: away 300 s
    assert e.ids.zones() == {"b": 2} and e.ids.flushing() == {1} and calls
    (plan, _), = e.take_flushes()
    assert [(z.zone, z.vm, z.reason) for z in plan.zones] == [(1, "a", "left this hypervisor")]
    assert ZoneFile(tmp_path / "zones.json").load() == {"zones": {"b": 2}, "flushing": [1]}
    # Zone 1 waits for its flush: c gets 3; once flushed, a VM coming back gets 1.
    e.refresh_facts(1, [port["b"], port["c"]])
    assert e.ids.zones() == {"b": 2, "c": 3}
    e.zones_flushed({1})
    e.refresh_facts(1, [port["a"], port["b"], port["c"]])
    assert e.ids.zones() == {"a": 1, "b": 2, "c": 3}


def test_an_agent_after_a_restart_gives_back_zones_of_vms_it_no_longer_hosts(tmp_path):
    store = MemoryStore()
    store.write({"vms": {"a": {"ips": ["10.0.0.1"]}, "b": {"ips": ["10.0.0.2"]}}}, {}, 0)
    ZoneFile(tmp_path / "zones.json").save({"zones": {"a": 1, "b": 2}})
    e = Engine(store, ZoneFile(tmp_path / "zones.json"), local_zones=True)
    e.refresh_facts(1, [Iface("tap-b", 2, "", {"vm-id": "b"})])
    assert e.release_departed(0.0)   # every check after the start counts from the start
    assert e.ids.zones() == {"b": 2} and e.ids.flushing() == {1}


def test_a_vm_without_a_zone_gets_the_first_one_flushed(tmp_path):
    """A full range: the VM left without a zone gets one as soon as a zone is flushed,
    and the switches are told to recompile."""
    store = MemoryStore()
    store.write({"vms": {"a": {"ips": ["10.0.0.1"]}, "b": {"ips": ["10.0.0.2"]}}}, {}, 0)
    e = Engine(store, ZoneFile(tmp_path / "zones.json"), local_zones=True, zone_range=(7, 7))
    e.refresh_facts(1, [Iface("tap-a", 1, "", {"vm-id": "a"})])
    e.refresh_facts(2, [Iface("tap-b", 1, "", {"vm-id": "b"})])
    assert e.ids.zones() == {"a": 7} and e.ids.unnumbered == {"b"}
    flows, _ = e.desired_flows(2, [Iface("tap-b", 1, "", {"vm-id": "b"})])
    classify = [f for f in flows if f.table == pipeline.T["classify"] and ("in_port", 1) in f.match]
    assert classify and all(not f.actions and f.goto is None for f in classify)
    e.refresh_facts(1, [])
    assert e.release_departed(0.0)
    calls = []
    e.on_change(lambda: calls.append(1))
    e.zones_flushed({7})
    assert e.ids.zones() == {"b": 7} and e.ids.unnumbered == set() and calls
