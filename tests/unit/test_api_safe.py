"""Safe changes on the Api: ``?preview=impact`` on every write, and the connectivity
assertions (``expectations``) that refuse a write breaking them unless ``force=true``."""

from __future__ import annotations

import copy

import pytest

from tests.api_doc import DOC, assert_error
from tests.unit.conftest import IMPACT
from tests.unit.test_openapi import _check
from vgw_ryu.api import safe
from vgw_ryu.policy import model

# jump1 (in group admins) may ssh to web1: the web-in/ssh rule allows it.
SSH = {"from": "jump1", "to": "web1", "protocol": "tcp", "port": 22, "verdict": "allow"}
GUARDED = {**copy.deepcopy(DOC), "expectations": [SSH]}
NO_SSH = {"applied_to": ["group:web"], "rules": [DOC["policies"]["web-in"]["rules"][0]]}
WRITES = [("PUT", "/v1/state", GUARDED, "/v1/state"),
          ("PUT", "/v1/policies/web-in", NO_SSH, "/v1/policies/{name}"),
          ("PUT", "/v1/vms/db1", {"ips": ["10.0.0.31"]}, "/v1/vms/{name}"),
          ("DELETE", "/v1/policies/web-in", None, "/v1/policies/{name}")]


@pytest.fixture
def guarded(make_api):
    """DOC plus one assertion that holds (jump1 -> web1 tcp/22 allowed), revision 1."""
    c = make_api()
    assert c.request("PUT", "/v1/state", GUARDED) == (200, {"revision": 1})
    return c


def _unchanged(c, before: bytes) -> None:
    assert c.state_bytes() == before
    assert c.get("/v1/health")[1]["revision"] == 1


# --- preview ------------------------------------------------------------------------------
def test_preview_changes_nothing_and_reports_impact_and_violations(guarded):
    before = guarded.state_bytes()
    r = guarded.call("PUT", "/v1/policies/web-in?preview=impact", NO_SSH)
    assert r.status == 200, r.body
    assert r.body == {"preview": "impact", "revision": 1, "changed": True,
                      "impact": IMPACT, "violations": [
                          {"expectation": 0, **SSH, "pair": ["jump1", "web1"],
                           "got": "deny", "decided_by": "web1 ingress: default"}]}
    _unchanged(guarded, before)
    [candidate] = guarded.backend.impact_calls
    assert isinstance(candidate, model.State)
    assert [r.id for r in candidate.policies["web-in"].rules] == ["http"]
    _check("/v1/policies/{name}", "put", r.body)


@pytest.mark.parametrize(("method", "path", "body", "template"), WRITES)
def test_every_write_previews_without_writing(guarded, method, path, body, template):
    before = guarded.state_bytes()
    r = guarded.call(method, path + "?preview=impact", body)
    assert r.status == 200, r.body
    assert r.body["preview"] == "impact" and r.body["revision"] == 1
    assert r.body["changed"] is (path != "/v1/state")      # GUARDED is what it holds
    assert r.body["impact"] == IMPACT
    _check(template, method.lower(), r.body)
    _unchanged(guarded, before)
    assert len(guarded.backend.impact_calls) == 1


def test_preview_of_an_identical_write_says_unchanged(guarded):
    s, b = guarded.request("PUT", "/v1/vms/web1?preview=impact", DOC["vms"]["web1"])
    assert (s, b["changed"], b["violations"]) == (200, False, [])
    s, b = guarded.request("PUT", "/v1/vms/web1?preview=impact", {"ips": ["10.0.0.12"]})
    assert (s, b["changed"]) == (200, True)


def test_preview_of_a_delete(guarded):
    before = guarded.state_bytes()
    s, b = guarded.request("DELETE", "/v1/policies/web-in?preview=impact")
    assert s == 200 and b["changed"] is True
    assert [v["got"] for v in b["violations"]] == ["deny"]
    _unchanged(guarded, before)
    assert "web-in" not in guarded.backend.impact_calls[0].policies


def test_preview_when_the_connections_cannot_be_read(guarded, monkeypatch):
    guarded.backend.impact_result = None
    s, b = guarded.request("PUT", "/v1/vms/db1?preview=impact", {"ips": []})
    assert s == 200 and b["impact"] is None and "cannot be read" in b["impact_unavailable"]
    _check("/v1/vms/{name}", "put", b)

    def broken(candidate):
        raise OSError("ovs-appctl timed out")
    monkeypatch.setattr(guarded.backend, "impact", broken)
    s, b = guarded.request("PUT", "/v1/vms/db1?preview=impact", {"ips": []})
    assert s == 200 and b["impact"] is None and "timed out" in b["impact_unavailable"]
    assert b["violations"] == []


def test_preview_on_a_backend_without_impact(guarded):
    class Bare:           # only what a write needs
        engine = guarded.backend.engine
    guarded.api.backend = Bare()
    s, b = guarded.request("PUT", "/v1/vms/db1?preview=impact", {"ips": []})
    assert s == 200 and b["impact"] is None and b["impact_unavailable"]
    assert "db1" not in guarded.get("/v1/vms")[1]["vms"]


@pytest.mark.parametrize(("method", "path", "body"), [
    ("PUT", "/v1/state", {"vms": {"a": {"ips": ["nope"]}}}),
    ("PUT", "/v1/vms/db1", {"ips": ["nope"]}),
    ("PUT", "/v1/policies/p", {"applied_to": ["group:nope"]})])
def test_preview_refuses_what_the_write_refuses(guarded, method, path, body):
    before = guarded.state_bytes()
    r = guarded.call(method, path + "?preview=impact", body)
    assert_error(r, 400, "invalid")
    assert r.body["error"]["field"]
    _unchanged(guarded, before)
    assert guarded.backend.impact_calls == []


def test_preview_errors_404_409_and_stale(guarded):
    assert_error(guarded.call("DELETE", "/v1/vms/nope?preview=impact"), 404, "not_found")
    assert_error(guarded.call("DELETE", "/v1/vms/jump1?preview=impact"), 409, "conflict",
                 "groups.admins.members")
    assert_error(guarded.call("PUT", "/v1/vms/db1?preview=impact", {"ips": []},
                              headers={"If-Match": "0"}), 409, "conflict", "If-Match")
    assert guarded.backend.impact_calls == []


@pytest.mark.parametrize("query", ["preview=yes", "preview=", "preview=IMPACT",
                                   "force=yes", "force=", "force=2"])
@pytest.mark.parametrize(("method", "path", "body", "template"), WRITES)
def test_bad_preview_and_force_values(guarded, method, path, body, template, query):
    before = guarded.state_bytes()
    r = guarded.call(method, f"{path}?{query}", body)
    assert_error(r, 400, "invalid", query.split("=")[0])
    _unchanged(guarded, before)


def test_a_preview_needs_the_token_like_a_write(make_api):
    c = make_api(token="s3cret")
    r = c.call("PUT", "/v1/vms/db1?preview=impact", {"ips": []})
    assert_error(r, 401, "unauthorized")
    r = c.call("PUT", "/v1/vms/db1?preview=impact", {"ips": []},
               headers={"Authorization": "Bearer s3cret"})
    assert r.status == 200 and r.body["preview"] == "impact"


# --- assertions as guardrails ---------------------------------------------------------------
def test_a_write_breaking_an_assertion_is_refused(guarded):
    before = guarded.state_bytes()
    r = guarded.call("PUT", "/v1/policies/web-in", NO_SSH)
    assert r.status == 409, r.body
    err = r.body["error"]
    assert (err["code"], err["field"]) == ("assertion_failed", "expectations")
    assert err["message"].startswith("1 connectivity assertion(s) would break: "
                                     "expectations[0] jump1 -> web1 tcp/22: expected allow, "
                                     "got deny (web1 ingress: default)")
    assert "force=true" in err["message"]
    assert err["violations"] == [{"expectation": 0, **SSH, "pair": ["jump1", "web1"],
                                  "got": "deny", "decided_by": "web1 ingress: default"}]
    _unchanged(guarded, before)


@pytest.mark.parametrize("force", ["true", "1", "TRUE"])
def test_force_applies_and_lists_the_violations(guarded, force):
    s, b = guarded.request("PUT", f"/v1/policies/web-in?force={force}", NO_SSH)
    assert s == 200, b
    assert (b["revision"], b["created"], b["name"]) == (2, False, "web-in")
    assert [(v["expectation"], v["got"]) for v in b["violations"]] == [(0, "deny")]
    assert [r["id"] for r in guarded.get("/v1/policies/web-in")[1]["rules"]] == ["http"]
    _check("/v1/policies/{name}", "put", b)


def test_force_false_is_not_forced(guarded):
    for value in ("false", "0"):
        r = guarded.call("PUT", f"/v1/policies/web-in?force={value}", NO_SSH)
        assert_error_409 = r.status == 409 and r.body["error"]["code"] == "assertion_failed"
        assert assert_error_409, r.body
    assert guarded.get("/v1/health")[1]["revision"] == 1


def test_a_write_keeping_assertions_carries_no_violations(guarded):
    s, b = guarded.request("PUT", "/v1/vms/db1", {"ips": ["10.0.0.31"]})
    assert (s, b) == (200, {"revision": 2, "created": True, "name": "db1"})


def test_an_identical_write_is_never_refused(guarded):
    assert guarded.request("PUT", "/v1/policies/web-in?force=true", NO_SSH)[0] == 200
    # The state now breaks the assertion; writing it again changes nothing: no 409.
    s, b = guarded.request("PUT", "/v1/policies/web-in", NO_SSH)
    assert (s, b) == (200, {"revision": 2, "created": False, "name": "web-in",
                            "changed": False})
    state = {k: v for k, v in guarded.get("/v1/state")[1].items() if k != "revision"}
    assert guarded.request("PUT", "/v1/state", state) == (200, {"revision": 2,
                                                                 "changed": False})
    # A change that still leaves it broken is refused; the fix is accepted.
    r = guarded.call("PUT", "/v1/vms/db1", {"ips": []})
    assert r.status == 409 and r.body["error"]["code"] == "assertion_failed"
    assert guarded.request("PUT", "/v1/policies/web-in", GUARDED["policies"]["web-in"]) \
        == (200, {"revision": 3, "created": False, "name": "web-in"})


def test_whole_state_write_is_guarded(guarded):
    broken = copy.deepcopy(GUARDED)
    broken["groups"]["admins"]["members"] = []
    r = guarded.call("PUT", "/v1/state", broken)
    assert r.status == 409 and r.body["error"]["violations"][0]["pair"] == ["jump1", "web1"]
    s, b = guarded.request("PUT", "/v1/state?force=1", broken)
    assert s == 200 and b["revision"] == 2 and len(b["violations"]) == 1
    _check("/v1/state", "put", b)


def test_delete_breaking_an_assertion(guarded):
    r = guarded.call("DELETE", "/v1/policies/web-in")
    assert r.status == 409 and r.body["error"]["code"] == "assertion_failed"
    assert "web-in" in guarded.get("/v1/policies")[1]["policies"]
    s, b = guarded.request("DELETE", "/v1/policies/web-in?force=true")
    assert s == 200 and (b["revision"], b["deleted"]) == (2, "web-in")
    assert b["violations"][0]["expectation"] == 0
    _check("/v1/policies/{name}", "delete", b)


def test_a_vm_named_by_an_assertion_cannot_be_deleted(guarded):
    r = guarded.call("DELETE", "/v1/vms/web1")
    assert_error(r, 409, "conflict", "expectations[0].to")
    assert "web1" in guarded.get("/v1/vms")[1]["vms"]


def test_the_409_message_names_at_most_three(guarded):
    many = {**copy.deepcopy(GUARDED),
            "expectations": [{**SSH, "port": p} for p in (22, 23, 24, 25, 26)]}
    s, b = guarded.request("PUT", "/v1/state", many)
    assert s == 409
    err = b["error"]
    assert len(err["violations"]) == 4          # 23-26; 22 holds
    assert err["message"].startswith("4 connectivity assertion(s) would break")
    assert err["message"].count("expectations[") == safe.SHOWN
    assert "and 1 more" in err["message"]


def test_group_ends_name_the_pair(guarded):
    st = {**copy.deepcopy(GUARDED), "expectations": [
        {"from": "group:admins", "to": "group:web", "protocol": "tcp", "port": 80,
         "verdict": "deny"}]}
    r = guarded.call("PUT", "/v1/state", st)
    assert r.status == 409
    [v] = r.body["error"]["violations"]
    assert v["pair"] == ["jump1", "web1"] and v["got"] == "allow"
    assert "group:admins -> group:web (jump1 -> web1) tcp/80" in r.body["error"]["message"]
