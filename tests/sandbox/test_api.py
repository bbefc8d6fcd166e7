"""The REST API and vgwctl against the running app (real process, real HTTP)."""

from __future__ import annotations

import json
import subprocess
import threading

import pytest

from vgw_lab.netlab import VENV_BIN, Controller, wait_until

DOC = {
    "settings": {"default_ingress": "deny", "default_egress": "allow"},
    "vms": {
        "web1": {"mac": "02:00:00:00:01:01", "ips": ["10.0.0.11"], "labels": {"tier": "web"}},
        "jump1": {"mac": "02:00:00:00:09:01", "ips": ["10.0.0.91"]},
    },
    "groups": {"web": {"match_labels": {"tier": "web"}},
               "admins": {"members": ["jump1"], "cidrs": ["192.0.2.0/24"]}},
    "policies": {"web-in": {"applied_to": ["group:web"], "rules": [
        {"id": "http", "direction": "ingress", "action": "allow", "protocol": "tcp",
         "ports": "80,443"},
        {"id": "ssh", "direction": "ingress", "action": "allow", "protocol": "tcp",
         "ports": "22", "peer": "group:admins", "log": True}]}},
}
RULE = {"id": "x", "direction": "ingress", "action": "allow", "protocol": "tcp", "ports": "80"}


@pytest.fixture(scope="module")
def shared_api(tmp_path_factory, ovs):
    """One controller for the read-only bad-input table (each case changes nothing)."""
    ctl = Controller(tmp_path_factory.mktemp("api")).start()
    try:
        assert ctl.request("PUT", "/v1/state", DOC)[0] == 200
        yield ctl
    finally:
        ctl.stop()


@pytest.fixture
def api(controller_factory, ovs):
    ctl = controller_factory().start()
    status, body = ctl.request("PUT", "/v1/state", DOC)
    assert status == 200 and body == {"revision": 1}
    return ctl


def test_every_endpoint_success_path(api):
    assert api.get("/v1/health") == (200, {"status": "ok", "revision": 1, "switches": 0})
    st = api.get("/v1/state")[1]
    assert st["revision"] == 1 and set(st["vms"]) == {"web1", "jump1"}
    assert st["policies"]["web-in"]["rules"][0]["ports"] == "80,443"
    vms = api.get("/v1/vms")[1]["vms"]
    assert vms["web1"]["zone"] >= 1 and vms["web1"]["seen"] == []
    assert api.get("/v1/vms/web1")[1]["ips"] == ["10.0.0.11"]
    g = api.get("/v1/groups/admins")[1]
    assert g["resolved"] == {"vms": ["jump1"], "addresses": ["10.0.0.91", "192.0.2.0/24"]}
    assert api.get("/v1/groups")[1]["groups"]["web"]["resolved"]["vms"] == ["web1"]
    assert api.get("/v1/policies/web-in")[1]["applies_to_vms"] == ["web1"]
    assert "web-in" in api.get("/v1/policies")[1]["policies"]
    assert api.get("/v1/switches")[1]["switches"] == []
    assert api.get("/v1/logs") == (200, {"logs": []})
    stats = api.get("/v1/stats")[1]
    assert stats["policies"]["web-in"]["rules"]["http"]["sessions"] == 0
    assert api.get("/v1/openapi.json")[1]["openapi"].startswith("3.")
    # Writes: create, replace, delete, each bumping the revision.
    s, b = api.request("PUT", "/v1/vms/db1", {"ips": ["10.0.0.31"], "labels": {"tier": "db"}})
    assert (s, b["revision"], b["created"]) == (200, 2, True)
    s, b = api.request("PUT", "/v1/groups/dbs", {"match_labels": {"tier": "db"}})
    assert (s, b["revision"]) == (200, 3)
    s, b = api.request("PUT", "/v1/policies/db-in", {"applied_to": ["group:dbs"],
                                                     "rules": [RULE]})
    assert (s, b["revision"]) == (200, 4)
    s, b = api.request("PUT", "/v1/vms/db1", {"ips": ["10.0.0.32"], "labels": {"tier": "db"}})
    assert (s, b["revision"], b["created"]) == (200, 5, False)
    assert api.get("/v1/policies/db-in")[1]["applies_to_vms"] == ["db1"]
    # GET -> PUT round trip of an object is accepted as is.
    obj = api.get("/v1/vms/db1")[1]
    assert api.request("PUT", "/v1/vms/db1", obj)[0] == 200
    assert api.request("DELETE", "/v1/policies/db-in")[1]["revision"] == 7
    assert api.request("DELETE", "/v1/groups/dbs")[0] == 200
    assert api.request("DELETE", "/v1/vms/db1")[0] == 200
    assert api.request("PUT", "/v1/vms/a..b", {"ips": []})[0] == 200  # dots are fine
    t = api.request("POST", "/v1/trace", {"vm": "web1", "direction": "ingress",
                                          "peer_ip": "192.0.2.7", "protocol": "tcp",
                                          "port": 22})[1]
    assert t["model"] == {"verdict": "allow", "policy": "web-in", "rule": "ssh", "log": True,
                          "default": False}
    t = api.request("POST", "/v1/trace", {"vm": "web1", "direction": "ingress",
                                          "peer_ip": "198.51.100.1", "protocol": "tcp",
                                          "port": 22})[1]
    assert t["model"]["verdict"] == "deny" and t["model"]["default"] is True


BIG = b'{"vms": {"a": {"labels": {"k": "' + b"x" * (1024 * 1024) + b'"}}}}'

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
]


@pytest.mark.parametrize("method,path,body,headers,status,code,field", BAD,
                         ids=[f"{b[0]} {b[1][:40]} -> {b[4]}" for b in BAD])
def test_bad_input_is_rejected_and_changes_nothing(shared_api, method, path, body, headers,
                                                   status, code, field):
    api = shared_api
    before = api.request("GET", "/v1/state", raw=None)
    raw = body if isinstance(body, bytes) else None
    s, b = api.request(method, path, None if raw is not None else body, headers=headers,
                       raw=raw)
    assert s == status, b
    assert set(b) == {"error"} and set(b["error"]) == {"code", "message", "field"}
    assert b["error"]["code"] == code and b["error"]["message"]
    if field is not None:
        assert b["error"]["field"] == field, b
    after = api.request("GET", "/v1/state", raw=None)
    assert json.dumps(after, sort_keys=True) == json.dumps(before, sort_keys=True)


def test_durable_before_the_answer(api):
    s, b = api.request("PUT", "/v1/vms/db1", {"ips": ["10.0.0.31"]})
    assert s == 200
    api.kill9()  # right after the answer
    api.start()
    assert api.get("/v1/vms/db1")[1]["ips"] == ["10.0.0.31"]
    assert api.get("/v1/health")[1]["revision"] == b["revision"]


def test_zones_survive_restart(api):
    zones = {n: v["zone"] for n, v in api.get("/v1/vms")[1]["vms"].items()}
    api.request("PUT", "/v1/vms/aaa", {"ips": ["10.0.0.5"]})
    api.kill9()
    api.start()
    after = {n: v["zone"] for n, v in api.get("/v1/vms")[1]["vms"].items()}
    assert {n: after[n] for n in zones} == zones


def test_if_match_prevents_lost_updates(api):
    rev = api.get("/v1/health")[1]["revision"]
    results = []

    def writer(n):
        results.append(api.request("PUT", f"/v1/vms/w{n}", {"ips": [f"10.9.0.{n}"]},
                                   headers={"If-Match": str(rev)})[0])
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(1, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] + [409] * 5
    vms = api.get("/v1/vms")[1]["vms"]
    assert len([n for n in vms if n[0] == "w" and n[1:].isdigit()]) == 1
    assert api.get("/v1/state")[1]["revision"] == rev + 1


def test_token_required_for_writes(controller_factory, ovs):
    ctl = controller_factory(extra_args=["--vgw-token", "s3cret"]).start()
    assert ctl.get("/v1/health")[0] == 200  # loopback reads stay open
    s, b = ctl.request("PUT", "/v1/vms/a", {"ips": []})
    assert s == 401 and b["error"]["code"] == "unauthorized"
    s, _ = ctl.request("PUT", "/v1/vms/a", {"ips": []},
                       headers={"Authorization": "Bearer wrong"})
    assert s == 401
    s, _ = ctl.request("PUT", "/v1/vms/a", {"ips": []},
                       headers={"Authorization": "Bearer s3cret"})
    assert s == 200
    assert ctl.get("/v1/state")[1]["vms"]["a"]["ips"] == []


def test_corrupt_database_stops_the_controller(controller_factory, ovs, tmp_path):
    db = tmp_path / "bad.db"
    db.write_bytes(b"this is not sqlite" * 100)
    ctl = controller_factory(db=db)
    ctl.start(wait=False)
    assert ctl.proc.wait(timeout=30) != 0
    assert "cannot use database" in ctl.log_text()
    assert db.read_bytes() == b"this is not sqlite" * 100  # untouched


def vgwctl(ctl, *args, stdin=None):
    return subprocess.run([str(VENV_BIN / "vgwctl"), "--url", ctl.url, *args],
                          capture_output=True, text=True, input=stdin, timeout=60)


def test_vgwctl(api, tmp_path):
    p = vgwctl(api, "get", "vms")
    assert p.returncode == 0 and "web1" in p.stdout and "ZONE" in p.stdout
    obj = tmp_path / "db.yaml"
    obj.write_text("kind: vm\nname: db1\nips: [10.0.0.31]\nlabels: {tier: db}\n")
    p = vgwctl(api, "apply", "-f", str(obj), "--dry-run")
    assert p.returncode == 0 and "+ vms db1 (new)" in p.stdout
    assert "db1" not in api.get("/v1/vms")[1]["vms"]
    p = vgwctl(api, "apply", "-f", str(obj))
    assert p.returncode == 0 and "revision 2" in p.stdout
    p = vgwctl(api, "apply", "-f", str(obj), "--dry-run")
    assert p.stdout.strip() == "no changes"
    whole = tmp_path / "state.json"
    changed = json.loads(json.dumps(DOC))
    changed["policies"]["web-in"]["rules"][0]["ports"] = "8080"
    whole.write_text(json.dumps(changed))
    p = vgwctl(api, "apply", "-f", str(whole), "--dry-run")
    assert p.returncode == 0
    assert "~ policy web-in" in p.stdout and '"8080"' in p.stdout
    assert "- vm db1 (removed)" in p.stdout
    p = vgwctl(api, "--json", "get", "policies", "web-in")
    assert json.loads(p.stdout)["rules"][0]["ports"] == "80,443"
    p = vgwctl(api, "trace", "web1", "ingress", "192.0.2.9", "tcp", "22")
    assert p.returncode == 0 and "model:    allow (web-in/ssh, logged)" in p.stdout
    p = vgwctl(api, "delete", "vm", "jump1")
    assert p.returncode == 1 and "409 conflict" in p.stderr
    p = vgwctl(api, "stats")
    assert p.returncode == 0 and "web-in" in p.stdout
    p = vgwctl(api, "logs")
    assert p.returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: vm\nname: x\nips: [nope]\n")
    p = vgwctl(api, "apply", "-f", str(bad))
    assert p.returncode == 1 and "vms.x.ips[0]" in p.stderr


def test_openapi_fuzz_no_5xx_no_schema_violation(api):
    p = subprocess.run(
        [str(VENV_BIN / "st"), "run", f"{api.url}/v1/openapi.json", "--url", api.url,
         "--checks", "not_a_server_error,response_schema_conformance,"
         "status_code_conformance,content_type_conformance",
         "--max-examples", "25", "--seed", "1", "--no-color"],
        capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-2000:]
    wait_until(lambda: api.get("/v1/health")[0] == 200, what="API alive after fuzzing")

