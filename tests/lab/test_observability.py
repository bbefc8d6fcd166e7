"""What an operator sees, with real traffic: true session counts, a VM's connection
table with the admitting rules, and /metrics."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from vgw_lab.netlab import Controller, wait_until

MAC = {"client": "02:00:00:00:d2:01", "web1": "02:00:00:00:d2:02"}
IP = {"client": "10.243.0.1", "web1": "10.243.0.2"}

# N connections, each carrying K echoed messages, held open until stdin closes.
CONNS = """
import socket, sys
host, port, n, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
socks = []
for _ in range(n):
    s = socket.create_connection((host, port), timeout=3)
    for _ in range(k):
        s.sendall(b"x" * 10); s.recv(64)
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks), flush=True)
sys.stdin.read()
"""
# One SYN per attempt: a 0.5 s timeout before the kernel's first retransmission (1 s).
SYNS = """
import socket, sys
for _ in range(int(sys.argv[3])):
    s = socket.socket(); s.settimeout(0.5)
    try:
        s.connect((sys.argv[1], int(sys.argv[2])))
    except OSError:
        pass
    s.close()
"""


def _state(http: bool = True) -> dict:
    rules = [{"id": "ssh-no", "direction": "ingress", "action": "deny", "protocol": "tcp",
              "ports": "22"}]
    if http:
        rules.append({"id": "http", "direction": "ingress", "action": "allow",
                      "protocol": "tcp", "ports": "80"})
    return {"settings": {"default_ingress": "deny", "default_egress": "allow"},
            "vms": {n: {"mac": MAC[n], "ips": [IP[n]]} for n in MAC},
            "policies": {"web": {"applied_to": ["vm:web1"], "rules": rules}}}


@pytest.fixture
def lab(controller_factory, bridges, vms, ovs):
    ctl: Controller = controller_factory().start()
    br = bridges(ctl)
    made = {}
    for n in MAC:
        made[n] = vms(n, MAC[n], [IP[n]])
        made[n].attach(br, {"vm-id": n})
    _put(ctl, _state())
    made["web1"].serve([80, 22], [])
    return ctl, made


def _put(ctl: Controller, doc: dict) -> int:
    s, body = ctl.request("PUT", "/v1/state", doc)
    assert s == 200, body
    rev = body["revision"]
    wait_until(lambda: (sw := ctl.get("/v1/switches")[1]["switches"]) and
               sw[0]["applied_revision"] == rev and len(sw[0]["vm_ports"]) == 2,
               timeout=20, what=f"revision {rev} applied")
    return rev


def _rule(ctl: Controller, rule: str) -> dict:
    return ctl.get("/v1/stats")[1]["policies"]["web"]["rules"][rule]


def test_sessions_count_connections_and_packets_count_packets(lab):
    ctl, vm = lab
    holder = vm["client"].popen(sys.executable, "-c", CONNS, IP["web1"], "80", "5", "100",
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ports = [int(p) for p in holder.stdout.readline().split()]
        assert len(ports) == 5
        http = wait_until(lambda: (r := _rule(ctl, "http"))["packets"] >= 500 and r,
                          timeout=10, what="the http rule's counters")
        assert http["sessions"] == 5, http
        # The connection table shows exactly these five, admitted by web/http.
        conns = ctl.get("/v1/vms/web1/connections")[1]
        mine = [c for c in conns["connections"] if c.get("sport") in ports]
        assert len(mine) == 5 and all(c["rule"] == "web/http" and c["direction"] == "ingress"
                                      and not c["blocked"] for c in mine), conns
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)


def test_denied_attempts_are_counted_as_decisions(lab):
    ctl, vm = lab
    before = _rule(ctl, "ssh-no")
    vm["client"].exec(sys.executable, "-c", SYNS, IP["web1"], "22", "3", timeout=30)
    after = wait_until(lambda: (r := _rule(ctl, "ssh-no"))["sessions"] >= before["sessions"]
                       + 3 and r, timeout=10, what="three decisions")
    assert after["sessions"] - before["sessions"] == 3, (before, after)


def test_blocked_connection_shows_as_blocked(lab):
    ctl, vm = lab
    stream = vm["client"].stream(IP["web1"], 80, seconds=3)
    time.sleep(1)
    _put(ctl, _state(http=False))
    stream.communicate(timeout=30)
    conns = ctl.get("/v1/vms/web1/connections?port=80")[1]["connections"]
    assert conns and all(c["blocked"] for c in conns if c["state"] == "ESTABLISHED"), conns


def test_metrics_parse_and_move_with_traffic(lab):
    ctl, vm = lab

    def sample(name: str, **labels) -> float | None:
        text = ctl.request("GET", "/metrics", raw=None)[1]
        text = text.decode() if isinstance(text, bytes) else text
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return s.value
        return None

    assert sample("vgw_state_revision") is not None
    assert sample("vgw_switches_connected") == 1
    before = sample("vgw_rule_sessions_total", policy="web", rule="http") or 0
    assert vm["client"].probe("tcp", IP["web1"], 80)["verdict"] == "allow"
    wait_until(lambda: (sample("vgw_rule_sessions_total", policy="web", rule="http") or 0)
               > before, timeout=10, what="the session counter to move")
    assert sample("vgw_vm_connections", vm="web1") >= 1
    assert (sample("vgw_sync_seconds_count") or 0) >= 1
