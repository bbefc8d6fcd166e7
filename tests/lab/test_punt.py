"""The punt path with real traffic: logging, reject, unknown ports, rate limits."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from vgw_lab.netlab import ROOT, sh, wait_until

A = ("a", "02:00:00:00:e0:01", ["10.241.0.1", "fd00:241::1"])
B = ("b", "02:00:00:00:e0:02", ["10.241.0.2", "fd00:241::2"])


def state(unknown_ports: str = "drop", log_default_deny: bool = False) -> dict:
    return {
        "settings": {"default_ingress": "deny", "default_egress": "allow",
                     "unknown_ports": unknown_ports, "log_default_deny": log_default_deny},
        "vms": {"a": {"mac": A[1], "ips": A[2]}, "b": {"mac": B[1], "ips": B[2]}},
        "policies": {"b-in": {"applied_to": ["vm:b"], "rules": [
            {"id": "http", "direction": "ingress", "action": "allow", "protocol": "tcp",
             "ports": "80", "log": True},
            {"id": "closed", "direction": "ingress", "action": "deny", "protocol": "tcp",
             "ports": "81", "log": True},
            {"id": "flood", "direction": "ingress", "action": "deny", "protocol": "udp",
             "ports": "9", "log": True},
            {"id": "data", "direction": "ingress", "action": "allow", "protocol": "udp",
             "ports": "5001"},
            {"id": "no-smtp", "direction": "ingress", "action": "reject", "protocol": "tcp",
             "ports": "25", "log": True},
            {"id": "no-dns", "direction": "ingress", "action": "reject", "protocol": "udp",
             "ports": "53"},
        ]}},
    }


def start(controller_factory, bridges, vms, extra_args=(), doc=None, attach=True):
    ctl = controller_factory(extra_args=list(extra_args)).start()
    br = bridges(ctl)
    a, b = vms(*A), vms(*B)
    if attach:
        a.attach(br, {"vm-id": "a"})
        b.attach(br, {"vm-id": "b"})
    status, body = ctl.request("PUT", "/v1/state", doc or state())
    assert status == 200, body
    wait_until(lambda: ctl.get("/v1/switches")[1]["switches"][0]["applied_revision"]
               == body["revision"] and (not attach or len(
                   ctl.get("/v1/switches")[1]["switches"][0]["vm_ports"]) == 2),
               what="policy applied")
    b.serve([25, 80, 81], [53, 5001], v6=True)
    return ctl, br, a, b


def logs(ctl, **q) -> list[dict]:
    query = "&".join(f"{k}={v}" for k, v in q.items())
    status, body = ctl.get("/v1/logs" + (f"?{query}" if query else ""))
    assert status == 200, body
    return body["logs"]


REQUIRED = {"time", "switch", "port", "vm", "direction", "verdict", "policy", "rule",
            "protocol", "src", "dst", "sport", "dport", "length"}


def test_logging_records_and_filters(controller_factory, bridges, vms, ovs, tmp_path):
    ctl, _br, a, b = start(controller_factory, bridges, vms)
    t0 = time.time()
    for _ in range(3):
        assert a.probe("tcp", b.ip4(), 80)["verdict"] == "allow"
    wait_until(lambda: len(logs(ctl, verdict="allow")) >= 3, what="accept records")
    time.sleep(0.5)
    accepts = logs(ctl, verdict="allow")
    assert len(accepts) == 3, "one record per new connection, not per packet"
    for r in accepts:
        assert REQUIRED <= set(r), REQUIRED - set(r)
        assert (r["vm"], r["direction"], r["policy"], r["rule"], r["dport"], r["protocol"]) \
            == ("b", "ingress", "b-in", "http", 80, "tcp")
        assert r["src"] == a.ip4() and r["dst"] == b.ip4()
    assert a.probe("tcp", b.ip4(), 81, timeout=1.0)["verdict"] == "deny"
    wait_until(lambda: logs(ctl, verdict="deny"), what="drop record")
    drop = logs(ctl, verdict="deny")[-1]
    assert (drop["rule"], drop["dport"], drop["vm"]) == ("closed", 81, "b")
    assert drop["count"] >= 1
    # Filters.
    assert all(r["vm"] == "b" for r in logs(ctl, vm="b"))
    assert logs(ctl, vm="a") == []
    assert len(logs(ctl, limit=2)) == 2
    assert logs(ctl, since=f"{time.time() + 60:.3f}") == []
    assert len(logs(ctl, since=f"{t0 - 1:.3f}")) == len(logs(ctl))
    # The file holds the same records as JSON lines (written in batches, within 0.5 s).
    def written() -> list[dict]:
        lines = (tmp_path / "firewall.jsonl").read_text().splitlines()
        parsed = [json.loads(ln) for ln in lines]
        return parsed if any(r["verdict"] == "deny" for r in parsed) else None
    parsed = wait_until(written, timeout=5, what="the records in the file")
    assert sum(1 for r in parsed if r["verdict"] == "allow") == 3
    # Bad filters are 400 naming the field.
    status, body = ctl.get("/v1/logs?limit=0")
    assert status == 400 and body["error"]["field"] == "limit"


def test_reject_answers_at_once(controller_factory, bridges, vms, ovs):
    ctl, _br, a, b = start(controller_factory, bridges, vms)
    for dst in (b.ip4(), b.ips[1]):
        r = a.probe("tcp", dst, 25, timeout=3)
        assert r["verdict"] == "reject" and r["ms"] < 1000, r
        u = a.probe("udp", dst, 53, timeout=3)
        assert u["verdict"] == "reject" and u["ms"] < 1000, u
    # The logged reject rule wrote a record; the unlogged one did not.
    wait_until(lambda: logs(ctl, verdict="reject"), what="reject record")
    assert {r["rule"] for r in logs(ctl, verdict="reject")} == {"no-smtp"}


def _udp_flood(vm, dst: str, port: int, seconds: float, pps: int) -> subprocess.Popen:
    """UDP at ``pps`` (paced in 10 ms slices)."""
    code = ("import socket,time\n"
            f"s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); d=({dst!r},{port})\n"
            f"t0=time.time(); end=t0+{seconds}; n=0; per={pps}//100\n"
            "while time.time()<end:\n"
            "    for _ in range(per):\n"
            "        s.sendto(b'x'*64,d); n+=1\n"
            "    time.sleep(max(0, t0+n/(per*100)-time.time()))\n"
            "print(n)\n")
    return vm.popen(sys.executable, "-c", code, stdout=subprocess.PIPE, text=True)


def _datapath_losses() -> str:
    """What the userspace datapath read and lost, for a failure message: fewer packets
    read than the VMs sent means its ingress sockets overflowed."""
    out = subprocess.run(["ovs-appctl", "dpif-netdev/pmd-stats-show"], capture_output=True,
                         text=True).stdout
    return "; ".join(line.strip() for line in out.splitlines()
                     if "packets received" in line or "failed upcall" in line) or out[-300:]


def test_flood_is_rate_limited_and_never_touches_forwarding(controller_factory, bridges, vms,
                                                            ovs):
    rate = 50
    ctl, _br, a, b = start(controller_factory, bridges, vms,
                          ["--vgw-meter-log-pps", str(rate)])
    # A receiver counting an allowed UDP stream sent alongside the flood.
    counter = b.popen(sys.executable, "-c", (
        "import socket,time\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('0.0.0.0',5002))\n"
        "s.setsockopt(socket.SOL_SOCKET,socket.SO_RCVBUF,4<<20)\n"
        "s.settimeout(3); seen=set()\n"
        "try:\n"
        "    while True:\n"
        "        seen.add(int(s.recv(2048)[:6]))\n"
        "except OSError: pass\n"
        "print(*sorted(set(range(2000)) - seen))\n"),
        stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
    ctl.request("PUT", "/v1/policies/b-in", {**state()["policies"]["b-in"], "rules": [
        *state()["policies"]["b-in"]["rules"],
        {"id": "count", "direction": "ingress", "action": "allow", "protocol": "udp",
         "ports": "5002"}]})
    time.sleep(0.5)
    before = ctl.get("/v1/stats")[1]["packet_ins"]
    t0 = time.monotonic()
    # 8,000 pps: 160 times the meter, and below what the userspace datapath reads on 2
    # cores without loss. At 20,000 its one thread reading the VM ports' sockets fell
    # behind now and then (~1,000 of 62,000 packets never reached it, in 4 runs of 20),
    # taking allowed packets with them: a loss of the machine, not of the punt path.
    flood = _udp_flood(a, b.ip4(), 9, 3, 8000)
    sender = a.popen(sys.executable, "-c", (
        "import socket,time\n"
        f"s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); d=({b.ip4()!r},5002)\n"
        "for i in range(2000):\n"
        "    s.sendto(b'%06d' % i + b'y'*94,d); time.sleep(0.001)\n"), cwd=str(ROOT))
    worst = 0.0
    while flood.poll() is None:
        h0 = time.monotonic()
        assert ctl.get("/v1/health")[0] == 200
        worst = max(worst, time.monotonic() - h0)
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    sent = int(flood.stdout.read())
    sender.wait(timeout=30)
    missing = counter.communicate(timeout=30)[0].split()
    time.sleep(0.5)
    punts = ctl.get("/v1/stats")[1]["packet_ins"] - before
    assert sent > 100 * rate * elapsed, f"flood too slow to test anything ({sent} packets)"
    burst = max(rate // 10, 1)
    assert punts <= rate * (elapsed + 1) + burst + 5, (punts, elapsed)
    assert punts >= 1
    assert not missing, (f"allowed packets {missing[:20]} ({len(missing)} in all) were lost "
                         f"while punts were dropped; flood {sent} sent, datapath "
                         f"{_datapath_losses()}")
    assert worst < 0.2, f"health took {worst * 1000:.0f} ms during the flood"
    recs = logs(ctl, verdict="deny")
    assert len(recs) <= rate * (elapsed + 1) + burst
    assert sum(r["count"] for r in recs) <= punts


def test_allowed_connections_get_through_when_their_log_copy_is_dropped(
        controller_factory, bridges, vms, ovs):
    ctl, _br, a, b = start(controller_factory, bridges, vms, ["--vgw-meter-log-pps", "5"])
    code = ("import socket\n"
            "ok=0\n"
            "for i in range(150):\n"
            f"    c=socket.create_connection(({b.ip4()!r},80),timeout=2); c.close(); ok+=1\n"
            "print(ok)\n")
    t0 = time.monotonic()
    assert a.exec(sys.executable, "-c", code, timeout=60).strip() == "150"
    elapsed = time.monotonic() - t0
    time.sleep(0.5)
    n = len(logs(ctl, verdict="allow"))
    assert 1 <= n <= 5 * (elapsed + 1) + 1 + 1, (n, elapsed)


@pytest.mark.parametrize("how", ["external_ids", "mac"])
def test_unknown_port_then_identified(controller_factory, bridges, vms, ovs, how):
    ctl, br, a, b = start(controller_factory, bridges, vms, attach=False)
    b.attach(br, {"vm-id": "b"})
    a.attach(br, {}, attached_mac=False)  # a port with no identity at all
    if how == "external_ids":
        # Sending from a MAC nobody declared: still unknown, the default (drop) applies.
        a.exec("ip", "link", "set", "eth0", "address", "02:00:00:00:e0:99")
        assert a.probe("tcp", b.ip4(), 80, timeout=1.0)["verdict"] == "deny"
        wait_until(lambda: [p["name"] for p in
                            ctl.get("/v1/switches")[1]["switches"][0]["unknown_ports"]]
                   == [a.host_if], what="the port reported as unknown")
        # The operator (or libvirt) names the VM: its policy applies, nothing restarted.
        a.exec("ip", "link", "set", "eth0", "address", A[1])
        sh("ovs-vsctl", "set", "Interface", a.host_if, "external_ids:vm-id=a")
    # how == "mac": the first packet's source MAC is a declared VM's; the controller
    # identifies the port from the punt, programs it and re-injects the packet.
    wait_until(lambda: a.probe("tcp", b.ip4(), 80, timeout=1.0)["verdict"] == "allow",
               timeout=10, what="the port to be identified as vm a")
    seen = ctl.get("/v1/vms/a")[1]["seen"]
    assert seen and seen[0]["port"] == a.host_if
    assert a.probe("tcp", b.ip4(), 81, timeout=1.0)["verdict"] == "deny"
    assert ctl.get("/v1/switches")[1]["switches"][0]["unknown_ports"] == []
