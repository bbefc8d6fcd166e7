"""Topology files: loading into a graph and validation errors that name the field."""

import copy
from pathlib import Path

import pytest
import yaml

from vgw_lab import topology
from vgw_lab.topology import TopologyError, parse
from vgw_ryu.policy.model import parse_state

TOPOS = Path(__file__).resolve().parents[2] / "topologies"


@pytest.mark.parametrize("name", ["quickstart", "three_tier", "three_tier_ipv6", "migration"])
def test_shipped_topologies_load(name):
    t = topology.load(TOPOS / f"{name}.yaml")
    assert t.verdicts and t.vms
    parse_state(t.state_document())
    for vm in t.vms.values():
        assert t.graph.has_edge(vm.name, vm.hypervisor)


def test_three_tier_shape():
    t = topology.load(TOPOS / "three_tier.yaml")
    assert t.hypervisors == ["hv1", "hv2"] and t.links == [("hv1", "hv2")]
    assert {"web1", "web2", "app1", "db1", "client", "jump"} == set(t.vms)
    assert t.vms["client"].protected is False
    expects = {e.expect for e in t.verdicts}
    assert expects == {"allow", "deny", "reject"}
    assert t.server_ports()["db1"][0] == [5432, 3306, 22]


def test_find_by_name():
    assert topology.find("three-tier", TOPOS).name == "three_tier.yaml"
    with pytest.raises(TopologyError, match=r"known: .*quickstart"):
        topology.find("nope", TOPOS)


BASE = yaml.safe_load((TOPOS / "quickstart.yaml").read_text())


def changed(path, value):
    doc = copy.deepcopy(BASE)
    cur = doc
    keys = path.split("/")
    for k in keys[:-1]:
        cur = cur[int(k)] if isinstance(cur, list) else cur[k]
    last = keys[-1]
    if isinstance(cur, list):
        cur[int(last)] = value
    else:
        cur[last] = value
    return doc


@pytest.mark.parametrize("path,value,message", [
    ("vms/web/hypervisor", "hv9", "vms.web.hypervisor: unknown hypervisor 'hv9'"),
    ("vms/web/ips", ["10.60.0.10"], "vms.web.ips[0]: duplicate IP 10.60.0.10"),
    ("vms/web/ips", ["10.60.0.300"], "vms.web.ips[0]: '10.60.0.300' is not an IP"),
    ("hypervisors", ["hv1", "hv2"], "links: hypervisors are not all connected"),
    ("verdicts/0/to", "ghost", "verdicts[0].to: unknown VM 'ghost'"),
    ("verdicts/0/expect", "maybe", "verdicts[0].expect"),
    ("verdicts/0/port", 0, "verdicts[0].port: 0 is not a port"),
    ("verdicts/0/protocol", "sctp", "verdicts[0].protocol"),
    ("verdicts/0/ipv6", True, None),  # web has v6: fine
    ("verdicts/4/ipv6", True, "verdicts[4].to: vm 'db' has no IPv6 address"),
    ("vms/web/colour", "red", "vms.web.colour: unknown field"),
    ("policy/policies/web/applied_to", ["vm:ghost"], "policy: policies.web.applied_to[0]"),
    ("policy/vms", {}, "policy.vms: VMs come from the topology"),
    ("links", [["hv1", "hv1"]], "links[0]: a hypervisor cannot link to itself"),
    ("links", [["hv1", "hv7"]], "links[0]: unknown hypervisor 'hv7'"),
    ("hypervisors", ["hv1", "hv1"], "hypervisors[1]: duplicate hypervisor"),
    ("extra", 1, "topology.extra: unknown field"),
])
def test_validation_names_the_field(path, value, message):
    doc = changed(path, value)
    if message is None:
        parse(doc)
        return
    with pytest.raises(TopologyError) as e:
        parse(doc)
    assert message in str(e.value)


@pytest.mark.parametrize("name,checks", [("quickstart", 7), ("three_tier", 14),
                                         ("migration", 6)])
def test_checks_count_each_verdict_once_per_phase(name, checks):
    # migration checks its 3 verdicts before and after the move, as its run reports.
    assert topology.load(TOPOS / f"{name}.yaml").checks == checks


def test_state_document_is_the_policy_with_the_vms():
    t = topology.load(TOPOS / "quickstart.yaml")
    doc = t.state_document()
    assert list(doc) == ["settings", "vms", "policies"]
    assert doc["vms"]["web"] == {"mac": t.vms["web"].mac, "ips": ["10.60.0.11", "fd00:60::11"],
                                 "labels": {"tier": "web"}, "protected": True}
    assert doc["policies"] == t.policy["policies"]


def test_mininet_topo_writes_the_controllers_vm_names():
    from vgw_lab.mnlab import LabTopo
    t = topology.load(TOPOS / "quickstart.yaml")
    mt = LabTopo(lab=t, names={"hv1": "v0001hv1"}, vm_ids={"web": "lab-v0001-web"})
    ids = mt.nodeInfo("v0001hv1")["port_ids"]
    assert ids["web"] == {"vm-id": "lab-v0001-web", "attached-mac": t.vms["web"].mac}
    assert ids["db"]["vm-id"] == "db"
