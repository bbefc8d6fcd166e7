"""The REST API and vgwctl against the running app (real process, real HTTP).

Only what needs the process is here: Ryu's WSGI adapter, the app as backend, the token
option, kill -9, concurrent writers, a corrupt database, vgwctl and the fuzz. The
handlers' behaviour (every endpoint, the bad-input table, If-Match, token rules) is
tested on the Api itself in tests/unit/test_api.py.
"""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.error
import urllib.request

import pytest

from tests.api_doc import BIG, DOC
from vgw_lab.netlab import VENV_BIN, wait_until


@pytest.fixture
def api(controller_factory, ovs):
    ctl = controller_factory().start()
    status, body = ctl.request("PUT", "/v1/state", DOC)
    assert status == 200 and body == {"revision": 1}
    return ctl


def _raw(ctl, method, path, data=None, headers=None):
    """(status, headers, body bytes): what the WSGI adapter really sends."""
    req = urllib.request.Request(ctl.url + path, data=data, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_http_adapter(api):
    """What only Ryu's WSGI layer does: headers, query strings, %-decoding, body size."""
    s, h, body = _raw(api, "GET", "/v1/state")
    assert s == 200 and h["ETag"] == '"1"'
    assert h["Content-Type"].startswith("application/json")
    assert json.loads(body)["revision"] == 1
    # If-Match and Content-Type arrive as headers; the path is %-decoded.
    s, b = api.request("PUT", "/v1/vms/db%31", {"ips": []}, headers={"If-Match": '"1"'})
    assert (s, b["name"], b["revision"]) == (200, "db1", 2)
    assert api.request("PUT", "/v1/vms/db2", {"ips": []}, headers={"If-Match": "1"})[0] == 409
    assert api.request("PUT", "/v1/vms/a%2fb", {"ips": []})[0] == 404
    assert api.request("PUT", "/v1/state", raw=b"{}",
                       headers={"Content-Type": "text/plain"})[0] == 415
    # Query strings reach the handler.
    s, b = api.get("/v1/logs?limit=abc")
    assert s == 400 and b["error"]["field"] == "limit"
    # Over 1 MiB is refused by its Content-Length before it is read.
    s, b = api.request("PUT", "/v1/state", raw=BIG)
    assert s == 413 and b["error"]["code"] == "too_large"
    # Errors are JSON too, for paths Ryu would otherwise answer itself.
    s, h, body = _raw(api, "GET", "/nothing")
    assert s == 404 and json.loads(body)["error"]["code"] == "not_found"
    assert api.get("/v1/state")[1]["revision"] == 2


def test_real_backend_reads(api):
    """The app as the API's backend: no switch connected, empty log, stats of the rules."""
    status, health = api.get("/v1/health")
    assert status == 200
    db = health.pop("database")
    assert health == {"status": "ok", "revision": 1, "switches": 0}
    # The controller runs its policy database itself, on a socket beside --vgw-db.
    assert db["connected"] is True and db["revision"] == 1
    assert db["remote"] == db["member"] == f"unix:{api.db}.sock"
    assert api.get("/v1/switches")[1]["switches"] == []
    assert api.get("/v1/logs") == (200, {"logs": [], "revision": 1})
    stats = api.get("/v1/stats")[1]
    assert stats["policies"]["web-in"]["rules"]["http"]["sessions"] == 0
    s, t = api.request("POST", "/v1/trace", {"vm": "web1", "direction": "ingress",
                                             "peer_ip": "192.0.2.7", "protocol": "tcp",
                                             "port": 22})
    assert s == 200 and t["model"]["rule"] == "ssh"
    assert t["datapath"] is None          # web1 is on no switch


def test_token_option_is_wired(controller_factory, ovs):
    ctl = controller_factory(extra_args=["--vgw-token", "s3cret"]).start()
    assert ctl.get("/v1/health")[0] == 200  # loopback reads stay open
    s, b = ctl.request("PUT", "/v1/vms/a", {"ips": []})
    assert s == 401 and b["error"]["code"] == "unauthorized"
    s, _ = ctl.request("PUT", "/v1/vms/a", {"ips": []},
                       headers={"Authorization": "Bearer s3cret"})
    assert s == 200
    assert ctl.get("/v1/state")[1]["vms"]["a"]["ips"] == []


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


def test_corrupt_database_stops_the_controller(controller_factory, ovs, tmp_path):
    db = tmp_path / "bad.db"
    db.write_bytes(b"this is not a database" * 100)
    ctl = controller_factory(db=db)
    ctl.start(wait=False)
    assert ctl.proc.wait(timeout=30) != 0
    assert "cannot use the policy database" in ctl.log_text()
    assert db.read_bytes() == b"this is not a database" * 100  # untouched


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

