"""The /v1 handlers on a real Engine and an in-memory store, without Ryu, HTTP or a switch.

Real HTTP through Ryu's WSGI, kill -9, concurrent writers over HTTP, the fuzz and vgwctl
stay in tests/sandbox/test_api.py.
"""

from __future__ import annotations

import ipaddress
import json

import pytest

from tests.api_doc import DOC, RULE, SSH_FROM_ADMINS, assert_error
from vgw_ryu.runtime.ports import Iface

TOKEN = "s3cret"


# --- reads ------------------------------------------------------------------------------
def test_health(api):
    assert api.get("/v1/health") == (200, {"status": "ok", "revision": 1, "switches": 0})
    api.backend.switches = 3
    assert api.get("/v1/health")[1]["switches"] == 3


def test_health_of_an_empty_store(make_api):
    assert make_api().get("/v1/health") == (200, {"status": "ok", "revision": 0,
                                                  "switches": 0})


def test_get_state_has_defaults_revision_and_etag(api):
    r = api.call("GET", "/v1/state")
    assert r.status == 200 and r.headers["ETag"] == '"1"'
    st = r.body
    assert st["revision"] == 1 and set(st["vms"]) == {"web1", "jump1"}
    assert st["policies"]["web-in"]["rules"][0]["ports"] == "80,443"
    assert st["policies"]["web-in"]["rules"][0]["peer"] == "any"   # default filled in
    assert "protected" not in st["vms"]["jump1"]   # only what the VM itself says
    assert json.loads(r.encoded()) == st


def test_list_and_get_vms(api):
    s, body = api.get("/v1/vms")
    assert s == 200 and body["revision"] == 1 and set(body["vms"]) == {"web1", "jump1"}
    # Zones are numbered in name order from 1: jump1 then web1.
    assert body["vms"]["jump1"]["zone"] == 1 and body["vms"]["web1"]["zone"] == 2
    assert body["vms"]["web1"]["seen"] == []
    s, vm = api.get("/v1/vms/web1")
    assert s == 200 and vm["name"] == "web1" and vm["ips"] == ["10.0.0.11"]
    assert vm["labels"] == {"tier": "web"} and vm["revision"] == 1


def test_list_with_trailing_slash(api):
    assert set(api.get("/v1/vms/")[1]["vms"]) == {"web1", "jump1"}


def test_unprotected_vm_has_no_zone(api):
    assert api.request("PUT", "/v1/vms/open1", {"ips": ["10.0.0.5"], "protected": False})[0] \
        == 200
    assert api.get("/v1/vms/open1")[1]["zone"] is None


def test_groups_resolve_members_and_addresses(api):
    s, g = api.get("/v1/groups/admins")
    assert s == 200
    assert g["resolved"] == {"vms": ["jump1"], "addresses": ["10.0.0.91", "192.0.2.0/24"]}
    groups = api.get("/v1/groups")[1]["groups"]
    assert groups["web"]["resolved"] == {"vms": ["web1"], "addresses": ["10.0.0.11"]}


def test_policies_show_the_vms_they_apply_to(api):
    assert api.get("/v1/policies/web-in")[1]["applies_to_vms"] == ["web1"]
    pols = api.get("/v1/policies")[1]
    assert set(pols["policies"]) == {"web-in"} and pols["revision"] == 1


def test_openapi_document(api):
    s, body = api.get("/v1/openapi.json")
    assert s == 200 and body["openapi"].startswith("3.")
    assert "/v1/state" in body["paths"]


def test_switches_empty_then_seen(api):
    assert api.get("/v1/switches") == (200, {"switches": [], "revision": 1})
    api.engine.refresh_facts(0xAB, [Iface("tap-web1", 5, "", {"vm-id": "web1"}),
                                    Iface("eth0", 1, "", {"vgw-role": "uplink"})])
    sw = api.get("/v1/switches")[1]["switches"]
    assert [s["dpid"] for s in sw] == ["00000000000000ab"]
    assert sw[0]["vm_ports"] == [{"ofport": 5, "name": "tap-web1", "kind": "vm",
                                  "vm": "web1"}]
    assert [p["name"] for p in sw[0]["uplinks"]] == ["eth0"]
    seen = api.get("/v1/vms/web1")[1]["seen"]
    assert seen == [{"switch": "00000000000000ab", "ofport": 5, "port": "tap-web1",
                     "zone": 2}]


def test_stats_come_from_the_backend(api):
    api.backend.stats_body = {"policies": {"web-in": {"rules": {"http": {"sessions": 4}}}}}
    assert api.get("/v1/stats") == (200, {**api.backend.stats_body, "revision": 1})


def test_logs_pass_filters_to_the_backend(api):
    assert api.get("/v1/logs") == (200, {"logs": [], "revision": 1})
    assert api.backend.log_queries[-1] == {"vm": None, "verdict": None, "since": None,
                                           "limit": 100}
    api.backend.records = [{"vm": "web1", "verdict": "deny", "count": 2}]
    s, body = api.get("/v1/logs?vm=web1&verdict=deny&since=2024-05-01T10:00:00Z&limit=5")
    assert s == 200 and body == {"logs": api.backend.records, "revision": 1}
    assert api.backend.log_queries[-1] == {"vm": "web1", "verdict": "deny",
                                           "since": "2024-05-01T10:00:00Z", "limit": 5}


@pytest.mark.parametrize("since", ["1714557600", "1714557600.25", "2024-05-01T10:00:00",
                                   "2024-05-01T10:00:00+02:00"])
def test_logs_accept_unix_and_iso_since(api, since):
    assert api.get(f"/v1/logs?since={since.replace('+', '%2B')}")[0] == 200
    assert api.backend.log_queries[-1]["since"] == since


def test_backend_failure_is_a_json_500(api):
    api.backend.stats_error = RuntimeError("switch went away")
    r = api.call("GET", "/v1/stats")
    assert_error(r, 500, "internal")
    assert "switch went away" in r.body["error"]["message"]


# --- writes ------------------------------------------------------------------------------
def test_create_replace_delete_bump_the_revision(api):
    s, b = api.request("PUT", "/v1/vms/db1", {"ips": ["10.0.0.31"], "labels": {"tier": "db"}})
    assert (s, b) == (200, {"revision": 2, "created": True, "name": "db1"})
    s, b = api.request("PUT", "/v1/groups/dbs", {"match_labels": {"tier": "db"}})
    assert (s, b["revision"], b["created"]) == (200, 3, True)
    s, b = api.request("PUT", "/v1/policies/db-in", {"applied_to": ["group:dbs"],
                                                     "rules": [RULE]})
    assert (s, b["revision"]) == (200, 4)
    s, b = api.request("PUT", "/v1/vms/db1", {"ips": ["10.0.0.32"], "labels": {"tier": "db"}})
    assert (s, b["revision"], b["created"]) == (200, 5, False)
    assert api.get("/v1/vms/db1")[1]["ips"] == ["10.0.0.32"]
    assert api.get("/v1/policies/db-in")[1]["applies_to_vms"] == ["db1"]
    assert api.request("DELETE", "/v1/policies/db-in") == (200, {"revision": 6,
                                                               "deleted": "db-in"})
    assert api.request("DELETE", "/v1/groups/dbs")[1]["revision"] == 7
    assert api.request("DELETE", "/v1/vms/db1")[1]["revision"] == 8
    st = api.get("/v1/state")[1]
    assert "db1" not in st["vms"] and "dbs" not in st["groups"] and st["revision"] == 8


EDITS = {"/v1/vms/web1": {"labels": {"tier": "web", "edited": "yes"}},
         "/v1/groups/admins": {"cidrs": ["198.51.100.0/24"]},
         "/v1/policies/web-in": {"applied_to": ["group:web", "vm:jump1"]}}
HIDDEN = ("revision", "resolved", "applies_to_vms")   # recomputed by the server


@pytest.mark.parametrize("path", sorted(EDITS))
def test_get_then_put_an_object_round_trips(api, path):
    obj = api.get(path)[1]   # with read-only fields: name, revision, zone, seen, ...
    # Put back unchanged: nothing written, the same revision, "changed": false.
    assert api.request("PUT", path, obj) == (200, {"revision": 1, "created": False,
                                                  "name": obj["name"], "changed": False})
    edited = {**obj, **EDITS[path]}
    s, b = api.request("PUT", path, edited)
    assert (s, b) == (200, {"revision": 2, "created": False, "name": obj["name"]})
    after = api.get(path)[1]
    assert after["revision"] == 2
    assert {k: v for k, v in after.items() if k not in HIDDEN} == \
        {k: v for k, v in edited.items() if k not in HIDDEN}


def test_get_then_put_state_round_trips(api):
    doc = api.get("/v1/state")[1]     # carries "revision" 1: the write is conditional on it
    assert api.request("PUT", "/v1/state", doc) == (200, {"revision": 1, "changed": False})
    edited = {**doc, "settings": {**doc["settings"], "default_egress": "deny"}}
    assert api.request("PUT", "/v1/state", edited) == (200, {"revision": 2})
    after = api.get("/v1/state")[1]
    assert {**after, "revision": 1} == edited


def test_put_state_replaces_everything(api):
    assert api.request("PUT", "/v1/state", {"vms": {"solo": {"ips": ["10.1.0.1"]}}})[0] == 200
    st = api.get("/v1/state")[1]
    assert set(st["vms"]) == {"solo"} and st["groups"] == {} and st["policies"] == {}


def test_names_with_dots_and_dashes_are_fine(api):
    assert api.request("PUT", "/v1/vms/a..b", {"ips": []})[0] == 200
    assert api.request("PUT", "/v1/vms/a-b_c.d", {"ips": []})[0] == 200
    assert {"a..b", "a-b_c.d"} <= set(api.get("/v1/vms")[1]["vms"])


def test_label_change_moves_a_vm_between_groups(api):
    assert api.get("/v1/policies/web-in")[1]["applies_to_vms"] == ["web1"]
    assert api.request("PUT", "/v1/vms/web1", {"mac": "02:00:00:00:01:01",
                                               "ips": ["10.0.0.11"],
                                               "labels": {"tier": "app"}})[0] == 200
    assert api.get("/v1/policies/web-in")[1]["applies_to_vms"] == []
    assert api.get("/v1/groups/web")[1]["resolved"]["vms"] == []


def test_delete_after_references_are_gone(api):
    assert_error(api.call("DELETE", "/v1/vms/jump1"), 409, "conflict", "groups.admins.members")
    assert api.request("PUT", "/v1/groups/admins", {"cidrs": ["192.0.2.0/24"]})[0] == 200
    assert api.request("DELETE", "/v1/vms/jump1")[0] == 200
    assert "jump1" not in api.get("/v1/vms")[1]["vms"]


def test_delete_of_policy_referenced_vm_names_the_policy(api):
    assert api.request("PUT", "/v1/policies/p2", {"applied_to": ["vm:web1"]})[0] == 200
    r = api.call("DELETE", "/v1/vms/web1")
    assert_error(r, 409, "conflict", "policies.p2.applied_to")


# --- trace -------------------------------------------------------------------------------
def test_trace_allow_by_logged_rule(api):
    s, t = api.request("POST", "/v1/trace", SSH_FROM_ADMINS)
    assert s == 200
    assert t == {"vm": "web1", "direction": "ingress", "peer_ip": "192.0.2.7",
                 "protocol": "tcp", "port": 22, "datapath": None,
                 "model": {"verdict": "allow", "policy": "web-in", "rule": "ssh",
                           "log": True, "default": False}}
    assert api.backend.traces == [("web1", "ingress", ipaddress.ip_address("192.0.2.7"),
                                   "tcp", 22)]


def test_trace_default_deny(api):
    t = api.request("POST", "/v1/trace", {**SSH_FROM_ADMINS, "peer_ip": "198.51.100.1"})[1]
    assert t["model"]["verdict"] == "deny" and t["model"]["default"] is True
    assert t["model"]["rule"] is None


def test_trace_default_egress_allow_and_icmp(api):
    t = api.request("POST", "/v1/trace", {"vm": "web1", "direction": "egress",
                                          "peer_ip": "203.0.113.1", "protocol": "icmp"})[1]
    assert t["port"] is None
    assert t["model"]["verdict"] == "allow" and t["model"]["default"] is True


def test_trace_of_unprotected_vm(api):
    api.request("PUT", "/v1/vms/open1", {"ips": ["10.0.0.5"], "protected": False})
    t = api.request("POST", "/v1/trace", {**SSH_FROM_ADMINS, "vm": "open1"})[1]
    assert t["model"]["verdict"] == "allow" and t["model"]["unprotected"] is True


def test_trace_datapath_from_backend_and_its_errors(api):
    api.backend.trace_result = {"verdict": "allow", "tables": [0, 40]}
    assert api.request("POST", "/v1/trace", SSH_FROM_ADMINS)[1]["datapath"] == \
        {"verdict": "allow", "tables": [0, 40]}
    api.backend.trace_error = RuntimeError("ofproto/trace failed")
    s, t = api.request("POST", "/v1/trace", SSH_FROM_ADMINS)
    assert s == 200 and t["datapath"] == {"error": "ofproto/trace failed"}
    assert t["model"]["verdict"] == "allow"


def test_trace_ipv6_peer(api):
    api.request("PUT", "/v1/vms/web1", {"mac": "02:00:00:00:01:01",
                                        "ips": ["10.0.0.11", "fd00::11"],
                                        "labels": {"tier": "web"}})
    s, t = api.request("POST", "/v1/trace", {**SSH_FROM_ADMINS, "peer_ip": "2001:db8::1",
                                             "port": 443})
    assert s == 200 and t["peer_ip"] == "2001:db8::1"
    assert t["model"]["rule"] == "http"


# --- If-Match -----------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["1", '"1"', 'W/"1"', " 1 "])
def test_if_match_current_revision_accepted(api, value):
    s, b = api.request("PUT", "/v1/vms/db1", {"ips": []}, headers={"If-Match": value})
    assert (s, b["revision"]) == (200, 2)


def test_if_match_stale_revision_is_409_and_changes_nothing(api):
    assert api.request("PUT", "/v1/vms/a", {"ips": []}, headers={"If-Match": "1"})[0] == 200
    before = api.state_bytes()
    for method, path, body in (("PUT", "/v1/vms/b", {"ips": []}),
                               ("PUT", "/v1/state", DOC),
                               ("DELETE", "/v1/vms/a", None)):
        r = api.call(method, path, body, headers={"If-Match": "1"})
        assert_error(r, 409, "conflict", "If-Match")
        assert "current revision is 2" in r.body["error"]["message"]
    assert api.state_bytes() == before


def test_if_match_on_put_state(api):
    assert api.request("PUT", "/v1/state", {**DOC, "vms": {}, "policies": {}, "groups": {}},
                       headers={"If-Match": '"1"'}) == (200, {"revision": 2})


# --- token --------------------------------------------------------------------------------
@pytest.fixture
def locked(make_api):
    c = make_api(token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert c.request("PUT", "/v1/state", DOC, headers=auth) == (200, {"revision": 1})
    return c


@pytest.mark.parametrize("addr", ["127.0.0.1", "127.3.4.5", "::1"])
def test_token_loopback_reads_stay_open(locked, addr):
    assert locked.get("/v1/health", remote_addr=addr)[0] == 200
    assert locked.get("/v1/state", remote_addr=addr)[1]["revision"] == 1


@pytest.mark.parametrize("addr", ["192.0.2.10", "2001:db8::10", "", "not-an-ip"])
def test_token_remote_reads_need_it(locked, addr):
    assert_error(locked.call("GET", "/v1/state", remote_addr=addr), 401, "unauthorized")
    assert locked.get("/v1/state", remote_addr=addr,
                      headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200


@pytest.mark.parametrize("auth", [None, "Bearer wrong", "Bearer", f"Basic {TOKEN}", TOKEN,
                                  f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}"])
def test_token_writes_need_it_even_from_loopback(locked, auth):
    before = locked.state_bytes()
    headers = {"Authorization": auth} if auth is not None else {}
    for method, path, body in (("PUT", "/v1/vms/a", {"ips": []}), ("DELETE", "/v1/vms/web1",
                                                                   None),
                               ("PUT", "/v1/state", {})):
        assert_error(locked.call(method, path, body, headers=headers), 401, "unauthorized")
    assert locked.state_bytes() == before


@pytest.mark.parametrize("auth", [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER  {TOKEN} "])
def test_token_right_one_writes(locked, auth):
    s, b = locked.request("PUT", "/v1/vms/a", {"ips": []}, headers={"Authorization": auth})
    assert (s, b["revision"]) == (200, 2)
    assert locked.get("/v1/state")[1]["vms"]["a"]["ips"] == []


def test_no_token_configured_means_open(api):
    assert api.request("PUT", "/v1/vms/a", {"ips": []}, remote_addr="192.0.2.10")[0] == 200


# --- routing and bodies -------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/v1", "/v1/", "/v1/vms/web1/extra", "/health",
                                  "/v1/Health", "/v1/vm/web1"])
def test_unknown_paths_are_json_404(api, path):
    r = api.call("GET", path)
    assert_error(r, 404, "not_found")
    assert json.loads(r.encoded()) == r.body


def test_405_lists_allowed_methods(api):
    r = api.call("PATCH", "/v1/vms/web1", {})
    assert_error(r, 405, "method_not_allowed")
    assert "allowed: DELETE, GET, PUT" in r.body["error"]["message"]


@pytest.mark.parametrize("ctype", ["application/json; charset=utf-8", "Application/JSON"])
def test_json_content_type_variants_accepted(api, ctype):
    assert api.request("PUT", "/v1/vms/a", {"ips": []}, headers={"Content-Type": ctype})[0] \
        == 200


def test_missing_content_type_is_415(api):
    r = api.call("PUT", "/v1/vms/a", raw=b"{}", headers={"Content-Type": ""})
    assert_error(r, 415, "unsupported_media_type")
    assert "not none" in r.body["error"]["message"]


def test_body_of_exactly_one_mib_is_accepted(api):
    body = b'{"vms": {"a": {"ips": []}}}'
    body = body + b" " * (1024 * 1024 - len(body))
    assert api.request("PUT", "/v1/state", raw=body) == (200, {"revision": 2})
    assert_error(api.call("PUT", "/v1/state", raw=body + b" "), 413, "too_large")


# --- durability -----------------------------------------------------------------------------
def test_answered_write_is_in_the_database(api, make_api):
    s, b = api.request("PUT", "/v1/vms/db1", {"ips": ["10.0.0.31"]})
    assert s == 200
    again = make_api(db=api.db)   # a new Engine and Store on the same file
    assert again.get("/v1/vms/db1")[1]["ips"] == ["10.0.0.31"]
    assert again.get("/v1/health")[1]["revision"] == b["revision"]
    assert again.state_bytes() == api.state_bytes()


def test_zones_survive_a_new_engine(api, make_api):
    api.request("PUT", "/v1/vms/aaa", {"ips": ["10.0.0.5"]})   # sorts first; zone 3
    zones = {n: v["zone"] for n, v in api.get("/v1/vms")[1]["vms"].items()}
    assert zones == {"jump1": 1, "web1": 2, "aaa": 3}
    again = make_api(db=api.db)
    assert {n: v["zone"] for n, v in again.get("/v1/vms")[1]["vms"].items()} == zones


def test_rejected_write_is_not_in_the_database(api, make_api):
    assert api.request("PUT", "/v1/vms/x", {"ips": ["nope"]})[0] == 400
    assert make_api(db=api.db).state_bytes() == api.state_bytes()
