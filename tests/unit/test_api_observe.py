"""Observability endpoints on the Api: GET /metrics (raw Prometheus text), a VM's
connection listing, and the per-request counting hook."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

import pytest

from tests.api_doc import DOC, assert_error
from vgw_ryu.api.handlers import Api
from vgw_ryu.api.http import JSON_TYPE, PRETTY_UNDER, ApiError, Request, Response
from vgw_ryu.runtime.engine import Engine
from vgw_ryu.runtime.metrics import CONTENT_TYPE

TOKEN = "s3cret"
CONNS = {"connections": [
    {"protocol": "tcp", "direction": "ingress", "src": "192.0.2.7", "dst": "10.0.0.11",
     "sport": 40000, "dport": 22, "state": "ESTABLISHED", "blocked": False,
     "rule": "web-in/ssh", "timeout": 431999}], "total": 1, "truncated": False}


# --- Response: raw bodies --------------------------------------------------------------------
def test_raw_response_is_sent_as_is_with_its_content_type():
    r = Response.raw(200, b"a 1\n", "text/plain; x=1", {"X-A": "b"})
    assert r.encoded() == b"a 1\n"
    assert r.content_type == "text/plain; x=1"
    assert r.headers == {"X-A": "b", "Content-Type": "text/plain; x=1"}
    j = Response(200, {"a": 1})
    assert j.content_type == JSON_TYPE and json.loads(j.encoded()) == {"a": 1}
    assert "Content-Type" not in j.headers


def test_small_answers_are_indented_and_big_ones_compact():
    small = Response(200, {"a": [1, 2]})
    assert small.encoded() == b'{\n "a": [\n  1,\n  2\n ]\n}\n'
    body = {"switches": [{"vm": f"vm{i}", "ofport": i} for i in range(3000)]}
    big = Response(200, body).encoded()
    assert len(big) > PRETTY_UNDER and b"\n " not in big and big.endswith(b"}\n")
    assert json.loads(big) == body


# --- /metrics ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/metrics", "/v1/metrics", "/metrics/"])
def test_metrics_is_the_backends_text_unchanged(api, path):
    api.backend.metrics_body = b"# TYPE x gauge\nx 1.0\n"
    r = api.call("GET", path)
    assert r.status == 200
    assert r.body == b"# TYPE x gauge\nx 1.0\n" and r.encoded() == r.body
    assert r.headers["Content-Type"] == CONTENT_TYPE == r.content_type
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"


def test_paths_outside_v1_other_than_metrics_are_404(api):
    for path in ("/", "/metric", "/metrics/x", "/v2/metrics"):
        assert_error(api.call("GET", path), 404, "not_found")
    assert_error(api.call("PUT", "/metrics", {}), 405, "method_not_allowed")


def test_metrics_token_rules(make_api):
    c = make_api(token=TOKEN)
    for path in ("/metrics", "/v1/metrics"):
        assert c.call("GET", path).status == 200                       # loopback: open
        r = c.call("GET", path, remote_addr="192.0.2.1")
        assert_error(r, 401, "unauthorized")
        assert r.headers.get("Content-Type") is None                   # errors are JSON
        r = c.call("GET", path, remote_addr="192.0.2.1",
                   headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status == 200 and r.body.startswith(b"# HELP vgw_state_revision")
        r = c.call("GET", path, remote_addr="192.0.2.1",
                   headers={"Authorization": "Bearer wrong"})
        assert_error(r, 401, "unauthorized")


@dataclass
class BareBackend:
    """A backend with none of the optional methods."""
    engine: Engine

    def switch_count(self) -> int:
        return 0

    def stats(self) -> dict[str, Any]:
        return {"policies": {}}


def test_backend_without_the_optional_methods(make_api):
    c = make_api()
    bare = Api(BareBackend(c.engine))
    c.api = bare
    assert c.request("PUT", "/v1/state", DOC)[0] == 200      # no count_request: fine
    assert_error(c.call("GET", "/metrics"), 503, "unavailable")
    assert_error(c.call("GET", "/v1/vms/web1/connections"), 503, "unavailable")
    assert c.get("/v1/health")[0] == 200


# --- GET /v1/vms/{name}/connections -------------------------------------------------------------
def test_connections_answer_and_defaults(api):
    api.backend.conn_result = CONNS
    r = api.call("GET", "/v1/vms/web1/connections")
    zone = api.engine.snapshot().ids.zone("web1")
    assert r.status == 200
    assert r.body == {"vm": "web1", "zone": zone, **CONNS, "revision": 1}
    assert r.headers["ETag"] == '"1"'
    assert api.backend.conn_queries == [("web1", None, None, None, 1000)]


def test_connections_filters_reach_the_backend_parsed(api):
    api.backend.conn_result = {"connections": [], "total": 0, "truncated": False}
    for query, want in (
            ("peer=192.0.2.7&port=22&rule=web-in/ssh&limit=5",
             (ipaddress.ip_address("192.0.2.7"), 22, "web-in/ssh", 5)),
            ("peer=2001:db8::1&rule=default&limit=10000",
             (ipaddress.ip_address("2001:db8::1"), None, "default", 10000)),
            ("port=65535&limit=1", (None, 65535, None, 1))):
        api.backend.conn_queries.clear()
        s, body = api.get(f"/v1/vms/web1/connections?{query}")
        assert s == 200 and body["total"] == 0
        assert api.backend.conn_queries == [("web1", *want)]


@pytest.mark.parametrize(("query", "field"), [
    ("peer=10.0.0", "peer"), ("peer=10.0.0.0/8", "peer"),
    ("port=0", "port"), ("port=65536", "port"), ("port=http", "port"), ("port=-1", "port"),
    ("limit=0", "limit"), ("limit=10001", "limit"), ("limit=x", "limit"),
    ("rule=web-in", "rule"), ("rule=Web/x", "rule"), ("rule=a/b/c", "rule"),
    ("rule=/ssh", "rule")])
def test_connections_bad_filters_are_400_with_the_field(api, query, field):
    api.backend.conn_result = CONNS
    assert_error(api.call("GET", f"/v1/vms/web1/connections?{query}"), 400, "invalid", field)
    assert api.backend.conn_queries == []


def test_connections_empty_values_are_400_too(api):
    # Ryu's WSGI keeps blank values (?peer=&port=), unlike the test client's parse_qsl.
    for key in ("peer", "port", "limit", "rule"):
        r = api.api.handle(Request("GET", "/v1/vms/web1/connections", query={key: ""}))
        assert_error(r, 400, "invalid", key)
    assert api.backend.conn_queries == []


def test_connections_of_an_unknown_vm_is_404(api):
    assert_error(api.call("GET", "/v1/vms/nope/connections"), 404, "not_found")
    assert_error(api.call("GET", "/v1/vms/nope/connections?port=0"), 404, "not_found")
    assert api.backend.conn_queries == []


def test_connections_of_an_unprotected_vm_is_409_unprotected(api):
    assert api.request("PUT", "/v1/vms/open1", {"ips": ["10.0.0.50"],
                                                "protected": False})[0] == 200
    api.backend.conn_result = CONNS
    assert_error(api.call("GET", "/v1/vms/open1/connections"), 409, "unprotected",
                 "vms.open1.protected")
    assert api.backend.conn_queries == []


def test_connections_unreadable_here_is_503_unavailable(api):
    api.backend.conn_result = None
    r = api.call("GET", "/v1/vms/web1/connections?port=22")
    assert_error(r, 503, "unavailable")
    assert "web1" in r.body["error"]["message"]
    assert api.backend.conn_queries == [("web1", None, 22, None, 1000)]


def test_connections_is_a_read_for_the_token(make_api):
    c = make_api(token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert c.request("PUT", "/v1/state", DOC, headers=auth)[0] == 200
    c.backend.conn_result = CONNS
    assert c.call("GET", "/v1/vms/web1/connections").status == 200
    assert_error(c.call("GET", "/v1/vms/web1/connections", remote_addr="192.0.2.1"),
                 401, "unauthorized")
    assert c.call("GET", "/v1/vms/web1/connections", remote_addr="192.0.2.1",
                  headers=auth).status == 200
    assert_error(c.call("PUT", "/v1/vms/web1/connections", {}), 405, "method_not_allowed")


# --- request counting ---------------------------------------------------------------------------
def test_every_answer_is_counted_by_method_and_status(make_api):
    c = make_api(token=TOKEN)
    c.call("GET", "/v1/health")
    c.call("PUT", "/v1/state", DOC)                                   # no token: 401
    c.call("PUT", "/v1/state", DOC, headers={"Authorization": f"Bearer {TOKEN}"})
    c.call("GET", "/nothing")
    c.call("GET", "/metrics")
    c.call("DELETE", "/v1/stats")
    c.call("BREW", "/v1/health")
    c.call("post", "/v1/trace", {"vm": "nope"})
    assert c.backend.counted == [("GET", 200), ("PUT", 401), ("PUT", 200), ("GET", 404),
                                 ("GET", 200), ("DELETE", 405), ("OTHER", 405),
                                 ("POST", 404)]


def test_a_failing_counter_never_changes_the_answer(api):
    api.backend.count_error = RuntimeError("registry broken")
    s, body = api.get("/v1/health")
    assert s == 200 and body["status"] == "ok"
    assert_error(api.call("GET", "/v1/vms/nope"), 404, "not_found")
    assert api.backend.counted[-2:] == [("GET", 200), ("GET", 404)]


def test_internal_errors_are_counted_as_500(api):
    api.backend.stats_error = RuntimeError("boom")
    assert_error(api.call("GET", "/v1/stats"), 500, "internal")
    assert api.backend.counted[-1] == ("GET", 500)


def test_errors_answered_outside_handle_are_counted_when_the_method_is_given(api):
    r = api.api.error_response(ApiError(413, "too_large", "body over 1 MiB"), "put")
    assert_error(r, 413, "too_large")
    assert api.backend.counted[-1] == ("PUT", 413)
    n = len(api.backend.counted)
    assert_error(api.api.error_response(ApiError(413, "too_large", "x")), 413, "too_large")
    assert len(api.backend.counted) == n
