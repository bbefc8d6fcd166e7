"""Per-VM connection tables with real traffic: stale entries flushed, limits, stateless rules."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from vgw_lab.netlab import Controller, NsVm, sh, wait_until

# One UDP datagram from a fixed source port; prints the answer or "timeout".
UDP_ASK = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2]))); s.settimeout(float(sys.argv[5]))
for _ in range(3):
    s.sendto(b"ping", (sys.argv[3], int(sys.argv[4])))
    try:
        print(s.recvfrom(64)[0].decode()); break
    except TimeoutError:
        pass
else:
    print("timeout")
"""
# Waits on a UDP port for one datagram; prints it or "timeout".
UDP_WAIT = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.settimeout(float(sys.argv[2]))
print("ready", flush=True)
try:
    print(s.recvfrom(64)[0].decode())
except TimeoutError:
    print("timeout")
"""
# Sends datagrams from addr:port to dst:dport for a while.
UDP_SEND = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
for _ in range(int(sys.argv[5])):
    s.sendto(b"forged", (sys.argv[3], int(sys.argv[4]))); time.sleep(0.1)
"""
# Opens N TCP connections at once and holds them; prints how many were established.
TCP_MANY = """
import socket, sys, selectors, time
host, port, n, wait = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
socks = []
for _ in range(n):
    s = socket.socket(); s.setblocking(False)
    s.connect_ex((host, port)); socks.append(s)
sel = selectors.DefaultSelector()
for s in socks:
    sel.register(s, selectors.EVENT_WRITE)
ok, deadline = 0, time.monotonic() + wait
while sel.get_map() and time.monotonic() < deadline:
    for key, _ in sel.select(timeout=0.2):
        sel.unregister(key.fileobj)
        if key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
            ok += 1
print(ok, flush=True)
sys.stdin.read()  # hold the connections until told to stop
"""

MAC = {"client": "02:00:00:00:e1:01", "old": "02:00:00:00:e1:02", "evil": "02:00:00:00:e1:03",
       "srv": "02:00:00:00:e1:04", "other": "02:00:00:00:e1:05"}
IP = {"client": "10.241.0.1", "old": "10.241.0.2", "srv": "10.241.0.4", "other": "10.241.0.5"}


def _vm(name: str, ip: str | None = None, **extra) -> dict:
    return {"mac": MAC[name], "ips": [ip or IP[name]], **extra}


def _state(vms: dict, policies: dict | None = None, settings: dict | None = None) -> dict:
    return {"settings": {"default_ingress": "deny", "default_egress": "allow",
                         **(settings or {})},
            "vms": vms, "policies": policies or {}}


SRV_IN = {"srv-in": {"applied_to": ["vm:srv"], "rules": [
    {"id": "dns", "direction": "ingress", "action": "allow", "protocol": "udp", "ports": "53"},
    {"id": "tcp", "direction": "ingress", "action": "allow", "protocol": "tcp",
     "ports": "80"}]}}


class Lab:
    def __init__(self, ctl: Controller, br, vms_factory):
        self.ctl, self.br, self.make = ctl, br, vms_factory
        self.vms: dict[str, NsVm] = {}

    def add(self, name: str, ip: str, vm_id: str | None = None) -> NsVm:
        vm = self.make(name, MAC[name], [ip])
        vm.attach(self.br, {"vm-id": vm_id or name})
        self.vms[name] = vm
        return vm

    def put(self, doc: dict) -> int:
        s, b = self.ctl.request("PUT", "/v1/state", doc)
        assert s == 200, b
        return b["revision"]

    def applied(self, rev: int, vms: set[str]) -> None:
        def done():
            sws = self.ctl.get("/v1/switches")[1]["switches"]
            return sws and all(s["applied_revision"] == rev for s in sws) and \
                vms <= {p["vm"] for s in sws for p in s["vm_ports"]}
        wait_until(done, timeout=20, what=f"revision {rev} applied with {sorted(vms)}")

    def py(self, vm: NsVm, code: str, *args: str, timeout: float = 30) -> str:
        return vm.exec(sys.executable, "-c", code, *args, timeout=timeout).strip()


@pytest.fixture
def lab(controller_factory, bridges, vms, ovs):
    ctl = controller_factory().start()
    return Lab(ctl, bridges(ctl), vms)


def _flushes(ctl: Controller) -> list[str]:
    return [ln for ln in ctl.log_text().splitlines() if "conntrack flush" in ln]


def test_address_reuse_cannot_answer_on_the_old_owners_connections(lab):
    """The reproduced hole: a new owner of an IP must not reach a peer through the
    entries the peer's zone still holds for the old owner."""
    _address_reuse(lab)


def test_a_flush_targeted_by_reading_the_table_closes_the_same_hole(
        controller_factory, bridges, vms, ovs):
    """With the connection table read first (as for a big deletion), only the zones
    holding the old owner's address are flushed, and looked at again after the flows
    changed: the hole stays closed."""
    ctl = controller_factory(extra_args=["--vgw-ct-flush-read-above", "0"]).start()
    lab = Lab(ctl, bridges(ctl), vms)
    _address_reuse(lab)
    log = lab.ctl.log_text()
    assert "message(s) for the entries the table holds" in log, log[-3000:]
    assert "second look after the flows changed" in log, log[-3000:]


def _address_reuse(lab: Lab) -> None:
    client = lab.add("client", IP["client"])
    old = lab.add("old", IP["old"])
    old.serve([], [53])
    lab.applied(lab.put(_state({"client": _vm("client"), "old": _vm("old")},
                               {"old-in": {"applied_to": ["vm:old"], "rules": [
                                   {"id": "dns", "direction": "ingress", "action": "allow",
                                    "protocol": "udp", "ports": "53"}]}})),
                {"client", "old"})
    assert lab.py(client, UDP_ASK, IP["client"], "40001", IP["old"], "53", "1") == "ping"
    # old goes away; evil gets old's address on another port, with no rule to the client.
    old.detach()
    evil = lab.add("evil", IP["old"])
    rev = lab.put(_state({"client": _vm("client"), "evil": _vm("evil", IP["old"])}))
    lab.applied(rev, {"client", "evil"})
    waiter = client.popen(sys.executable, "-c", UDP_WAIT, "40001", "3",
                          stdout=subprocess.PIPE, text=True)
    assert waiter.stdout.readline().strip() == "ready"
    lab.py(evil, UDP_SEND, IP["old"], "53", IP["client"], "40001", "15")
    out, _ = waiter.communicate(timeout=30)
    assert out.strip() == "timeout", "the new owner of the address answered on a stale entry"
    assert any("10.241.0.2" in ln for ln in _flushes(lab.ctl)), lab.ctl.log_text()[-3000:]


def test_zone_reused_only_after_flush_and_judged_afresh(lab):
    """A deleted VM's zone goes to the next VM only once flushed; the reply tuple of the
    old VM's connection is then judged as new for the new VM (ingress default deny)."""
    old = lab.add("old", IP["old"])
    srv = lab.add("srv", IP["srv"])
    srv.serve([], [53])
    lab.applied(lab.put(_state({"old": _vm("old"), "srv": _vm("srv")}, SRV_IN)),
                {"old", "srv"})
    zone = lab.ctl.get("/v1/vms/old")[1]["zone"]
    assert lab.py(old, UDP_ASK, IP["old"], "40002", IP["srv"], "53", "1") == "ping"
    old.detach()
    lab.applied(lab.put(_state({"srv": _vm("srv")}, SRV_IN)), {"srv"})
    wait_until(lambda: any(f"zone {zone} " in ln for ln in _flushes(lab.ctl)), timeout=10,
               what=f"zone {zone} flushed")
    new = lab.add("evil", IP["old"])
    lab.applied(lab.put(_state({"srv": _vm("srv"), "evil": _vm("evil", IP["old"])},
                               SRV_IN)), {"srv", "evil"})
    assert lab.ctl.get("/v1/vms/evil")[1]["zone"] == zone, "the flushed zone was not reused"
    waiter = new.popen(sys.executable, "-c", UDP_WAIT, "40002", "3", stdout=subprocess.PIPE,
                       text=True)
    assert waiter.stdout.readline().strip() == "ready"
    for proc in srv.servers:   # free port 53 so srv can send from it
        proc.kill()
        proc.wait(timeout=10)
    srv.servers.clear()
    lab.py(srv, UDP_SEND, IP["srv"], "53", IP["old"], "40002", "15")
    out, _ = waiter.communicate(timeout=30)
    assert out.strip() == "timeout", "a stale entry of the deleted VM passed a packet"


def test_removed_ip_stops_its_connections_and_keeps_the_others(lab):
    second = "10.241.0.12"
    client = lab.add("client", IP["client"])
    client.exec("ip", "addr", "add", f"{second}/24", "dev", "eth0")
    srv = lab.add("srv", IP["srv"])
    srv.serve([80], [])
    two = {"client": {"mac": MAC["client"], "ips": [IP["client"], second]},
           "srv": _vm("srv")}
    lab.applied(lab.put(_state(two, SRV_IN)), {"client", "srv"})
    code = """
import json, socket, sys, time
s = socket.create_connection((sys.argv[2], 80), timeout=1, source_address=(sys.argv[1], 0))
end, ok, last = time.monotonic() + float(sys.argv[3]), 0, None
while time.monotonic() < end:
    try:
        s.sendall(b"x" * 100); ok += len(s.recv(4096)); last = time.time()
    except OSError:
        pass
    time.sleep(0.05)
print(json.dumps({"bytes": ok, "last": last}))
"""
    keep = client.popen(sys.executable, "-c", code, IP["client"], IP["srv"], "4",
                        stdout=subprocess.PIPE, text=True)
    cut = client.popen(sys.executable, "-c", code, second, IP["srv"], "4",
                       stdout=subprocess.PIPE, text=True)
    time.sleep(1.5)
    one = {"client": _vm("client"), "srv": _vm("srv")}
    lab.put(_state(one, SRV_IN))
    t_answer = time.time()
    k = json.loads(keep.communicate(timeout=30)[0])
    c = json.loads(cut.communicate(timeout=30)[0])
    assert k["last"] and k["last"] > t_answer + 2, k
    assert c["bytes"] > 0 and c["last"] <= t_answer + 1.0, c


def test_connection_limit_per_vm(lab):
    client = lab.add("client", IP["client"])
    other = lab.add("other", IP["other"])
    srv = lab.add("srv", IP["srv"])
    srv.serve([80], [])
    doc = _state({"client": _vm("client", max_connections=50, log="drops"),
                  "other": _vm("other"),
                  "srv": _vm("srv")}, SRV_IN)
    lab.applied(lab.put(doc), {"client", "other", "srv"})
    vm = lab.ctl.get("/v1/vms/client")[1]
    assert vm["max_connections"] == 50 and vm["connections"]["limit"] == 50, vm
    # The cap reaches the datapath after the flows (a unixctl call of its own).
    wait_until(lambda: f"zone={vm['zone']},limit=50," in sh(
        "ovs-appctl", "dpctl/ct-get-limits", f"zone={vm['zone']}"), timeout=10,
        what="the zone limit in the datapath")
    holder = client.popen(sys.executable, "-c", TCP_MANY, IP["srv"], "80", "200", "4",
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ok = int(holder.stdout.readline())
        assert 1 <= ok <= 50, ok
        # Another VM on the same switch is not affected while client sits at its limit.
        assert other.probe("tcp", IP["srv"], 80)["verdict"] == "allow"
        count = lab.ctl.get("/v1/vms/client")[1]["connections"]["count"]
        assert 1 <= count <= 50, count
        # The client logs its drops: the refused connections' invalid replies are logged.
        wait_until(lambda: [r for r in lab.ctl.get("/v1/logs?vm=client&limit=1000")[1]["logs"]
                            if r.get("event") == "invalid"], timeout=10,
                   what="the over-limit drops in the log")
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)


def _conntrack(*filters: str) -> list[str]:
    out = sh("ovs-appctl", "dpctl/dump-conntrack", check=False)
    return [ln for ln in out.splitlines() if all(f in ln for f in filters)]


def test_stateless_rules_bypass_conntrack_and_replies_need_their_own_rule(lab):
    client = lab.add("client", IP["client"])
    srv = lab.add("srv", IP["srv"])
    srv.serve([], [5353])
    srv_rules = {"applied_to": ["vm:srv"], "rules": [
        {"id": "in", "direction": "ingress", "action": "allow", "protocol": "udp",
         "ports": "5353", "stateful": False},
        {"id": "replies", "direction": "egress", "action": "allow", "protocol": "udp",
         "peer": "vm:client", "stateful": False}]}
    # The client unprotected: nothing on the path is tracked.
    doc = _state({"client": _vm("client", protected=False), "srv": _vm("srv")},
                 {"srv": srv_rules})
    lab.applied(lab.put(doc), {"client", "srv"})
    assert lab.py(client, UDP_ASK, IP["client"], "40005", IP["srv"], "5353", "1") == "ping"
    assert _conntrack("udp,", IP["srv"], "port=5353,") == [], \
        "stateless traffic made conntrack entries"
    # The client protected, its request stateless, no rule for the replies: the reply is
    # a new connection in the client's ingress, and the default (deny) drops it.
    client_out = {"applied_to": ["vm:client"], "rules": [
        {"id": "dns", "direction": "egress", "action": "allow", "protocol": "udp",
         "ports": "5353", "peer": "vm:srv", "stateful": False}]}
    doc = _state({"client": _vm("client"), "srv": _vm("srv")},
                 {"srv": srv_rules, "client": client_out})
    lab.applied(lab.put(doc), {"client", "srv"})
    assert lab.py(client, UDP_ASK, IP["client"], "40006", IP["srv"], "5353", "1") == "timeout"
    # The reverse rule makes the exchange work, still without any entry.
    client_out["rules"].append({"id": "dns-replies", "direction": "ingress", "action": "allow",
                                "protocol": "udp", "peer": "vm:srv", "stateful": False})
    lab.applied(lab.put(doc), {"client", "srv"})
    assert lab.py(client, UDP_ASK, IP["client"], "40007", IP["srv"], "5353", "1") == "ping"
    assert _conntrack("udp,", IP["srv"], "port=5353,") == [], \
        "stateless traffic made conntrack entries"
