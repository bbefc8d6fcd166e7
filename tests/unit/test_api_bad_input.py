"""The REST bad-input table on a real Engine and store: every case is refused with its
error code and field, and changes nothing (in memory or in the database)."""

from __future__ import annotations

import copy

import pytest

from tests.api_doc import BIG, RULE, SSH_FROM_ADMINS, assert_error

# --- the bad-input table: every case is refused with its field and changes nothing ---------

BAD = [
    # (method, path, body (obj | bytes), headers, status, code, field)
    ("PUT", "/v1/state", b"{not json", None, 400, "invalid", None),
    ("PUT", "/v1/state", b"[1, 2]", None, 400, "invalid", ""),
    ("PUT", "/v1/state", {"vms": []}, None, 400, "invalid", "vms"),
    ("PUT", "/v1/state", {"colour": 1}, None, 400, "invalid", "colour"),
    ("PUT", "/v1/state", {"vms": {"a": {"ips": ["300.1.1.1"]}}}, None, 400, "invalid",
     "vms.a.ips[0]"),
    ("PUT", "/v1/state", {"vms": {"a": {"mac": "nope"}}}, None, 400, "invalid", "vms.a.mac"),
    ("PUT", "/v1/state", {"policies": {"p": {"applied_to": ["vm:ghost"]}}}, None, 400,
     "invalid", "policies.p.applied_to[0]"),
    ("PUT", "/v1/state", {"settings": {"default_ingress": "maybe"}}, None, 400, "invalid",
     "settings.default_ingress"),
    ("PUT", "/v1/state", BIG, None, 413, "too_large", None),
    ("PUT", "/v1/state", b'{"vms": {}}', {"Content-Type": "text/plain"}, 415,
     "unsupported_media_type", None),
    ("PUT", "/v1/state", b'{"vms": {}}', {"Content-Type": "application/yaml"}, 415,
     "unsupported_media_type", None),
    ("PUT", "/v1/state", b'{"vms": {"\xff": {}}}', None, 400, "invalid", None),
    ("PUT", "/v1/vms/web1", {"ips": "10.0.0.1"}, None, 400, "invalid", "vms.web1.ips"),
    ("PUT", "/v1/vms/web1", {"ips": ["10.0.0.91"]}, None, 400, "invalid", "vms.web1.ips[0]"),
    ("PUT", "/v1/vms/web1", {"protected": "yes"}, None, 400, "invalid", "vms.web1.protected"),
    ("PUT", "/v1/vms/web1", {"name": "other", "ips": []}, None, 400, "invalid",
     "vms.web1.name"),
    ("PUT", "/v1/vms/Web1", {"ips": []}, None, 400, "invalid", "vms.Web1"),
    ("PUT", "/v1/vms/" + "a" * 70, {"ips": []}, None, 400, "invalid", "vms." + "a" * 70),
    ("PUT", "/v1/vms/%2e%2e", {"ips": []}, None, 400, "invalid", "vms..."),
    ("PUT", "/v1/vms/a%2fb", {"ips": []}, None, 404, "not_found", None),
    ("PUT", "/v1/groups/g", {"members": ["ghost"]}, None, 400, "invalid",
     "groups.g.members[0]"),
    ("PUT", "/v1/groups/g", {"cidrs": ["10.0.0.1/8"]}, None, 400, "invalid", "groups.g.cidrs[0]"),
    ("PUT", "/v1/policies/p", {"rules": [{**RULE, "ports": "70000"}]}, None, 400, "invalid",
     "policies.p.rules[0].ports"),
    ("PUT", "/v1/policies/p", {"rules": [{**RULE, "ports": "0"}]}, None, 400, "invalid",
     "policies.p.rules[0].ports"),
    ("PUT", "/v1/policies/p", {"rules": [{**RULE, "ports": "90-80"}]}, None, 400, "invalid",
     "policies.p.rules[0].ports"),
    ("PUT", "/v1/policies/p", {"rules": [{**RULE, "protocol": "icmp"}]}, None, 400, "invalid",
     "policies.p.rules[0].ports"),
    ("PUT", "/v1/policies/p", {"rules": [{**RULE, "direction": "in"}]}, None, 400, "invalid",
     "policies.p.rules[0].direction"),
    ("PUT", "/v1/policies/p", {"rules": [{**RULE, "action": "drop"}]}, None, 400, "invalid",
     "policies.p.rules[0].action"),
    ("PUT", "/v1/policies/p", {"rules": [{**RULE, "priority": 0}]}, None, 400, "invalid",
     "policies.p.rules[0].priority"),
    ("PUT", "/v1/policies/p", {"rules": [RULE, RULE]}, None, 400, "invalid",
     "policies.p.rules[1].id"),
    ("PUT", "/v1/policies/p", {"rules": [{**RULE, "peer": "group:ghost"}]}, None, 400,
     "invalid", "policies.p.rules[0].peer"),
    ("PUT", "/v1/policies/p", {"rules": [{**RULE, "extra": True}]}, None, 400, "invalid",
     "policies.p.rules[0].extra"),
    ("PUT", "/v1/policies/p", {"rules": [{"direction": "ingress", "action": "allow"}]}, None,
     400, "invalid", "policies.p.rules[0].id"),
    ("PUT", "/v1/policies/p", {"rules": [RULE]}, {"If-Match": "0"}, 409, "conflict",
     "If-Match"),
    ("PUT", "/v1/policies/p", {"rules": [RULE]}, {"If-Match": "abc"}, 400, "invalid",
     "If-Match"),
    ("DELETE", "/v1/vms/jump1", None, None, 409, "conflict", "groups.admins.members"),
    ("DELETE", "/v1/groups/admins", None, None, 409, "conflict",
     "policies.web-in.rules[1].peer"),
    ("DELETE", "/v1/vms/ghost", None, None, 404, "not_found", None),
    ("DELETE", "/v1/policies/ghost", None, None, 404, "not_found", None),
    ("GET", "/v1/vms/ghost", None, None, 404, "not_found", None),
    ("GET", "/v1/nothing", None, None, 404, "not_found", None),
    ("GET", "/v2/health", None, None, 404, "not_found", None),
    ("POST", "/v1/state", {}, None, 405, "method_not_allowed", None),
    ("DELETE", "/v1/state", None, None, 405, "method_not_allowed", None),
    ("PATCH", "/v1/vms/web1", {}, None, 405, "method_not_allowed", None),
    ("GET", "/v1/trace", None, None, 405, "method_not_allowed", None),
    ("POST", "/v1/trace", {"vm": "web1", "direction": "up", "peer_ip": "1.2.3.4"}, None, 400,
     "invalid", "direction"),
    ("POST", "/v1/trace", {"vm": "web1", "direction": "ingress", "peer_ip": "x"}, None, 400,
     "invalid", "peer_ip"),
    ("POST", "/v1/trace", {"vm": "nope", "direction": "ingress", "peer_ip": "1.2.3.4"}, None,
     404, "not_found", "vm"),
    ("POST", "/v1/trace", {"vm": "web1", "direction": "ingress", "peer_ip": "1.2.3.4",
                           "protocol": "tcp", "port": 0}, None, 400, "invalid", "port"),
    ("GET", "/v1/logs?limit=abc", None, None, 400, "invalid", "limit"),
    ("GET", "/v1/logs?verdict=maybe", None, None, 400, "invalid", "verdict"),
    ("GET", "/v1/logs?since=yesterday", None, None, 400, "invalid", "since"),
    # Cases only the unit tier has (cheap here, no controller per case).
    ("PUT", "/v1/state", b"", None, 400, "invalid", None),
    ("PUT", "/v1/state", b"null", None, 400, "invalid", None),
    ("PUT", "/v1/vms/web1", b'"a string"', None, 400, "invalid", "vms.web1"),
    ("PUT", "/v1/vms/-bad", {"ips": []}, None, 400, "invalid", "vms.-bad"),
    ("PUT", "/v1/vms/" + "a" * 64, {"ips": []}, None, 400, "invalid", "vms." + "a" * 64),
    ("PUT", "/v1/vms/db1", {"ips": ["10.0.0.31"], "colour": "red"}, None, 400, "invalid",
     "vms.db1.colour"),
    ("PUT", "/v1/vms/db1", {"ips": []}, {"If-Match": "2"}, 409, "conflict", "If-Match"),
    ("PUT", "/v1/vms/db1", {"ips": []}, {"If-Match": "-1"}, 400, "invalid", "If-Match"),
    ("PUT", "/v1/vms/db1", {"ips": []}, {"If-Match": 'W/"x"'}, 400, "invalid", "If-Match"),
    ("PUT", "/v1/groups/g", {"match_labels": {"tier": 1}}, None, 400, "invalid",
     "groups.g.match_labels.tier"),
    ("PUT", "/v1/state", {"settings": {"portgroups": [{"protected": True}]}}, None, 400,
     "invalid", "settings.portgroups[0]"),
    ("PUT", "/v1/state", {"settings": {"portgroups": [{"vlan": 4096}]}}, None, 400,
     "invalid", "settings.portgroups[0].vlan"),
    ("PUT", "/v1/state", {"settings": {"portgroups": [{"bridge": "br", "colour": 1}]}},
     None, 400, "invalid", "settings.portgroups[0].colour"),
    ("PUT", "/v1/state", {"settings": {"portgroups": {"bridge": "br"}}}, None, 400,
     "invalid", "settings.portgroups"),
    ("POST", "/v1/trace", b"[]", None, 400, "invalid", None),
    ("POST", "/v1/trace", {**SSH_FROM_ADMINS, "colour": 1}, None, 400, "invalid", "colour"),
    ("POST", "/v1/trace", {**SSH_FROM_ADMINS, "vm": 7}, None, 400, "invalid", "vm"),
    ("POST", "/v1/trace", {**SSH_FROM_ADMINS, "protocol": "sctp"}, None, 400, "invalid",
     "protocol"),
    ("POST", "/v1/trace", {**SSH_FROM_ADMINS, "port": True}, None, 400, "invalid", "port"),
    ("POST", "/v1/trace", {**SSH_FROM_ADMINS, "port": 65536}, None, 400, "invalid", "port"),
    ("POST", "/v1/trace", {**SSH_FROM_ADMINS, "protocol": "icmp"}, None, 400, "invalid",
     "port"),
    ("POST", "/v1/trace", {**SSH_FROM_ADMINS, "protocol": "icmp", "port": None,
                           "peer_ip": "2001:db8::1"}, None, 400, "invalid", "peer_ip"),
    ("POST", "/v1/trace", {**SSH_FROM_ADMINS, "protocol": "icmpv6", "port": None}, None, 400,
     "invalid", "peer_ip"),
    ("POST", "/v1/trace", b"{}", {"Content-Type": "text/plain"}, 415,
     "unsupported_media_type", None),
    ("GET", "/v1/logs?limit=0", None, None, 400, "invalid", "limit"),
    ("GET", "/v1/logs?limit=10001", None, None, 400, "invalid", "limit"),
    ("GET", "/v1/logs?limit=-5", None, None, 400, "invalid", "limit"),
    ("DELETE", "/v1/groups/ghost", None, None, 404, "not_found", None),
    ("GET", "/v1/policies/ghost", None, None, 404, "not_found", None),
    ("PUT", "/v1/health", {}, None, 405, "method_not_allowed", None),
    ("POST", "/v1/vms", {}, None, 405, "method_not_allowed", None),
]


def _case_id(case) -> str:
    values = case.values if hasattr(case, "values") else case
    return f"{values[0]} {values[1][:40]} -> {values[4]}"


@pytest.mark.parametrize("method,path,body,headers,status,code,field", BAD,
                         ids=[_case_id(b) for b in BAD])
def test_bad_input_is_rejected_and_changes_nothing(api, make_api, method, path, body,
                                                   headers, status, code, field):
    before = api.state_bytes()
    raw = body if isinstance(body, bytes) else None
    r = api.call(method, path, None if raw is not None else copy.deepcopy(body),
                 headers=headers, raw=raw)
    assert_error(r, status, code, field)
    assert api.state_bytes() == before
    # ...and nothing reached the database either.
    assert make_api(db=api.db).state_bytes() == before
