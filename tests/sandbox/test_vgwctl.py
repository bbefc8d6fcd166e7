"""vgwctl as a user runs it: the console script in a subprocess against a real controller.

Its pure parts (parser, file documents, tables, --since) are tested in tests/unit/
test_cli.py and test_cli_input.py; here each behaviour goes through real HTTP.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.error
import urllib.request

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.api_doc import DOC
from vgw_lab.netlab import VENV_BIN, add_internal_port, sh, wait_until
from vgw_ryu.runtime.metrics import CONTENT_TYPE

TOKEN = "s3cret"


@pytest.fixture
def api(controller_factory, ovs):
    ctl = controller_factory().start()
    assert ctl.request("PUT", "/v1/state", DOC) == (200, {"revision": 1})
    return ctl


def vgwctl(ctl, *args, token=None, **kw):
    """Run vgwctl with VGW_URL (and VGW_TOKEN when given) in a clean environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VGW_")}
    env["VGW_URL"] = ctl.url
    if token is not None:
        env["VGW_TOKEN"] = token
    kw.setdefault("capture_output", True)
    return subprocess.run([str(VENV_BIN / "vgwctl"), *args], text=True, env=env,
                          timeout=60, **kw)


def revision(ctl) -> int:
    return ctl.get("/v1/health")[1]["revision"]


def test_get_and_delete_take_singular_and_plural(api):
    for word in ("vm", "vms"):
        p = vgwctl(api, "get", word)
        assert p.returncode == 0 and "web1" in p.stdout and "ZONE" in p.stdout, p.stderr
        p = vgwctl(api, "get", word, "web1")
        assert p.returncode == 0 and yaml.safe_load(p.stdout)["name"] == "web1"
    for word in ("group", "groups", "policy", "policies"):
        assert vgwctl(api, "get", word).returncode == 0
    for n, word in enumerate(("vm", "vms"), 1):
        assert api.request("PUT", f"/v1/vms/gone{n}", {"ips": []})[0] == 200
        p = vgwctl(api, "delete", word, f"gone{n}")
        assert p.returncode == 0 and f"deleted vm gone{n}" in p.stdout, p.stderr
    for word in ("policy", "policies"):
        assert api.request("PUT", "/v1/policies/tmp", {"applied_to": []})[0] == 200
        assert vgwctl(api, "delete", word, "tmp").returncode == 0
    vms = api.get("/v1/vms")[1]["vms"]
    assert "gone1" not in vms and "gone2" not in vms
    assert "tmp" not in api.get("/v1/policies")[1]["policies"]


def test_json_after_the_command(api):
    p = vgwctl(api, "get", "policies", "web-in", "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["rules"][0]["ports"] == "80,443"
    p = vgwctl(api, "stats", "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["revision"] == 1


def test_get_state(api):
    p = vgwctl(api, "get", "state")
    assert p.returncode == 0
    doc = yaml.safe_load(p.stdout)
    assert doc["revision"] == 1 and set(doc["vms"]) == {"web1", "jump1"}
    p = vgwctl(api, "get", "state", "--json")
    assert json.loads(p.stdout)["policies"]["web-in"]["applied_to"] == ["group:web"]


def test_get_switches_by_dpid_and_bridge_name(api, bridges):
    br = bridges(api)
    wait_until(lambda: api.get("/v1/switches")[1]["switches"], timeout=20,
               what="the bridge connects")
    sw = api.get("/v1/switches")[1]["switches"][0]
    p = vgwctl(api, "get", "switches", sw["dpid"].lstrip("0"))
    assert p.returncode == 0, p.stderr
    assert yaml.safe_load(p.stdout)["dpid"] == sw["dpid"]
    wait_until(lambda: api.get("/v1/switches")[1]["switches"][0].get("bridge") == br.name,
               timeout=20, what="the switch view names the bridge")
    p = vgwctl(api, "get", "switch", br.name, "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["bridge"] == br.name
    p = vgwctl(api, "get", "switches")
    assert br.name in p.stdout and "BRIDGE" in p.stdout
    p = vgwctl(api, "get", "switches", "no-such-bridge")
    assert p.returncode == 1 and "no switch 'no-such-bridge'" in p.stderr


def test_multi_document_apply(api, tmp_path):
    f = tmp_path / "multi.yaml"
    f.write_text("kind: vm\nname: db1\nips: [10.0.0.31]\n---\n"
                 "- {kind: group, name: dbs, members: [db1]}\n"
                 "- {kind: policy, name: db-in, applied_to: ['group:dbs']}\n---\n")
    p = vgwctl(api, "apply", "-f", str(f))
    assert p.returncode == 0 and "applied 3 object(s)" in p.stdout, p.stderr
    assert api.get("/v1/groups/dbs")[1]["resolved"]["vms"] == ["db1"]
    two = tmp_path / "two.yaml"
    two.write_text(yaml.safe_dump(DOC) + "---\n" + yaml.safe_dump(DOC))
    before = revision(api)
    p = vgwctl(api, "apply", "-f", str(two))
    assert p.returncode == 1 and "document 2: a second whole state document" in p.stderr
    assert revision(api) == before


def test_top_level_typo_names_the_field(api, tmp_path):
    f = tmp_path / "typo.yaml"
    f.write_text("polices:\n  web-in: {applied_to: []}\n")
    p = vgwctl(api, "apply", "-f", str(f))
    assert p.returncode == 1
    assert "polices: unknown field (allowed: settings, vms, groups, policies" in p.stderr
    assert revision(api) == 1


def test_logs_since_relative(api):
    p = vgwctl(api, "logs", "--since", "5m")
    assert (p.returncode, p.stderr) == (0, "")
    p = vgwctl(api, "logs", "--since", "5 minutes")
    assert p.returncode == 1 and "--since" in p.stderr


def test_closed_stdout_exits_quietly(api):
    r, w = os.pipe()
    os.close(r)          # the reader is gone before vgwctl writes: like `| head` ending
    try:
        p = vgwctl(api, "get", "vms", stdout=w, stderr=subprocess.PIPE, capture_output=False)
    finally:
        os.close(w)
    assert p.returncode == 141
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr


def test_trace_on_loopback_needs_no_token(controller_factory, ovs):
    ctl = controller_factory(extra_args=["--vgw-token", TOKEN]).start()
    assert ctl.request("PUT", "/v1/state", DOC,
                       headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    p = vgwctl(ctl, "trace", "web1", "ingress", "192.0.2.9", "tcp", "22")
    assert p.returncode == 0, p.stderr
    assert "model:    allow (web-in/ssh, logged)" in p.stdout
    p = vgwctl(ctl, "delete", "policy", "web-in")        # a write still needs it
    assert p.returncode == 1 and "401 unauthorized" in p.stderr
    assert vgwctl(ctl, "delete", "policy", "web-in", token=TOKEN).returncode == 0


def test_identical_reapply_changes_nothing(api, tmp_path):
    f = tmp_path / "state.yaml"
    f.write_text(yaml.safe_dump(DOC))
    p = vgwctl(api, "apply", "-f", str(f), "--dry-run")
    assert p.stdout.strip() == "no changes"
    p = vgwctl(api, "apply", "-f", str(f))
    assert p.returncode == 0 and p.stdout.strip() == "no changes: revision 1"
    obj = tmp_path / "web1.yaml"
    obj.write_text("kind: vm\nname: web1\n" + yaml.safe_dump(DOC["vms"]["web1"]))
    p = vgwctl(api, "apply", "-f", str(obj))
    assert p.returncode == 0 and p.stdout.strip() == "no changes: revision 1"
    assert revision(api) == 1
    s, h = api.request("GET", "/v1/vms/web1")
    assert s == 200 and h["revision"] == 1


# --- metrics and connections ---------------------------------------------------------------
def _raw_get(ctl, path):
    """(status, headers, body bytes) as the WSGI adapter sends them."""
    try:
        with urllib.request.urlopen(ctl.url + path, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def _samples(text: str) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_metrics_endpoint_and_vgwctl_metrics(api):
    for path in ("/metrics", "/v1/metrics"):
        s, h, body = _raw_get(api, path)
        assert s == 200, body[:500]
        assert h["Content-Type"] == CONTENT_TYPE
        got = _samples(body.decode())
        assert got[("vgw_state_revision", ())] == 1
        assert got[("vgw_switches_connected", ())] == 0
    # The GETs above were counted by the REST requests metric.
    got = _samples(_raw_get(api, "/metrics")[2].decode())
    assert got[("vgw_rest_requests_total", (("method", "GET"), ("status", "200")))] >= 2
    p = vgwctl(api, "metrics")
    assert p.returncode == 0, p.stderr
    assert _samples(p.stdout)[("vgw_state_revision", ())] == 1
    p = vgwctl(api, "metrics", "vgw_state_revision", "--json")
    assert p.returncode == 0, p.stderr
    assert [(f["name"], f["samples"][0]["value"]) for f in json.loads(p.stdout)] == [
        ("vgw_state_revision", 1.0)]
    assert api.request("PUT", "/v1/vms/db9", {"ips": []})[0] == 200
    assert _samples(vgwctl(api, "metrics").stdout)[("vgw_state_revision", ())] == 2


def test_conns_errors_through_the_adapter(api):
    assert api.request("PUT", "/v1/vms/open1", {"ips": [], "protected": False})[0] == 200
    s, b = api.get("/v1/vms/web1/connections?port=0")
    assert s == 400 and b["error"]["field"] == "port"
    s, b = api.get("/v1/vms/web1/connections?peer=")
    assert s == 400 and b["error"]["field"] == "peer"
    p = vgwctl(api, "conns", "nope")
    assert p.returncode == 1 and "404 not_found" in p.stderr
    p = vgwctl(api, "conns", "open1")
    assert p.returncode == 1 and "409 unprotected" in p.stderr
    p = vgwctl(api, "conns", "web1")                  # on no switch: nothing to read
    assert p.returncode == 1 and "503 unavailable" in p.stderr


def test_conns_of_a_vm_on_a_local_switch(api, bridges):
    br = bridges(api)
    port = add_internal_port(br, 5)
    sh("ovs-vsctl", "set", "Interface", port, "external_ids:vm-id=web1")
    wait_until(lambda: api.get("/v1/vms/web1")[1]["seen"], timeout=20,
               what="web1 seen on the bridge")
    s, b = api.get("/v1/vms/web1/connections?limit=10")
    assert s == 200, b
    assert (b["vm"], b["revision"]) == ("web1", 1) and isinstance(b["zone"], int)
    # The zone may hold entries of other tests' bridges on this host's shared userspace
    # datapath: check the shape and the limit, not emptiness.
    assert len(b["connections"]) <= 10 and b["truncated"] == (b["total"] > 10)
    for c in b["connections"]:
        assert {"protocol", "direction", "src", "dst", "state", "blocked", "rule"} <= set(c)
    p = vgwctl(api, "conns", "web1", "--limit", "10")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["PROTO", "DIR", "SRC", "SPORT", "DST", "DPORT", "STATE",
                                "BLOCKED", "RULE"]
    assert re.fullmatch(r"\d+ connections?|\d+ of \d+ connections shown \(raise --limit "
                        r"for more\)", lines[-1]), lines[-1]
    assert len(lines) <= 12


# --- safe changes: impact preview and connectivity assertions --------------------------------
SSH_ASSERTION = {"from": "jump1", "to": "web1", "protocol": "tcp", "port": 22,
                 "verdict": "allow"}


def _guarded(api, tmp_path):
    """The controller holds DOC plus an assertion that holds; returns a state file that
    breaks it (web-in without its ssh rule) and that revision."""
    guarded = {**DOC, "expectations": [SSH_ASSERTION]}
    s, b = api.request("PUT", "/v1/state", guarded)
    assert s == 200, b
    broken = json.loads(json.dumps(guarded))
    broken["policies"]["web-in"]["rules"] = broken["policies"]["web-in"]["rules"][:1]
    f = tmp_path / "broken.yaml"
    f.write_text(yaml.safe_dump(broken))
    return f, b["revision"]


def test_apply_impact_previews_and_writes_nothing(api, tmp_path):
    f, rev = _guarded(api, tmp_path)
    before = api.get("/v1/state")[1]
    p = vgwctl(api, "apply", "-f", str(f), "--impact", stdin=subprocess.DEVNULL)
    assert p.returncode == 1, p.stdout + p.stderr          # it would be refused
    lines = p.stdout.splitlines()
    assert lines[0].startswith("impact: "), p.stdout       # a count, or why it is unknown
    assert "assertions: 1 of 1 would break:" in p.stdout
    assert "jump1 -> web1 tcp/22: expected allow, got deny (web1 ingress: default)" \
        in p.stdout
    assert api.get("/v1/state")[1] == before and revision(api) == rev
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump({**DOC, "expectations": [SSH_ASSERTION],
                                  "vms": {**DOC["vms"], "db1": {"ips": ["10.0.0.31"]}}}))
    p = vgwctl(api, "apply", "-f", str(ok), "--impact", stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == "assertions: all 1 hold"
    assert revision(api) == rev
    # The API's preview answer, through Ryu's WSGI adapter.
    s, b = api.request("PUT", "/v1/vms/db1?preview=impact", {"ips": ["10.0.0.31"]})
    assert s == 200 and (b["preview"], b["revision"], b["changed"]) == ("impact", rev, True)
    assert b["violations"] == [] and ("impact_unavailable" in b) == (b["impact"] is None)
    s, b = api.request("PUT", "/v1/vms/db1?preview=bogus", {"ips": []})
    assert s == 400 and b["error"]["field"] == "preview"
    assert revision(api) == rev


def test_apply_breaking_an_assertion_is_refused_unless_forced(api, tmp_path):
    f, rev = _guarded(api, tmp_path)
    p = vgwctl(api, "apply", "-f", str(f), stdin=subprocess.DEVNULL)
    assert p.returncode == 1 and p.stdout == "", p.stdout
    assert "assertions: 1 of 1 would break:" in p.stderr and "not applied" in p.stderr
    assert revision(api) == rev
    # The server refuses it too (not only vgwctl): 409 with the violations.
    body = yaml.safe_load(f.read_text())
    s, b = api.request("PUT", "/v1/state", body)
    assert s == 409 and b["error"]["code"] == "assertion_failed"
    assert b["error"]["violations"][0]["pair"] == ["jump1", "web1"]
    assert revision(api) == rev
    p = vgwctl(api, "apply", "-f", str(f), "--force", stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"applied: revision {rev + 1}"
    assert "applied with --force: 1 connectivity assertion(s) broken" in p.stderr
    assert [r["id"] for r in api.get("/v1/policies/web-in")[1]["rules"]] == ["http"]
