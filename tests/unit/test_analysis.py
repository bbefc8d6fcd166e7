"""Rule analysis: a table of policies with the exact warnings expected, none when clean."""

from __future__ import annotations

import pytest

from vgw_ryu.policy.analysis import analyze
from vgw_ryu.policy.model import parse_state

VMS = {"web1": {"mac": "02:00:00:00:00:01", "ips": ["10.0.0.1"], "labels": {"t": "web"}},
       "web2": {"mac": "02:00:00:00:00:02", "ips": ["10.0.0.2"], "labels": {"t": "web"}},
       "db": {"mac": "02:00:00:00:00:03", "ips": ["10.0.0.3"]}}


def _r(rid, action="allow", direction="ingress", **kw):
    return {"id": rid, "direction": direction, "action": action, **kw}


def _warnings(policies: dict, groups: dict | None = None, settings: dict | None = None):
    st = parse_state({"settings": settings or {}, "vms": VMS,
                      "groups": {"web": {"match_labels": {"t": "web"}}, **(groups or {})},
                      "policies": policies})
    return [(w["code"], w["field"]) for w in analyze(st)]


CASES = [
    ("clean", {"p": {"applied_to": ["group:web"], "rules": [
        _r("http", protocol="tcp", ports="80"), _r("ssh", protocol="tcp", ports="22"),
        _r("no-db", "deny", "egress", protocol="tcp", ports="5432", peer="vm:db")]}}, {}, []),
    ("shadowed by a wider deny", {"p": {"applied_to": ["group:web"], "rules": [
        _r("no-tcp", "deny", protocol="tcp", priority=200),
        _r("http", protocol="tcp", ports="80")]}}, {},
     [("shadowed", "policies.p.rules[1]")]),
    ("shadowed across policies", {
        "a": {"applied_to": ["group:web"], "rules": [_r("any-in", priority=500)]},
        "b": {"applied_to": ["vm:web1"], "rules": [
            _r("web-from-net", protocol="tcp", ports="80-90", peer="cidr:10.9.0.0/16")]}}, {},
     [("shadowed", "policies.b.rules[0]")]),
    ("shadowed for some VMs only is fine", {
        "a": {"applied_to": ["vm:web1"], "rules": [_r("any-in", priority=500)]},
        "b": {"applied_to": ["group:web"], "rules": [_r("http", protocol="tcp",
                                                        ports="80")]}}, {}, []),
    ("a narrower earlier rule does not shadow", {"p": {"applied_to": ["vm:db"], "rules": [
        _r("one", "deny", protocol="tcp", ports="80", priority=200),
        _r("range", protocol="tcp", ports="1-1024")]}}, {}, []),
    ("overlap at one priority", {"p": {"applied_to": ["vm:db"], "rules": [
        _r("allow-net", protocol="tcp", peer="cidr:10.0.0.0/8"),
        _r("deny-80", "deny", protocol="tcp", ports="80")]}}, {},
     [("overlap", "policies.p.rules[0]")]),   # the allow that loses to the deny
    ("no overlap: other ports", {"p": {"applied_to": ["vm:db"], "rules": [
        _r("a", protocol="tcp", ports="80"), _r("d", "deny", protocol="tcp", ports="81")]}},
     {}, []),
    ("empty peer group", {"p": {"applied_to": ["vm:db"], "rules": [
        _r("from-nobody", peer="group:empty")]}}, {"empty": {"members": []}},
     [("never_matches", "policies.p.rules[0].peer")]),
    ("icmp rule with only IPv6 peers", {"p": {"applied_to": ["vm:db"], "rules": [
        _r("ping", protocol="icmp", peer="group:v6")]}}, {"v6": {"cidrs": ["fd00::/8"]}},
     [("never_matches", "policies.p.rules[0].peer")]),
    ("applied to nothing", {"p": {"applied_to": ["group:empty"], "rules": [_r("x")]}},
     {"empty": {"members": []}}, [("applies_to_nothing", "policies.p.applied_to")]),
    ("an earlier tier's pass does not shadow", {
        "adm": {"tier": "admin", "applied_to": ["vm:db"], "rules": [_r("p", "pass")]},
        "app": {"applied_to": ["vm:db"], "rules": [_r("http", protocol="tcp", ports="80")]}},
     {}, []),
]


@pytest.mark.parametrize("name,policies,groups,want", CASES, ids=[c[0] for c in CASES])
def test_warnings(name, policies, groups, want):
    settings = {"tiers": ["admin", "app"], "default_tier": "app"} if "tier" in name else {}
    assert _warnings(policies, groups, settings) == want


def test_warning_shape():
    st = parse_state({"vms": VMS, "policies": {"p": {"applied_to": ["vm:db"], "rules": [
        _r("all", "deny", priority=300), _r("http", protocol="tcp", ports="80")]}}})
    (w,) = analyze(st)
    assert w["code"] == "shadowed" and w["field"] == "policies.p.rules[1]"
    assert "p/all comes first" in w["message"]
