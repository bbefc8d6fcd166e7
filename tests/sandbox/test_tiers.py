"""Policy tiers and pass on a real bridge, verdicts from ofproto/trace: an earlier tier's
deny beats a later tier's allow, pass hands the decision to the next tier, and what no
tier decides gets the defaults; ingress and egress, IPv4 and IPv6."""

from __future__ import annotations

import ipaddress

import pytest

from vgw_lab.netlab import compiled_bridge, delete_bridge
from vgw_ryu.policy.model import parse_state
from vgw_ryu.policy.ruleset import effective_rules, evaluate
from vgw_ryu.runtime.ovstrace import trace

MAC, EXT = "02:00:00:00:07:01", "02:00:00:00:ee:07"
VM4, VM6 = "10.7.0.1", "fd00:7::1"
PORT, UP = 1, 9


def _r(rid, direction, action, port=None, peer=None, prio=100):
    return {"id": rid, "direction": direction, "action": action, "protocol": "tcp",
            "priority": prio, **({"ports": str(port)} if port else {}),
            **({"peer": peer} if peer else {})}


STATE = {
    "settings": {"default_ingress": "deny", "default_egress": "allow",
                 "tiers": ["admin", "application", "baseline"], "default_tier": "application"},
    "vms": {"vm": {"mac": MAC, "ips": [VM4, VM6]}},
    "groups": {"trusted": {"cidrs": ["198.51.100.0/24", "2001:db8:7::/48"]}},
    "policies": {
        "admin": {"tier": "admin", "applied_to": ["vm:vm"], "rules": [
            _r("no-telnet", "ingress", "deny", 23),
            _r("trusted", "ingress", "pass", peer="group:trusted", prio=50),
            _r("rest", "ingress", "deny", prio=10),
            _r("no-smtp", "egress", "deny", 25)]},
        "app": {"applied_to": ["vm:vm"], "rules": [
            _r("telnet", "ingress", "allow", 23), _r("web", "ingress", "allow", 8080),
            _r("smtp", "egress", "allow", 25)]},
        "base": {"tier": "baseline", "applied_to": ["vm:vm"], "rules": [
            _r("metrics", "ingress", "allow", 9090)]}},
}


@pytest.fixture(scope="module")
def bridge(tmp_path_factory, ovs):
    st = parse_state(STATE)
    br, _ = compiled_bridge(st, [(PORT, "tap-vm", "vm", "vm", MAC),
                                 (UP, "eth-up", "uplink", None, None)],
                            tmp_path_factory.mktemp("tiers"))
    try:
        yield br, st
    finally:
        delete_bridge(br)


def _in(src: str, dport: int) -> str:
    v6 = ":" in src
    fam, l4, dst = ("ipv6", "tcp6", VM6) if v6 else ("nw", "tcp", VM4)
    return (f"in_port={UP},{l4},dl_src={EXT},dl_dst={MAC},{fam}_src={src},{fam}_dst={dst},"
            f"tp_src=40000,tp_dst={dport}")


@pytest.mark.parametrize("src,dport,want", [
    ("198.51.100.7", 23, False),    # admin deny beats the application tier's allow
    ("198.51.100.7", 8080, True),   # admin passes trusted peers to the application tier
    ("198.51.100.7", 9090, True),   # ...and on to baseline
    ("198.51.100.7", 7777, False),  # no tier decides: the default (deny)
    ("203.0.113.7", 8080, False),   # not trusted: admin's own catch-all deny
    ("2001:db8:7::9", 8080, True),
    ("2001:db8:8::9", 8080, False),
])
def test_ingress_tiers(bridge, src, dport, want):
    br, st = bridge
    r = trace(br.name, _in(src, dport), ("trk,new",))
    assert r.forwarded == want, r.text
    model = evaluate(st, effective_rules(st)["vm"], "ingress", ipaddress.ip_address(src),
                     "tcp", dport, 40000).verdict
    assert (model == "allow") == want   # the model agrees with the datapath


def test_egress_admin_deny_beats_application_allow(bridge):
    br, _ = bridge
    flow = (f"in_port={PORT},tcp,dl_src={MAC},dl_dst={EXT},nw_src={VM4},nw_dst=203.0.113.1,"
            "tp_src=40000,tp_dst=25")
    assert not trace(br.name, flow, ("trk,new",)).forwarded
    ok = flow.replace("tp_dst=25", "tp_dst=443")
    assert trace(br.name, ok, ("trk,new",)).forwarded
