"""The firewall with real traffic: namespaces on netdev bridges, controller as users run it."""

from __future__ import annotations

import itertools
import json
import re
import time
from dataclasses import dataclass

import pytest

from vgw_lab.netlab import Controller, NsVm, sh, wait_until

MACS = {"client": "02:00:00:00:f0:01", "web": "02:00:00:00:f0:11",
        "app": "02:00:00:00:f0:21", "db": "02:00:00:00:f0:31"}
IPS = {"client": ["10.240.0.91", "fd00:240::91"], "web": ["10.240.0.11", "fd00:240::11"],
       "app": ["10.240.0.21"], "db": ["10.240.0.31"]}
TCP_PORTS = [22, 80, 81, 5432, 8080]
UDP_PORTS = [53]


def policy(http: bool = True) -> dict:
    web_rules = [{"id": "ping", "direction": "ingress", "action": "allow", "protocol": "icmp"}]
    if http:
        web_rules.insert(0, {"id": "http", "direction": "ingress", "action": "allow",
                             "protocol": "tcp", "ports": "80", "peer": "group:clients"})
    return {
        "settings": {"default_ingress": "deny", "default_egress": "allow"},
        "vms": {n: {"mac": MACS[n], "ips": IPS[n],
                    "labels": {"role": "client"} if n == "client" else {"tier": n}}
                for n in MACS},
        "groups": {"web": {"match_labels": {"tier": "web"}},
                   "clients": {"match_labels": {"role": "client"}}},
        "policies": {
            "web": {"applied_to": ["group:web"], "rules": web_rules},
            "app": {"applied_to": ["vm:app"], "rules": [
                {"id": "from-web", "direction": "ingress", "action": "allow",
                 "protocol": "tcp", "ports": "8080", "peer": "group:web"},
                {"id": "dns", "direction": "ingress", "action": "allow", "protocol": "udp",
                 "ports": "53", "peer": "cidr:10.240.0.0/24"}]},
            "db": {"applied_to": ["vm:db"], "rules": [
                {"id": "pg", "direction": "ingress", "action": "allow", "protocol": "tcp",
                 "ports": "5432", "peer": "vm:app"},
                {"id": "no-out", "direction": "egress", "action": "deny"}]},
        },
    }


@dataclass
class Lab:
    ctl: Controller
    vms: dict[str, NsVm]
    bridges: list

    def put_state(self, doc: dict) -> int:
        status, body = self.ctl.request("PUT", "/v1/state", doc)
        assert status == 200, body
        return body["revision"]

    def wait_applied(self, revision: int) -> None:
        def done():
            sws = self.ctl.get("/v1/switches")[1]["switches"]
            return len(sws) == len(self.bridges) and all(
                s["applied_revision"] == revision and
                {p["vm"] for p in s["vm_ports"]} >= self.expected_vms(s) for s in sws)
        wait_until(done, timeout=20, what=f"revision {revision} on every switch")

    def expected_vms(self, sw: dict) -> set[str]:
        dpid = int(sw["dpid"], 16)
        return {n for n, vm in self.vms.items() if vm.bridge is not None
                and _dpid(vm.bridge.name) == dpid}


def _dpid(bridge: str) -> int:
    return int(sh("ovs-vsctl", "get", "Bridge", bridge, "datapath_id").strip().strip('"'), 16)


@pytest.fixture
def lab(controller_factory, bridges, vms, ovs):
    ctl = controller_factory().start()
    br = bridges(ctl)
    made = {}
    for name in MACS:
        vm = vms(name, MACS[name], IPS[name])
        vm.attach(br, {"vm-id": name})
        made[name] = vm
    lab = Lab(ctl, made, [br])
    rev = lab.put_state(policy())
    lab.wait_applied(rev)
    for vm in made.values():
        vm.serve(TCP_PORTS, UDP_PORTS, v6=True)
    return lab


MATRIX = [
    ("client", "web", "tcp", 80, "allow"),
    ("client", "web6", "tcp", 80, "allow"),
    ("client", "web", "tcp", 81, "deny"),
    ("client", "web", "icmp", None, "allow"),
    ("client", "app", "tcp", 8080, "deny"),
    ("web", "app", "tcp", 8080, "allow"),
    ("client", "app", "udp", 53, "allow"),
    ("web", "app", "udp", 53, "allow"),
    ("web", "db", "tcp", 5432, "deny"),
    ("app", "db", "tcp", 5432, "allow"),
    ("db", "app", "udp", 53, "deny"),       # db's egress deny beats app's ingress allow
    ("db", "web", "icmp", None, "deny"),
    ("web", "client", "tcp", 22, "deny"),   # default ingress deny on client
    ("app", "web", "tcp", 80, "deny"),      # http only from the clients group
]


def _addr(lab: Lab, name: str) -> str:
    if name.endswith("6"):
        return lab.vms[name[:-1]].ips[1]
    return lab.vms[name].ip4()


def test_verdict_matrix(lab):
    wrong = []
    for src, dst, proto, port, want in MATRIX:
        got = lab.vms[src].probe(proto, _addr(lab, dst), port, timeout=1.0)
        if got["verdict"] != want:
            wrong.append((src, dst, proto, port, want, got))
    assert wrong == []


def test_trace_shows_model_and_datapath_agreeing(lab):
    for vm, direction, peer, proto, port, want in (
            ("web", "ingress", "10.240.0.91", "tcp", 80, "allow"),
            ("web", "ingress", "10.240.0.91", "tcp", 81, "deny"),
            ("db", "egress", "10.240.0.21", "udp", 53, "deny"),
            ("app", "egress", "10.240.0.31", "tcp", 5432, "allow")):
        s, t = lab.ctl.request("POST", "/v1/trace", {"vm": vm, "direction": direction,
                                                     "peer_ip": peer, "protocol": proto,
                                                     "port": port})
        assert s == 200, t
        assert t["model"]["verdict"] == want, t
        # Egress traces start at the VM's port. This single-bridge lab has no uplink, so
        # ingress ones start where the peer really is: client's own port.
        assert t["datapath"]["verdict"] == want, t
        if direction == "ingress":
            assert t["datapath"]["from"].startswith("vm client's port"), t


def _progress(proc) -> list[dict]:
    out, _ = proc.communicate(timeout=60)
    return [json.loads(ln) for ln in out.splitlines() if ln.strip()]


def test_policy_change_stops_denied_stream_within_a_second(lab):
    denied = lab.vms["client"].stream(lab.vms["web"].ip4(), 80, seconds=4)
    allowed = lab.vms["web"].stream(lab.vms["app"].ip4(), 8080, seconds=4)
    time.sleep(1.5)
    t_change = time.time()
    rev = lab.put_state(policy(http=False))
    t_answer = time.time()
    d, a = _progress(denied), _progress(allowed)
    # Denied: no echo arrives later than a second after the change was answered.
    grew = [p["t"] for prev, p in itertools.pairwise(d) if p["recv"] > prev["recv"]]
    assert grew and grew[0] < t_change, "the stream never ran"
    assert max(grew) <= t_answer + 1.0, (max(grew) - t_answer, d[-3:])
    # Allowed: every byte echoed, no error.
    assert a[-1]["done"] and a[-1]["error"] is None and a[-1]["recv"] == a[-1]["sent"] > 0
    lab.wait_applied(rev)
    assert lab.vms["client"].probe("tcp", lab.vms["web"].ip4(), 80)["verdict"] == "deny"


def _flow_durations(bridge: str) -> dict[str, float]:
    out = sh("ovs-ofctl", "-O", "OpenFlow13,OpenFlow14", "dump-flows", bridge)
    return {m.group(1): float(m.group(2)) for m in
            re.finditer(r"cookie=(0x[0-9a-f]+), duration=([\d.]+)s", out)}


def test_restart_during_traffic_keeps_stream_and_flows(lab):
    br = lab.bridges[0].name
    before = _flow_durations(br)
    stream = lab.vms["client"].stream(lab.vms["web"].ip4(), 80, seconds=5)
    time.sleep(1)
    lab.ctl.kill9()
    time.sleep(1.5)
    lab.ctl.start()
    lab.wait_applied(lab.ctl.get("/v1/health")[1]["revision"])
    p = _progress(stream)
    assert p[-1]["error"] is None and p[-1]["recv"] == p[-1]["sent"] > 0
    after = _flow_durations(br)
    assert set(after) == set(before), "flows were added or removed by the restart"
    assert all(after[c] > before[c] for c in before), "a flow was re-installed"


def test_controller_down_datapath_keeps_enforcing(lab):
    lab.ctl.kill9()
    web = lab.vms["web"].ip4()
    assert lab.vms["client"].probe("tcp", web, 80)["verdict"] == "allow"
    assert lab.vms["client"].probe("tcp", web, 81, timeout=1.0)["verdict"] == "deny"
    assert lab.vms["web"].probe("tcp", lab.vms["app"].ip4(), 8080)["verdict"] == "allow"
    assert lab.vms["web"].probe("tcp", lab.vms["db"].ip4(), 5432,
                                timeout=1.0)["verdict"] == "deny"


def test_vm_moves_between_hypervisors(controller_factory, bridges, vms, ovs):
    ctl = controller_factory().start()
    hv1, hv2 = bridges(ctl), bridges(ctl)
    p1, p2 = f"pa{hv1.name[2:]}", f"pb{hv2.name[2:]}"
    sh("ovs-vsctl", "add-port", hv1.name, p1, "--", "set", "Interface", p1, "type=patch",
       f"options:peer={p2}", "--", "add-port", hv2.name, p2, "--", "set", "Interface", p2,
       "type=patch", f"options:peer={p1}")
    made = {}
    for name, br in (("client", hv1), ("web", hv1), ("app", hv1), ("db", hv2)):
        vm = vms(name, MACS[name], IPS[name])
        vm.attach(br, {"vm-id": name})
        made[name] = vm
    lab = Lab(ctl, made, [hv1, hv2])
    lab.wait_applied(lab.put_state(policy()))
    for vm in made.values():
        vm.serve(TCP_PORTS, UDP_PORTS, v6=True)
    app, web = made["app"], made["web"]
    assert web.probe("tcp", app.ip4(), 8080)["verdict"] == "allow"
    stream = web.stream(app.ip4(), 8080, seconds=5)
    time.sleep(1)
    zone = ctl.get("/v1/vms/app")[1]["zone"]
    app.detach()
    app.attach(hv2, {"vm-id": "app"})
    t_moved = time.monotonic()
    app_cookie = f"0x762{zone:05x}"

    def moved():
        seen = ctl.get("/v1/vms/app")[1]["seen"]
        on_hv1 = any(app_cookie in ln for ln in hv1.dump_flows())
        on_hv2 = any(app_cookie in ln for ln in hv2.dump_flows())
        return seen and seen[0]["switch"] == f"{_dpid(hv2.name):016x}" and on_hv2 \
            and not on_hv1
    wait_until(moved, timeout=5, interval=0.02, what="app's policy to follow it to hv2")
    assert time.monotonic() - t_moved <= 1.0
    assert ctl.get("/v1/vms/app")[1]["zone"] == zone
    p = _progress(stream)
    assert p[-1]["error"] is None and p[-1]["recv"] == p[-1]["sent"] > 0
    assert made["client"].probe("tcp", app.ip4(), 8080, timeout=1.0)["verdict"] == "deny"
    assert made["db"].probe("tcp", app.ip4(), 8080, timeout=1.0)["verdict"] == "deny"
    assert web.probe("tcp", app.ip4(), 8080)["verdict"] == "allow"
