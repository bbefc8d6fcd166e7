"""Selective protection with real traffic: protecting a group (a portgroup) protects
every VM in it and only those; the others cost nothing and are not filtered."""

from __future__ import annotations

import subprocess

from vgw_lab.netlab import wait_until

MAC = {"web1": "02:00:00:00:d4:01", "web2": "02:00:00:00:d4:02", "other": "02:00:00:00:d4:03",
       "client": "02:00:00:00:d4:04"}
IP = {"web1": "10.246.0.1", "web2": "10.246.0.2", "other": "10.246.0.3",
      "client": "10.246.0.4"}


def test_protecting_a_group_protects_its_vms_only(controller_factory, bridges, vms, ovs):
    ctl = controller_factory().start()
    br = bridges(ctl)
    made = {}
    for n in MAC:
        made[n] = vms(n, MAC[n], [IP[n]])
        made[n].attach(br, {"vm-id": n})
    doc = {"settings": {"default_ingress": "deny", "default_protected": False},
           "vms": {n: {"mac": MAC[n], "ips": [IP[n]],
                       **({"labels": {"tier": "web"}} if n.startswith("web") else {})}
                   for n in MAC},
           "groups": {"web": {"match_labels": {"tier": "web"}, "protected": True}},
           "policies": {"web": {"applied_to": ["group:web"], "rules": [
               {"id": "http", "direction": "ingress", "action": "allow", "protocol": "tcp",
                "ports": "80"}]}}}
    s, body = ctl.request("PUT", "/v1/state", doc)
    assert s == 200, body
    wait_until(lambda: (sw := ctl.get("/v1/switches")[1]["switches"]) and
               sw[0]["applied_revision"] == body["revision"] and len(sw[0]["vm_ports"]) == 4,
               timeout=20, what="state applied")
    vms_view = ctl.get("/v1/vms")[1]["vms"]
    assert vms_view["web1"]["zone"] and vms_view["web2"]["zone"]
    assert vms_view["other"]["zone"] is None and vms_view["client"]["zone"] is None
    for vm in made.values():
        vm.serve([80, 81], [])
    client = made["client"]
    for web in ("web1", "web2"):
        assert client.probe("tcp", IP[web], 80)["verdict"] == "allow"
        assert client.probe("tcp", IP[web], 81, timeout=1.0)["verdict"] == "deny"
    assert client.probe("tcp", IP["other"], 81)["verdict"] == "allow"   # not filtered
    # An unprotected port has no flows of its own beyond its classify entry.
    port = int(next(p["ofport"] for p in ctl.get("/v1/switches")[1]["switches"][0]["vm_ports"]
                    if p["vm"] == "other"))
    assert not [f for f in br.dump_flows("table=10") if f"in_port={port}" in f]


PG_MAC = {"dmz1": "02:00:00:00:d5:01", "dmzc": "02:00:00:00:d5:02",
          "lan1": "02:00:00:00:d5:03", "lanc": "02:00:00:00:d5:04"}
PG_IP = {"dmz1": "10.247.0.1", "dmzc": "10.247.0.2", "lan1": "10.247.0.3",
         "lanc": "10.247.0.4"}


def test_protecting_a_portgroup_protects_every_vm_on_it_only(controller_factory, bridges,
                                                             vms, ovs):
    """settings.portgroups by VLAN tag: the VMs on access ports of VLAN 110 are
    protected (default deny in), those of VLAN 120 are not filtered; moving a port to
    the protected VLAN protects its VM."""
    ctl = controller_factory().start()
    br = bridges(ctl)
    made = {}
    for n in PG_MAC:
        made[n] = vms(n, PG_MAC[n], [PG_IP[n]])
        made[n].attach(br, {"vm-id": n})
        tag = 110 if n.startswith("dmz") else 120
        subprocess.run(["ovs-vsctl", "set", "Port", made[n].host_if, f"tag={tag}"],
                       check=True, timeout=30)
    doc = {"settings": {"default_ingress": "deny", "default_protected": False,
                        "portgroups": [{"vlan": 110, "protected": True}]},
           "vms": {n: {"mac": PG_MAC[n], "ips": [PG_IP[n]]} for n in PG_MAC},
           "policies": {"http": {"applied_to": ["vm:dmz1"], "rules": [
               {"id": "http", "direction": "ingress", "action": "allow", "protocol": "tcp",
                "ports": "80"}]}}}
    s, body = ctl.request("PUT", "/v1/state", doc)
    assert s == 200, body

    def protected() -> dict[str, str]:
        return {n: v["protection"]["by"] for n, v in ctl.get("/v1/vms")[1]["vms"].items()
                if v["protection"]["protected"]}

    wait_until(lambda: protected() == {"dmz1": "portgroup", "dmzc": "portgroup"},
               timeout=20, what="the VLAN 110 VMs protected by their portgroup")
    wait_until(lambda: (sw := ctl.get("/v1/switches")[1]["switches"]) and
               sw[0]["applied_revision"] == body["revision"] and len(sw[0]["vm_ports"]) == 4,
               timeout=20, what="state applied")
    for vm in made.values():
        vm.serve([80, 81], [])
    assert made["dmzc"].probe("tcp", PG_IP["dmz1"], 80)["verdict"] == "allow"
    wait_until(lambda: made["dmzc"].probe("tcp", PG_IP["dmz1"], 81,
                                          timeout=1.0)["verdict"] == "deny",
               timeout=10, what="the protected VM's default deny")
    assert made["lanc"].probe("tcp", PG_IP["lan1"], 81)["verdict"] == "allow"  # unfiltered
    # lan1's port joins VLAN 110 (with its client): now protected, default deny applies.
    for n in ("lan1", "lanc"):
        subprocess.run(["ovs-vsctl", "set", "Port", made[n].host_if, "tag=110"],
                       check=True, timeout=30)
    wait_until(lambda: set(protected()) == set(PG_MAC), timeout=20,
               what="the moved VMs protected")
    wait_until(lambda: made["lanc"].probe("tcp", PG_IP["lan1"], 81,
                                          timeout=1.0)["verdict"] == "deny",
               timeout=15, what="the moved VM's default deny")
