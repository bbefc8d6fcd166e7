"""Policy model v2 with real traffic: an admin-tier deny beats an application-tier allow
and pass hands the decision on; a VIP (address pair) moves between two VMs and is
reachable on its owner, while a third VM spoofing it is dropped."""

from __future__ import annotations

from vgw_lab.netlab import wait_until

MAC = {"a": "02:00:00:00:d5:01", "b": "02:00:00:00:d5:02", "c": "02:00:00:00:d5:03",
       "client": "02:00:00:00:d5:04"}
IP = {"a": "10.247.0.1", "b": "10.247.0.2", "c": "10.247.0.3", "client": "10.247.0.4"}
VIP = "10.247.0.100"


def _lab(controller_factory, bridges, vms):
    ctl = controller_factory().start()
    br = bridges(ctl)
    made = {}
    for n in MAC:
        made[n] = vms(n, MAC[n], [IP[n]])
        made[n].attach(br, {"vm-id": n})
    return ctl, made


def _put(ctl, doc) -> None:
    s, body = ctl.request("PUT", "/v1/state", doc)
    assert s == 200, body
    wait_until(lambda: (sw := ctl.get("/v1/switches")[1]["switches"]) and
               sw[0]["applied_revision"] == body["revision"] and len(sw[0]["vm_ports"]) == 4,
               timeout=20, what="state applied")


def _tcp(rid, action, port=None, peer=None, prio=100):
    return {"id": rid, "direction": "ingress", "action": action, "protocol": "tcp",
            "priority": prio, **({"ports": str(port)} if port else {}),
            **({"peer": peer} if peer else {})}


def test_tiers_and_pass_with_traffic(controller_factory, bridges, vms, ovs):
    ctl, vm = _lab(controller_factory, bridges, vms)
    _put(ctl, {
        "settings": {"default_ingress": "deny", "tiers": ["admin", "application"]},
        "vms": {n: {"mac": MAC[n], "ips": [IP[n]]} for n in MAC},
        "groups": {"trusted": {"members": ["client"]}},
        "policies": {
            "admin": {"tier": "admin", "applied_to": ["vm:a"], "rules": [
                _tcp("no-81", "deny", 81), _tcp("trusted", "pass", peer="group:trusted",
                                                prio=50),
                _tcp("rest", "deny", prio=10)]},
            "app": {"tier": "application", "applied_to": ["vm:a"], "rules": [
                _tcp("web", "allow", 80), _tcp("alt", "allow", 81)]}}})
    vm["a"].serve([80, 81], [])
    client, other = vm["client"], vm["b"]
    assert client.probe("tcp", IP["a"], 80)["verdict"] == "allow"   # passed, then allowed
    assert client.probe("tcp", IP["a"], 81, timeout=1.0)["verdict"] == "deny"  # admin wins
    assert other.probe("tcp", IP["a"], 80, timeout=1.0)["verdict"] == "deny"   # no pass


def test_vip_moves_between_vms_and_cannot_be_spoofed(controller_factory, bridges, vms, ovs):
    ctl, vm = _lab(controller_factory, bridges, vms)

    def state(owner: str) -> dict:
        return {"settings": {"default_ingress": "deny"},
                "vms": {n: {"mac": MAC[n], "ips": [IP[n]],
                            **({"address_pairs": [{"ip": VIP}]} if n == owner else {})}
                        for n in MAC},
                "policies": {"svc": {"applied_to": ["vm:a", "vm:b", "vm:c"], "rules": [
                    _tcp("svc", "allow", 8080)]}}}
    _put(ctl, state("a"))
    for n in ("a", "b", "c"):
        vm[n].serve([8080], [])
    vm["a"].exec("ip", "addr", "add", f"{VIP}/24", "dev", "eth0")
    client = vm["client"]
    assert client.probe("tcp", VIP, 8080)["verdict"] == "allow"
    # c claims the VIP too: its packets from the VIP (and its ARP for it) are dropped.
    vm["c"].exec("ip", "addr", "add", f"{VIP}/24", "dev", "eth0")
    client.exec("ip", "neigh", "flush", "dev", "eth0")
    vm["a"].exec("ip", "addr", "del", f"{VIP}/24", "dev", "eth0")
    assert client.probe("tcp", VIP, 8080, timeout=1.0)["verdict"] == "deny"
    vm["c"].exec("ip", "addr", "del", f"{VIP}/24", "dev", "eth0")
    # The VIP moves to b: reachable there.
    _put(ctl, state("b"))
    vm["b"].exec("ip", "addr", "add", f"{VIP}/24", "dev", "eth0")
    client.exec("ip", "neigh", "flush", "dev", "eth0")
    wait_until(lambda: client.probe("tcp", VIP, 8080)["verdict"] == "allow", timeout=10,
               what="the VIP answered by b")
