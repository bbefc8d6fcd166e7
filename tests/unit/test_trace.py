"""The datapath half of POST /v1/trace: flow text, where to trace from, the verdict."""

from __future__ import annotations

import ipaddress

import pytest

from vgw_ryu.pipeline import tables as pl
from vgw_ryu.runtime import trace
from vgw_ryu.runtime.ovstrace import TraceResult
from vgw_ryu.runtime.ports import Iface

DOC = {
    "vms": {"web": {"mac": "02:00:00:00:00:01", "ips": ["10.0.0.1", "fd00::1"]},
            "v4only": {"ips": ["10.0.0.2"]}},
    "policies": {"p": {"applied_to": ["vm:web"], "rules": [
        {"id": "http", "direction": "ingress", "action": "allow", "protocol": "tcp",
         "ports": "80"}]}},
}
DPID = 0x2A
WEB = Iface("tap-web", 3, "", {"vm-id": "web"})
V4ONLY = Iface("tap-v4", 4, "", {"vm-id": "v4only", "attached-mac": "02:00:00:00:00:02"})
UPLINK = Iface("eth1", 7, "", {"vgw-role": "uplink"})
BRIDGES = {DPID: "br-test"}.get
ip = ipaddress.ip_address


@pytest.fixture
def engine(make_engine):
    eng = make_engine(DOC)
    eng.refresh_facts(DPID, [WEB, V4ONLY, UPLINK])
    return eng


@pytest.mark.parametrize(("proto", "src", "dst", "port", "want"), [
    ("tcp", "10.0.0.1", "192.0.2.9", 80,
     "in_port=3,tcp,dl_src=a,dl_dst=b,nw_src=10.0.0.1,nw_dst=192.0.2.9,tcp_src=40000,tcp_dst=80"),
    ("udp", "10.0.0.1", "192.0.2.9", 53,
     "in_port=3,udp,dl_src=a,dl_dst=b,nw_src=10.0.0.1,nw_dst=192.0.2.9,udp_src=40000,udp_dst=53"),
    ("tcp", "fd00::1", "fd00::9", 443,
     "in_port=3,tcp6,dl_src=a,dl_dst=b,ipv6_src=fd00::1,ipv6_dst=fd00::9,tcp_src=40000,"
     "tcp_dst=443"),
    ("udp", "fd00::1", "fd00::9", 53,
     "in_port=3,udp6,dl_src=a,dl_dst=b,ipv6_src=fd00::1,ipv6_dst=fd00::9,udp_src=40000,"
     "udp_dst=53"),
    ("icmp", "10.0.0.1", "192.0.2.9", None,
     "in_port=3,icmp,dl_src=a,dl_dst=b,nw_src=10.0.0.1,nw_dst=192.0.2.9,icmp_type=8,"
     "icmp_code=0"),
    ("icmpv6", "fd00::1", "fd00::9", None,
     "in_port=3,icmp6,dl_src=a,dl_dst=b,ipv6_src=fd00::1,ipv6_dst=fd00::9,icmpv6_type=128,"
     "icmpv6_code=0"),
])
def test_flow_text(proto, src, dst, port, want):
    assert trace.flow_text(3, proto, "a", "b", ip(src), ip(dst), port) == want


def test_egress_starts_at_the_vms_port(engine):
    p = trace.plan(engine.snapshot(), BRIDGES, "web", "egress", ip("192.0.2.9"), "tcp", 25)
    assert p == trace.TracePlan("000000000000002a", "br-test",
                                trace.flow_text(3, "tcp", "02:00:00:00:00:01", trace.PEER_MAC,
                                                ip("10.0.0.1"), ip("192.0.2.9"), 25),
                                "vm web's port tap-web (ofport 3)")


def test_ingress_starts_at_the_first_uplink_and_uses_the_family_of_the_peer(engine):
    p = trace.plan(engine.snapshot(), BRIDGES, "web", "ingress", ip("fd00::9"), "tcp", 80)
    assert p.flow.startswith(f"in_port=7,tcp6,dl_src={trace.PEER_MAC},"
                             "dl_dst=02:00:00:00:00:01,ipv6_src=fd00::9,ipv6_dst=fd00::1,")


def test_ingress_without_an_uplink_starts_at_the_peers_own_port(engine):
    # A single bridge of VMs: the peer 10.0.0.2 is v4only, on this switch.
    engine.refresh_facts(DPID, [WEB, V4ONLY])
    p = trace.plan(engine.snapshot(), BRIDGES, "web", "ingress", ip("10.0.0.2"), "tcp", 80)
    assert p.flow == trace.flow_text(4, "tcp", "02:00:00:00:00:02", "02:00:00:00:00:01",
                                     ip("10.0.0.2"), ip("10.0.0.1"), 80)
    assert p.source.startswith("vm v4only's port tap-v4 (ofport 4): no uplink")


def test_ingress_without_an_uplink_starts_at_an_unprotected_vms_port(make_engine):
    eng = make_engine({**DOC, "vms": {**DOC["vms"], "open": {
        "mac": "02:00:00:00:00:09", "ips": ["10.0.0.9"], "protected": False}}})
    eng.refresh_facts(DPID, [WEB, Iface("tap-open", 9, "", {"vm-id": "open"})])
    p = trace.plan(eng.snapshot(), BRIDGES, "web", "ingress", ip("192.0.2.9"), "tcp", 80)
    assert p.flow.startswith(f"in_port=9,tcp,dl_src={trace.PEER_MAC},")
    assert p.source.startswith("unprotected vm open's port tap-open")


def test_ingress_with_nowhere_to_start_is_an_error_naming_the_fix(engine):
    engine.refresh_facts(DPID, [WEB])
    out = trace.trace_datapath(engine.snapshot(), BRIDGES, "web", "ingress", ip("192.0.2.9"),
                               "tcp", 80, run=pytest.fail)
    assert "vgw-role=uplink" in out["error"] and "192.0.2.9" in out["error"]


def test_a_vm_without_an_address_of_the_family_is_an_error(engine):
    out = trace.trace_datapath(engine.snapshot(), BRIDGES, "v4only", "egress", ip("fd00::9"),
                               "icmpv6", None, run=pytest.fail)
    assert out == {"error": "vm v4only has no IPv6 address or MAC to trace with"}


def test_the_mac_seen_on_the_port_is_used_when_the_vm_declares_none(engine):
    p = trace.plan(engine.snapshot(), BRIDGES, "v4only", "egress", ip("192.0.2.9"), "icmp",
                   None)
    assert "in_port=4,icmp,dl_src=02:00:00:00:00:02," in p.flow


def test_not_traced_when_the_vm_is_not_seen_or_its_bridge_is_not_local(engine):
    snap = engine.snapshot()
    assert trace.plan(snap, {}.get, "web", "egress", ip("192.0.2.9"), "tcp", 80) is None
    engine.forget_switch(DPID)
    assert trace.trace_datapath(engine.snapshot(), BRIDGES, "web", "egress",
                                ip("192.0.2.9"), "tcp", 80, run=pytest.fail) is None


def test_result_is_interpreted(engine):
    calls = []
    rule = engine.snapshot().ids.rule("p", "http")

    def run(bridge, flow, ct_states):
        calls.append((bridge, flow, ct_states))
        return TraceResult(outputs={3}, punts={"log"}, rules=[rule, 999],
                           tables=[0, pl.T["rules"]])

    out = trace.trace_datapath(engine.snapshot(), BRIDGES, "web", "ingress", ip("192.0.2.9"),
                               "tcp", 80, run=run)
    assert calls == [("br-test", out["flow"], ("trk,new", "trk,new"))]
    assert out == {"switch": "000000000000002a", "bridge": "br-test",
                   "from": "uplink eth1 (ofport 7)", "flow": out["flow"], "verdict": "allow",
                   "punts": ["log"], "rules": ["p/http"], "outputs": [3]}


@pytest.mark.parametrize(("outputs", "punts", "verdict"), [
    (set(), {"reject"}, "reject"), (set(), set(), "deny"), (set(), {"log"}, "deny"),
    ({1}, {"reject"}, "allow"),
])
def test_verdict(engine, outputs, punts, verdict):
    out = trace.trace_datapath(engine.snapshot(), BRIDGES, "web", "egress", ip("192.0.2.9"),
                               "udp", 53, run=lambda *a: TraceResult(outputs=outputs,
                                                                     punts=punts))
    assert out["verdict"] == verdict
