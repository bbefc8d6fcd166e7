"""Richer rule matches on a real netdev bridge, verdicts from ofproto/trace: ICMP and
ICMPv6 type/code, any IP protocol by name or number, source ports; both directions,
IPv4 and IPv6."""

from __future__ import annotations

import pytest

from vgw_lab.netlab import compiled_bridge, delete_bridge
from vgw_ryu.policy.model import parse_state
from vgw_ryu.runtime.ovstrace import trace

VM_MAC, EXT_MAC = "02:00:00:00:05:01", "02:00:00:00:ee:05"
VM4, VM6 = "10.5.0.1", "fd00:5::1"
PORT, UPLINK = 1, 9
NEW = ("trk,new",)
RULES = [
    {"id": "echo", "direction": "ingress", "action": "allow", "protocol": "icmp",
     "icmp_type": 8, "icmp_code": 0},
    {"id": "echo6", "direction": "ingress", "action": "allow", "protocol": "icmpv6",
     "icmp_type": 128},
    {"id": "gre", "direction": "ingress", "action": "allow", "protocol": "gre"},
    {"id": "vrrp", "direction": "egress", "action": "deny", "protocol": 112},
    {"id": "dns-from-53", "direction": "ingress", "action": "allow", "protocol": "udp",
     "src_ports": "53", "ports": "1024-65535"},
    {"id": "no-low-src", "direction": "egress", "action": "deny", "protocol": "tcp",
     "src_ports": [1, "2-1023"]},
    {"id": "from-nets", "direction": "ingress", "action": "allow", "protocol": "tcp",
     "ports": "8443", "peer": "group:nets"},
]


@pytest.fixture(scope="module")
def bridge(tmp_path_factory, ovs):
    st = parse_state({"settings": {"default_ingress": "deny", "default_egress": "allow"},
                      "vms": {"vm": {"mac": VM_MAC, "ips": [VM4, VM6]}},
                      "groups": {"nets": {"cidrs": ["198.18.0.0/24", "2001:db8:18::/48"],
                                          "except": ["198.18.0.128/25", "198.18.0.5/32",
                                                     "2001:db8:18:1::/64"]}},
                      "policies": {"p": {"applied_to": ["vm:vm"], "rules": RULES}}})
    br, ids = compiled_bridge(st, [(PORT, "tap-vm", "vm", "vm", VM_MAC),
                                   (UPLINK, "eth-up", "uplink", None, None)],
                              tmp_path_factory.mktemp("rich"))
    try:
        yield br, ids
    finally:
        delete_bridge(br)


def _in(l4: str, v6: bool = False, src: str | None = None) -> str:
    fam = "ipv6" if v6 else "nw"
    src, dst = (src or "2001:db8::7", VM6) if v6 else (src or "198.51.100.7", VM4)
    return f"in_port={UPLINK},{l4},dl_src={EXT_MAC},dl_dst={VM_MAC},{fam}_src={src},{fam}_dst={dst}"


def _out(l4: str) -> str:
    return f"in_port={PORT},{l4},dl_src={VM_MAC},dl_dst={EXT_MAC},nw_src={VM4},nw_dst=203.0.113.9"


@pytest.mark.parametrize("flow,allowed,rule", [
    (_in("icmp") + ",icmp_type=8,icmp_code=0", True, "echo"),
    (_in("icmp") + ",icmp_type=8,icmp_code=1", False, None),
    (_in("icmp") + ",icmp_type=13,icmp_code=0", False, None),
    (_in("icmp6", v6=True) + ",icmpv6_type=128,icmpv6_code=0", True, "echo6"),
    (_in("icmp6", v6=True) + ",icmpv6_type=129,icmpv6_code=0", False, None),
    (_in("ip") + ",nw_proto=47", True, "gre"),
    (_in("ipv6", v6=True) + ",nw_proto=47", True, "gre"),
    (_in("ip") + ",nw_proto=50", False, None),
    (_in("udp") + ",udp_src=53,udp_dst=40000", True, "dns-from-53"),
    (_in("udp") + ",udp_src=54,udp_dst=40000", False, None),
    (_in("udp") + ",udp_src=53,udp_dst=53", False, None),
    (_in("udp6", v6=True) + ",udp_src=53,udp_dst=40000", True, "dns-from-53"),
    (_out("ip") + ",nw_proto=112", False, "vrrp"),
    (_out("tcp") + ",tp_src=22,tp_dst=443", False, "no-low-src"),
    (_out("tcp") + ",tp_src=1024,tp_dst=443", True, None),
    (_in("tcp", src="198.18.0.10") + ",tp_src=40000,tp_dst=8443", True, "from-nets"),
    (_in("tcp", src="198.18.0.5") + ",tp_src=40000,tp_dst=8443", False, None),
    (_in("tcp", src="198.18.0.200") + ",tp_src=40000,tp_dst=8443", False, None),
    (_in("tcp6", v6=True, src="2001:db8:18::9") + ",tp_src=40000,tp_dst=8443", True,
     "from-nets"),
    (_in("tcp6", v6=True, src="2001:db8:18:1::9") + ",tp_src=40000,tp_dst=8443", False,
     None),
])
def test_verdicts(bridge, flow, allowed, rule):
    br, ids = bridge
    r = trace(br.name, flow, NEW)
    assert r.forwarded == allowed, r.text
    if rule is not None:
        assert r.rules == [ids.rule("p", rule)], r.text
