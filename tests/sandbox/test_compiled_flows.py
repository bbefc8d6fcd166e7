"""Compiled flows on a real netdev bridge, verdicts read from ofproto/trace.

The flows are loaded exactly as the compiler renders them (ovs-ofctl add-flows); the
app's OpenFlow encoding of the same flows is compared with these in test_app_sync.
"""

from pathlib import Path

import pytest
import yaml

from vgw_lab.netlab import add_internal_port, delete_bridge, load_flows, make_bridge
from vgw_ryu.compiler import PortFacts, SwitchFacts, compile_switch, render
from vgw_ryu.policy.ids import Ids
from vgw_ryu.policy.model import parse_state
from vgw_ryu.runtime.ovstrace import trace

EXAMPLES = Path(__file__).resolve().parents[2] / "flows" / "examples"
MAC = {"web1": "02:00:00:00:01:01", "app1": "02:00:00:00:02:01", "db1": "02:00:00:00:03:01",
       "jump1": "02:00:00:00:09:01", "ext": "02:00:00:00:ee:01"}
PORT = {"web1": 1, "app1": 2, "db1": 3, "jump1": 4, "up": 9}


def load_example(name: str):
    doc = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    state = parse_state(doc["state"])
    facts = SwitchFacts(tuple(PortFacts(**p) for p in doc["switch"]["ports"]))
    ids = Ids()
    ids.sync(state)
    return state, facts, ids


def install(tmp_path, state, facts, ids):
    br = make_bridge()
    for p in facts.ports:
        add_internal_port(br, p.ofport)
    load_flows(br, render(compile_switch(state, facts, ids)), tmp_path / "flows.txt")
    return br


@pytest.fixture
def three_tier(ovs, tmp_path):
    state, facts, ids = load_example("three_tier")
    br = install(tmp_path, state, facts, ids)
    yield br, ids
    delete_bridge(br)


def tcp(src, dst, sip, dip, dport, in_port, v6=False):
    proto = "tcp6" if v6 else "tcp"
    fam = "ipv6" if v6 else "nw"
    return (f"in_port={in_port},{proto},dl_src={MAC[src]},dl_dst={MAC[dst]},"
            f"{fam}_src={sip},{fam}_dst={dip},tp_src=40000,tp_dst={dport}")


NEW = ("trk,new",)


def test_ingress_allow_any_peer(three_tier):
    br, ids = three_tier
    r = trace(br.name, tcp("ext", "web1", "198.51.100.7", "10.0.0.11", 80, PORT["up"]), NEW)
    assert r.outputs == {PORT["web1"]} and r.committed and not r.punts
    assert r.rules == [ids.rule("web-in", "http")]


def test_ingress_default_deny(three_tier):
    br, _ = three_tier
    r = trace(br.name, tcp("ext", "web1", "198.51.100.7", "10.0.0.11", 22, PORT["up"]), NEW)
    assert not r.forwarded and not r.committed and not r.punts


def test_ingress_group_peer_with_log(three_tier):
    br, ids = three_tier
    # jump1 is unprotected: no egress stage; web1's ingress allows ssh from admins.
    r = trace(br.name, tcp("jump1", "web1", "10.0.0.91", "10.0.0.11", 22, PORT["jump1"]), NEW)
    assert r.outputs == {PORT["web1"]} and r.committed
    assert r.punts == {"log"}
    assert r.rules == [ids.rule("web-in", "ssh")]


def test_ingress_cidr_member_of_group(three_tier):
    br, _ = three_tier
    r = trace(br.name, tcp("ext", "web1", "192.0.2.5", "10.0.0.11", 22, PORT["up"]), NEW)
    assert r.outputs == {PORT["web1"]}
    r = trace(br.name, tcp("ext", "web1", "192.0.3.5", "10.0.0.11", 22, PORT["up"]), NEW)
    assert not r.forwarded


def test_egress_reject_punts_without_forwarding(three_tier):
    br, ids = three_tier
    r = trace(br.name, tcp("web1", "ext", "10.0.0.11", "203.0.113.9", 25, PORT["web1"]), NEW)
    assert r.punts == {"reject"} and not r.forwarded and not r.committed
    assert r.rules == [ids.rule("web-in", "no-smtp")]


def test_egress_default_allow_goes_to_normal(three_tier):
    br, _ = three_tier
    r = trace(br.name, tcp("web1", "ext", "10.0.0.11", "203.0.113.9", 443, PORT["web1"]), NEW)
    assert r.committed and PORT["up"] in r.outputs and not r.punts


def test_vm_to_vm_crosses_both_zones_label_group_and_port_range(three_tier):
    br, ids = three_tier
    for port in (8080, 8081):
        r = trace(br.name, tcp("web1", "app1", "10.0.0.11", "10.0.0.21", port, PORT["web1"]),
                  ("trk,new", "trk,new"))
        assert r.outputs == {PORT["app1"]}, r.text
        assert r.rules == [ids.rule("app-in", "from-web")]
        assert "ct(zone=3)" in r.text and "ct(zone=1)" in r.text  # web1=3, app1=1
    r = trace(br.name, tcp("web1", "app1", "10.0.0.11", "10.0.0.21", 8082, PORT["web1"]),
              ("trk,new", "trk,new"))
    assert not r.forwarded


def test_vm_peer_and_icmp(three_tier):
    br, _ = three_tier
    ok = trace(br.name, tcp("app1", "db1", "10.0.0.21", "10.0.0.31", 5432, PORT["app1"]),
               ("trk,new", "trk,new"))
    assert ok.outputs == {PORT["db1"]}
    bad = trace(br.name, tcp("web1", "db1", "10.0.0.11", "10.0.0.31", 5432, PORT["web1"]),
                ("trk,new", "trk,new"))
    assert not bad.forwarded
    ping = (f"in_port={PORT['web1']},icmp,dl_src={MAC['web1']},dl_dst={MAC['app1']},"
            "nw_src=10.0.0.11,nw_dst=10.0.0.21,icmp_type=8,icmp_code=0")
    assert trace(br.name, ping, ("trk,new", "trk,new")).outputs == {PORT["app1"]}
    ping_db = ping.replace(MAC["app1"], MAC["db1"]).replace("10.0.0.21", "10.0.0.31")
    assert not trace(br.name, ping_db, ("trk,new", "trk,new")).forwarded


def test_logged_egress_deny(three_tier):
    br, ids = three_tier
    r = trace(br.name, tcp("db1", "ext", "10.0.0.31", "203.0.113.9", 443, PORT["db1"]), NEW)
    assert r.punts == {"log"} and not r.forwarded
    assert r.rules == [ids.rule("db-in", "no-out")]


def test_ipv6_tcp(three_tier):
    br, _ = three_tier
    r = trace(br.name, tcp("ext", "web1", "2001:db8::5", "fd00::11", 443, PORT["up"], v6=True),
              NEW)
    assert r.outputs == {PORT["web1"]}
    r = trace(br.name, tcp("ext", "web1", "2001:db8::5", "fd00::11", 444, PORT["up"], v6=True),
              NEW)
    assert not r.forwarded


@pytest.mark.parametrize("desc,flow", [
    ("foreign source IP", "in_port=1,tcp,dl_src=02:00:00:00:01:01,dl_dst=02:00:00:00:ee:01,"
                          "nw_src=10.0.0.99,nw_dst=203.0.113.9,tp_dst=443"),
    ("foreign source MAC", "in_port=1,tcp,dl_src=02:00:00:00:01:99,dl_dst=02:00:00:00:ee:01,"
                           "nw_src=10.0.0.11,nw_dst=203.0.113.9,tp_dst=443"),
    ("ARP for another IP", "in_port=1,arp,dl_src=02:00:00:00:01:01,dl_dst=ff:ff:ff:ff:ff:ff,"
                           "arp_spa=10.0.0.12,arp_sha=02:00:00:00:01:01,arp_tpa=10.0.0.21"),
    ("router advert", "in_port=1,icmp6,dl_src=02:00:00:00:01:01,dl_dst=33:33:00:00:00:01,"
                      "ipv6_src=fd00::11,ipv6_dst=ff02::1,icmpv6_type=134,icmpv6_code=0"),
    ("ND advert for another IP", "in_port=1,icmp6,dl_src=02:00:00:00:01:01,"
                                 "dl_dst=33:33:00:00:00:01,ipv6_src=fd00::11,ipv6_dst=ff02::1,"
                                 "icmpv6_type=136,icmpv6_code=0,nd_target=fd00::99"),
])
def test_spoofed_sources_dropped(three_tier, desc, flow):
    br, _ = three_tier
    r = trace(br.name, flow, NEW)
    assert not r.forwarded and not r.committed, desc
    assert 20 not in r.tables  # dropped before conntrack


def test_own_arp_dhcp_and_nd_pass_without_conntrack(three_tier):
    br, _ = three_tier
    for flow in ("in_port=1,arp,dl_src=02:00:00:00:01:01,dl_dst=ff:ff:ff:ff:ff:ff,"
                 "arp_spa=10.0.0.11,arp_sha=02:00:00:00:01:01,arp_tpa=10.0.0.21",
                 "in_port=1,udp,dl_src=02:00:00:00:01:01,dl_dst=ff:ff:ff:ff:ff:ff,"
                 "nw_src=0.0.0.0,nw_dst=255.255.255.255,udp_src=68,udp_dst=67",
                 "in_port=1,icmp6,dl_src=02:00:00:00:01:01,dl_dst=33:33:00:00:00:01,"
                 "ipv6_src=fd00::11,ipv6_dst=ff02::1,icmpv6_type=136,icmpv6_code=0,"
                 "nd_target=fd00::11"):
        r = trace(br.name, flow)
        assert PORT["up"] in r.outputs, flow
        assert 20 not in r.tables


def test_unprotected_vm_bypasses_firewall(three_tier):
    br, _ = three_tier
    r = trace(br.name, tcp("jump1", "ext", "10.0.0.91", "203.0.113.9", 25, PORT["jump1"]))
    assert PORT["up"] in r.outputs
    assert not r.committed and 20 not in r.tables and 45 not in r.tables


def test_established_and_related_and_invalid(three_tier):
    br, _ = three_tier
    allowed = tcp("ext", "web1", "198.51.100.7", "10.0.0.11", 80, PORT["up"])
    # Established, original direction: judged again by the rules, still allowed, passed
    # without another commit.
    r = trace(br.name, allowed, ("trk,est",))
    assert r.outputs == {PORT["web1"]} and not r.committed
    assert 60 in r.tables
    assert trace(br.name, allowed, ("trk,rel",)).outputs == {PORT["web1"]}
    assert not trace(br.name, allowed, ("trk,inv",)).forwarded
    # Replies of a connection pass unless it is blocked.
    reply = tcp("ext", "web1", "198.51.100.7", "10.0.0.11", 40000, PORT["up"])
    assert trace(br.name, reply, ("trk,est,rpl",)).outputs == {PORT["web1"]}


def test_established_connection_denied_after_change_is_blocked(three_tier):
    br, _ = three_tier
    denied = tcp("ext", "web1", "198.51.100.7", "10.0.0.11", 22, PORT["up"])
    r = trace(br.name, denied, ("trk,est",))
    assert not r.forwarded
    assert r.committed and r.blocked  # its replies are dropped from now on


def test_ipv6_example_icmpv6_ranges_and_unknown_port(ovs, tmp_path):
    state, facts, ids = load_example("ipv6")
    br = install(tmp_path, state, facts, ids)
    try:
        a, b = "02:00:00:00:0a:01", "02:00:00:00:0b:01"
        ping6 = (f"in_port=1,icmp6,dl_src={a},dl_dst={b},ipv6_src=fd00::a1,ipv6_dst=fd00::b1,"
                 "icmpv6_type=128,icmpv6_code=0")
        assert trace(br.name, ping6, ("trk,new", "trk,new")).outputs == {2}
        web = (f"in_port=1,tcp6,dl_src={a},dl_dst={b},ipv6_src=fd00::a1,ipv6_dst=fd00::b1,"
               "tp_src=5555,tp_dst={}")
        for port, ok in ((8000, True), (8007, True), (8010, True), (7999, False),
                         (8011, False)):
            r = trace(br.name, web.format(port), ("trk,new", "trk,new"))
            assert r.forwarded == ok, port
        dns = (f"in_port=2,udp6,dl_src={b},dl_dst=02:00:00:00:ee:01,ipv6_src=fd00::b1,"
               "ipv6_dst=fd00::53,udp_src=5353,udp_dst=53")
        assert not trace(br.name, dns, ("trk,new",)).forwarded
        dns_v4 = (f"in_port=2,udp,dl_src={b},dl_dst=02:00:00:00:ee:01,nw_src=10.2.0.2,"
                  "nw_dst=10.9.9.9,udp_src=5353,udp_dst=53")
        assert trace(br.name, dns_v4, ("trk,new",)).forwarded  # the deny is for fd00::/8
        unknown = "in_port=7,udp,dl_src=02:00:00:00:77:01,nw_src=10.7.0.1,nw_dst=10.7.0.2"
        r = trace(br.name, unknown)
        assert r.punts == {"unknown"} and r.forwarded  # settings.unknown_ports: allow
    finally:
        delete_bridge(br)


def test_unknown_port_dropped_by_default(three_tier):
    br, _ = three_tier
    add_internal_port(br, 20)
    r = trace(br.name, "in_port=20,udp,dl_src=02:00:00:00:77:01,nw_src=10.7.0.1,"
                       "nw_dst=10.7.0.2")
    assert r.punts == {"unknown"} and not r.forwarded
