"""Address pairs on a real bridge, verdicts from ofproto/trace: a VM's extra addresses
and MACs pass its anti-spoofing guard and reach it; another VM spoofing them is dropped;
group membership follows them."""

from __future__ import annotations

import pytest

from vgw_lab.netlab import compiled_bridge, delete_bridge
from vgw_ryu.policy.model import parse_state
from vgw_ryu.runtime.ovstrace import trace

A_MAC, C_MAC, VMAC, EXT = ("02:00:00:00:06:01", "02:00:00:00:06:03", "00:00:5e:00:01:07",
                           "02:00:00:00:ee:06")
A, C, UP = 1, 3, 9
NEW = ("trk,new",)


@pytest.fixture(scope="module")
def bridge(tmp_path_factory, ovs):
    st = parse_state({
        "settings": {"default_ingress": "deny", "default_egress": "allow"},
        "vms": {"a": {"mac": A_MAC, "ips": ["10.6.0.1"], "labels": {"tier": "lb"},
                      "address_pairs": [{"ip": "10.6.0.100"},
                                        {"ip": "10.6.0.200", "mac": VMAC}]},
                "c": {"mac": C_MAC, "ips": ["10.6.0.3"]}},
        "groups": {"lb": {"match_labels": {"tier": "lb"}}},
        "policies": {
            "lb-in": {"applied_to": ["vm:a"], "rules": [
                {"id": "http", "direction": "ingress", "action": "allow", "protocol": "tcp",
                 "ports": "80"}]},
            "c-in": {"applied_to": ["vm:c"], "rules": [
                {"id": "from-lb", "direction": "ingress", "action": "allow",
                 "protocol": "tcp", "ports": "9000", "peer": "group:lb"}]}}})
    br, _ = compiled_bridge(st, [(A, "tap-a", "vm", "a", A_MAC), (C, "tap-c", "vm", "c", C_MAC),
                                 (UP, "eth-up", "uplink", None, None)],
                            tmp_path_factory.mktemp("pairs"))
    try:
        yield br
    finally:
        delete_bridge(br)


def _tcp(in_port, smac, dmac, src, dst, dport):
    return (f"in_port={in_port},tcp,dl_src={smac},dl_dst={dmac},nw_src={src},nw_dst={dst},"
            f"tp_src=40000,tp_dst={dport}")


@pytest.mark.parametrize("flow,forwarded", [
    (_tcp(A, A_MAC, EXT, "10.6.0.100", "203.0.113.1", 443), True),    # VIP, own MAC
    (_tcp(A, VMAC, EXT, "10.6.0.200", "203.0.113.1", 443), True),     # VIP, virtual MAC
    (_tcp(A, A_MAC, EXT, "10.6.0.101", "203.0.113.1", 443), False),   # not a pair
    (_tcp(A, VMAC, EXT, "10.6.0.100", "203.0.113.1", 443), False),    # pair, other MAC
    (_tcp(C, C_MAC, EXT, "10.6.0.100", "203.0.113.1", 443), False),   # c spoofing a's VIP
    (_tcp(UP, EXT, VMAC, "198.51.100.1", "10.6.0.200", 80), True),    # to the virtual MAC
    (_tcp(UP, EXT, VMAC, "198.51.100.1", "10.6.0.200", 81), False),   # ...a's policy applies
    (_tcp(A, A_MAC, C_MAC, "10.6.0.100", "10.6.0.3", 9000), True),    # group:lb has the VIP
])
def test_verdicts(bridge, flow, forwarded):
    r = trace(bridge.name, flow, NEW if not flow.startswith(f"in_port={A},") or
              "10.6.0.3" not in flow else ("trk,new", "trk,new"))
    assert r.forwarded == forwarded, r.text


def test_arp_for_the_vip_from_its_owner_only(bridge):
    ok = f"in_port={A},arp,dl_src={A_MAC},arp_spa=10.6.0.100,arp_sha={A_MAC},arp_op=1"
    spoof = f"in_port={C},arp,dl_src={C_MAC},arp_spa=10.6.0.100,arp_sha={C_MAC},arp_op=1"
    assert trace(bridge.name, ok, ()).forwarded
    assert not trace(bridge.name, spoof, ()).forwarded
