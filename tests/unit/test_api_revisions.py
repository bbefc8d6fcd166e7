"""Revisions on the wire: ETags on every GET, a body ``revision`` acting as If-Match,
writes that change nothing writing nothing, and the read-only POST /v1/trace."""

from __future__ import annotations

import pytest

from tests.api_doc import DOC, SSH_FROM_ADMINS, assert_error

TOKEN = "s3cret"
READS = ["/v1/state", "/v1/vms", "/v1/groups", "/v1/policies", "/v1/vms/web1",
         "/v1/groups/admins", "/v1/policies/web-in", "/v1/switches", "/v1/stats",
         "/v1/logs"]


@pytest.mark.parametrize("path", READS)
def test_every_get_has_the_revision_and_an_etag(api, path):
    r = api.call("GET", path)
    assert r.status == 200 and r.body["revision"] == 1
    assert r.headers["ETag"] == '"1"'
    assert api.request("PUT", "/v1/vms/new1", {"ips": []})[0] == 200
    r = api.call("GET", path)
    assert r.headers["ETag"] == '"2"' and r.body["revision"] == 2


def _writes(api) -> list[int]:
    calls: list[int] = []
    api.engine.on_change(lambda: calls.append(api.engine.revision))
    return calls


def test_identical_state_writes_nothing(api):
    before, calls = api.state_bytes(), _writes(api)
    assert api.request("PUT", "/v1/state", DOC) == (200, {"revision": 1, "changed": False})
    # Defaults spelled out are the same state too.
    full = api.get("/v1/state")[1]
    del full["revision"]
    assert api.request("PUT", "/v1/state", full) == (200, {"revision": 1, "changed": False})
    assert api.state_bytes() == before and calls == []
    assert api.engine.store.revision() == 1


def test_a_real_change_still_bumps_and_says_nothing_extra(api):
    calls = _writes(api)
    doc = {**DOC, "settings": {"default_ingress": "allow"}}
    assert api.request("PUT", "/v1/state", doc) == (200, {"revision": 2})
    assert calls == [2]


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/vms/web1", DOC["vms"]["web1"]),
    ("/v1/groups/admins", DOC["groups"]["admins"]),
    ("/v1/policies/web-in", DOC["policies"]["web-in"]),
])
def test_identical_object_writes_nothing(api, path, body):
    before, calls = api.state_bytes(), _writes(api)
    s, b = api.request("PUT", path, body)
    assert (s, b["revision"], b["changed"], b["created"]) == (200, 1, False, False)
    assert api.state_bytes() == before and calls == []


def test_stale_if_match_is_409_even_when_nothing_would_change(api):
    assert api.request("PUT", "/v1/vms/x", {"ips": []})[0] == 200
    before = api.state_bytes()
    r = api.call("PUT", "/v1/vms/x", {"ips": []}, headers={"If-Match": "1"})
    assert_error(r, 409, "conflict", "If-Match")
    assert api.state_bytes() == before


def test_stale_revision_in_the_state_body_is_409(api):
    doc = api.get("/v1/state")[1]                       # revision 1
    assert api.request("PUT", "/v1/vms/x", {"ips": []})[0] == 200   # now 2
    before = api.state_bytes()
    edited = {**doc, "settings": {**doc["settings"], "default_egress": "deny"}}
    r = api.call("PUT", "/v1/state", edited)
    assert_error(r, 409, "conflict", "revision")
    assert "current revision is 2" in r.body["error"]["message"]
    assert api.state_bytes() == before
    assert api.request("PUT", "/v1/state", {**edited, "revision": 2}) == \
        (200, {"revision": 3})


def test_stale_revision_in_an_object_body_is_409(api):
    vm = api.get("/v1/vms/web1")[1]                     # revision 1
    assert api.request("PUT", "/v1/vms/x", {"ips": []})[0] == 200
    before = api.state_bytes()
    r = api.call("PUT", "/v1/vms/web1", {**vm, "labels": {}})
    assert_error(r, 409, "conflict", "revision")
    assert api.state_bytes() == before


@pytest.mark.parametrize("rev", ["1", 1.5, True, -1, None, [1]])
def test_revision_in_the_body_must_be_a_number(api, rev):
    before = api.state_bytes()
    assert_error(api.call("PUT", "/v1/state", {**DOC, "revision": rev}), 400, "invalid",
                 "revision")
    assert_error(api.call("PUT", "/v1/vms/a", {"ips": [], "revision": rev}), 400, "invalid",
                 "revision")
    assert api.state_bytes() == before


def test_body_revision_and_if_match_must_agree(api):
    r = api.call("PUT", "/v1/state", {**DOC, "revision": 1}, headers={"If-Match": "2"})
    assert_error(r, 400, "invalid", "revision")
    assert api.request("PUT", "/v1/state", {**DOC, "revision": 1},
                       headers={"If-Match": "1"}) == (200, {"revision": 1, "changed": False})


def test_delete_still_bumps_and_honours_if_match(api):
    assert api.request("PUT", "/v1/vms/x", {"ips": []})[0] == 200
    assert_error(api.call("DELETE", "/v1/vms/x", headers={"If-Match": "1"}), 409, "conflict",
                 "If-Match")
    assert api.request("DELETE", "/v1/vms/x", headers={"If-Match": "2"}) == \
        (200, {"revision": 3, "deleted": "x"})


def test_invalid_write_is_400_before_a_stale_revision(api):
    r = api.call("PUT", "/v1/vms/a", {"ips": ["nope"]}, headers={"If-Match": "7"})
    assert_error(r, 400, "invalid", "vms.a.ips[0]")


# --- token: trace is a read ---------------------------------------------------------------
@pytest.fixture
def locked(make_api):
    c = make_api(token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert c.request("PUT", "/v1/state", DOC, headers=auth) == (200, {"revision": 1})
    return c


@pytest.mark.parametrize("addr", ["127.0.0.1", "::1"])
def test_trace_on_loopback_needs_no_token(locked, addr):
    s, t = locked.request("POST", "/v1/trace", SSH_FROM_ADMINS, remote_addr=addr)
    assert s == 200 and t["model"]["rule"] == "ssh"


def test_trace_off_loopback_needs_the_token(locked):
    r = locked.call("POST", "/v1/trace", SSH_FROM_ADMINS, remote_addr="192.0.2.10")
    assert_error(r, 401, "unauthorized")
    assert locked.request("POST", "/v1/trace", SSH_FROM_ADMINS, remote_addr="192.0.2.10",
                          headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200


def test_writes_by_post_or_put_still_need_the_token_on_loopback(locked):
    assert_error(locked.call("PUT", "/v1/vms/a", {"ips": []}), 401, "unauthorized")
    assert_error(locked.call("POST", "/v1/vms/a", {"ips": []}), 405, "method_not_allowed")
