"""The OpenAPI document: built from the model's constants, covering every routed path."""

from __future__ import annotations

import json
import re

import jsonschema_rs
import pytest

from tests.api_doc import DOC, SSH_FROM_ADMINS
from vgw_ryu.api.handlers import Api, Request
from vgw_ryu.api.openapi import OPENAPI
from vgw_ryu.api.views import READ_ONLY, VIEW_FIELDS, object_view
from vgw_ryu.policy import model
from vgw_ryu.runtime.ports import Iface

PATHS = OPENAPI["paths"]
METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def _schema(path: str, method: str) -> dict:
    return PATHS[path][method]["requestBody"]["content"]["application/json"]["schema"]


def _state_schema() -> dict:
    return _schema("/v1/state", "put")


def test_document_is_valid_json_and_openapi_3():
    text = json.dumps(OPENAPI)
    again = json.loads(text)
    assert again == json.loads(json.dumps(again))
    assert again["openapi"].startswith("3.")
    assert again["info"]["title"] == "vgw_ryu"


def test_rule_enums_are_the_models():
    rule = _state_schema()["properties"]["policies"]["additionalProperties"]["properties"][
        "rules"]["items"]["properties"]
    assert rule["direction"]["enum"] == list(model.DIRECTIONS)
    assert rule["action"]["enum"] == list(model.RULE_ACTIONS)
    assert rule["protocol"]["oneOf"][0]["enum"] == list(model.PROTOCOLS)
    assert rule["priority"]["minimum"] == 1 and rule["priority"]["maximum"] == 1000


def test_rule_keys_are_the_models():
    rule = _state_schema()["properties"]["policies"]["additionalProperties"]["properties"][
        "rules"]["items"]
    assert set(rule["properties"]) == set(model.RULE_KEYS)
    assert set(model.STATE_KEYS) == set(_state_schema()["properties"])


def test_settings_enums_are_the_models():
    s = _state_schema()["properties"]["settings"]["properties"]
    assert s["default_ingress"]["enum"] == list(model.DEFAULT_VERDICTS)
    assert s["default_egress"]["enum"] == list(model.DEFAULT_VERDICTS)
    assert s["unknown_ports"]["enum"] == list(model.UNKNOWN_PORT_ACTIONS)
    assert set(s) == set(model.settings_doc(model.Settings()))


def test_settings_enums_match_validation():
    for value in model.DEFAULT_VERDICTS:
        model.parse_state({"settings": {"default_ingress": value, "default_egress": value}})
    for value in model.UNKNOWN_PORT_ACTIONS:
        model.parse_state({"settings": {"unknown_ports": value}})
    with pytest.raises(model.ValidationError):
        model.parse_state({"settings": {"unknown_ports": "reject"}})


def test_trace_and_logs_enums_are_the_models():
    body = _schema("/v1/trace", "post")["properties"]
    assert body["direction"]["enum"] == list(model.DIRECTIONS)
    assert body["protocol"]["enum"] == list(model.PROTO_NUM)
    params = {p["name"]: p for p in PATHS["/v1/logs"]["get"]["parameters"]}
    assert params["verdict"]["schema"]["enum"] == list(model.ACTIONS)


def test_name_pattern_is_the_models():
    pattern = _state_schema()["properties"]["groups"]["additionalProperties"]["properties"][
        "members"]["items"]["pattern"]
    assert pattern == model.NAME_RE.pattern
    for name in ("web1", "a..b", "x" * 63, "Web", "-a", "x" * 64, "a b", ""):
        assert bool(re.match(pattern, name)) == bool(model.NAME_RE.match(name)), name


def test_protocol_numbers_are_consistent():
    assert model.PROTOCOLS == (*model.PROTO_NUM, "any")
    assert {model.PROTO_NAME[n]: n for n in model.PROTO_NAME} == model.PROTO_NUM
    assert {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "gre": 47, "vrrp": 112}.items() \
        <= model.PROTO_NUM.items()


def _routes() -> list[tuple[str, str]]:
    api = Api(backend=None)
    return [(prefix + "/".join(pattern), method.lower())
            for prefix, routes in (("/v1/", api.routes), ("/", api.root_routes))
            for pattern, methods in routes for method in methods]


@pytest.mark.parametrize(("path", "method"), _routes())
def test_every_routed_path_has_an_operation(path, method):
    assert path in PATHS, f"{path} is routed but not in the OpenAPI document"
    op = PATHS[path][method]
    assert "200" in op["responses"]


def test_every_operation_is_routed():
    routed = set(_routes())
    documented = {(p, m) for p, item in PATHS.items() for m in item if m in METHODS}
    assert documented == routed


def test_error_schema_is_the_handlers_error_body():
    from vgw_ryu.api.handlers import ApiError

    body = ApiError(400, "invalid", "bad", "vms.a.ips[0]").body()
    schema = PATHS["/v1/state"]["put"]["responses"]["400"]["content"]["application/json"][
        "schema"]
    assert set(schema["required"]) == set(body)
    assert set(schema["properties"]["error"]["required"]) == set(body["error"])


def test_api_serves_the_document():
    resp = Api(backend=None).handle(Request("GET", "/v1/openapi.json"))
    assert resp.status == 200 and resp.body is OPENAPI
    assert json.loads(resp.encoded()) == json.loads(json.dumps(OPENAPI))


# --- operations, security, answers ------------------------------------------------------
def _operations():
    return [(p, m, op) for p, item in PATHS.items() for m, op in item.items()
            if m in METHODS]


def test_every_operation_has_a_unique_id_and_a_summary():
    ids = [op["operationId"] for _, _, op in _operations()]
    assert len(ids) == len(set(ids)) == len(_operations())
    assert all(op["summary"] for _, _, op in _operations())


def test_bearer_security_scheme_reads_optional_writes_required():
    assert OPENAPI["components"]["securitySchemes"]["bearerAuth"] == {
        **OPENAPI["components"]["securitySchemes"]["bearerAuth"],
        "type": "http", "scheme": "bearer"}
    for path, method, op in _operations():
        read = method == "get" or path == "/v1/trace"
        assert op["security"] == ([{}, {"bearerAuth": []}] if read
                                  else [{"bearerAuth": []}]), (path, method)


METRICS_PATHS = ("/metrics", "/v1/metrics")


def test_every_answer_has_a_json_schema_and_errors_share_one():
    error = OPENAPI["components"]["schemas"]["Error"]
    for path, method, op in _operations():
        for code, answer in op["responses"].items():
            if path in METRICS_PATHS and code == "200":
                assert answer["content"] == {"text/plain": {"schema": {"type": "string"}}}
                continue
            schema = answer["content"]["application/json"]["schema"]
            assert schema.get("type") == "object", (path, method, code)
            if code.startswith("4"):
                assert schema is error, (path, method, code)
        if method == "get" and path not in ("/v1/health", "/v1/openapi.json",
                                            *METRICS_PATHS):
            assert "ETag" in op["responses"]["200"]["headers"], path


def _jsonschema(schema):
    """OpenAPI 3.0 -> JSON Schema: ``nullable`` becomes ``anyOf [..., null]``."""
    if isinstance(schema, list):
        return [_jsonschema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _jsonschema(v) for k, v in schema.items() if k != "nullable"}
    if schema.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


def _ok_schema(path, method):
    return PATHS[path][method]["responses"]["200"]["content"]["application/json"]["schema"]


def _check(path, method, body):
    errors = [e.message for e in
              jsonschema_rs.validator_for(_jsonschema(_ok_schema(path, method))).iter_errors(
                  body)]
    assert errors == [], (path, method, body)


def test_real_answers_match_their_schemas(api):
    api.engine.refresh_facts(0xAB, [Iface("tap-web1", 5, "", {"vm-id": "web1"}),
                                    Iface("tap9", 7, "", {"vm-id": "ghost"}),
                                    Iface("eth0", 1, "", {"vgw-role": "uplink"})])
    for path, template in (("/v1/health", None), ("/v1/switches", None),
                           ("/v1/state", None), ("/v1/vms", None), ("/v1/groups", None),
                           ("/v1/policies", None), ("/v1/vms/web1", "/v1/vms/{name}"),
                           ("/v1/groups/admins", "/v1/groups/{name}"),
                           ("/v1/policies/web-in", "/v1/policies/{name}"),
                           ("/v1/logs", None), ("/v1/stats", None)):
        s, body = api.get(path)
        assert s == 200
        _check(template or path, "get", body)
    unknown = api.get("/v1/switches")[1]["switches"][0]["unknown_ports"]
    assert [(p["name"], p.get("vm_id")) for p in unknown] == [("tap9", "ghost")]
    writes = [("PUT", "/v1/vms/db1", {"ips": ["10.0.0.31"]}, "/v1/vms/{name}"),
              ("PUT", "/v1/vms/db1", {"ips": ["10.0.0.31"]}, "/v1/vms/{name}"),  # unchanged
              ("DELETE", "/v1/vms/db1", None, "/v1/vms/{name}"),
              ("PUT", "/v1/state", DOC, "/v1/state"),                           # unchanged
              ("POST", "/v1/trace", SSH_FROM_ADMINS, "/v1/trace"),
              ("PUT", "/v1/state", {}, "/v1/state")]
    for method, path, body, template in writes:
        s, answer = api.request(method, path, body)
        assert s == 200, answer
        _check(template, method.lower(), answer)


def test_schemas_refuse_what_the_handlers_never_send():
    vm = {"name": "a", "ips": [], "labels": {}, "protected": True,
          "protection": {"protected": True, "by": "vm"}, "zone": 1, "seen": [],
          "connections": {"limit": None, "count": None}, "revision": 1}
    _check("/v1/vms/{name}", "get", vm)
    with pytest.raises(AssertionError):
        _check("/v1/vms/{name}", "get", {**vm, "surprise": 1})
    with pytest.raises(AssertionError):
        _check("/v1/logs", "get", {"logs": []})          # no revision
    with pytest.raises(AssertionError):
        _check("/v1/state", "put", {"revision": 1, "changed": True})


def test_view_fields_are_what_object_view_adds(api):
    snap = api.engine.snapshot()
    for coll, name in (("vms", "web1"), ("groups", "admins"), ("policies", "web-in")):
        view = object_view(snap, coll, name)
        declared = {"vms": model.vm_doc, "groups": model.group_doc,
                    "policies": model.policy_doc}[coll](getattr(snap.state, coll)[name])
        assert set(view) - set(declared) == {"name", *VIEW_FIELDS[coll]}
    assert set(READ_ONLY) == {"name", "revision", *(k for f in VIEW_FIELDS.values()
                                                    for k in f)}


# --- metrics and connections ---------------------------------------------------------------
def test_metrics_is_documented_at_both_paths_as_a_read():
    for path, op_id in (("/metrics", "getMetrics"), ("/v1/metrics", "getMetricsV1")):
        op = PATHS[path]["get"]
        assert op["operationId"] == op_id and "Prometheus" in op["summary"]
        assert op["security"] == [{}, {"bearerAuth": []}]
        assert set(op["responses"]) == {"200", "401", "503"}


def test_connections_operation_documents_its_parameters_and_errors():
    op = PATHS["/v1/vms/{name}/connections"]["get"]
    assert op["operationId"] == "listVmConnections"
    params = {p["name"]: p["schema"] for p in op["parameters"]}
    assert set(params) == {"peer", "port", "rule", "limit"}
    assert (params["port"]["minimum"], params["port"]["maximum"]) == (1, 65535)
    assert (params["limit"]["minimum"], params["limit"]["maximum"]) == (1, 10000)
    assert set(op["responses"]) == {"200", "400", "401", "404", "409", "503"}
    assert "unprotected" in op["responses"]["409"]["description"]
    assert "ETag" in op["responses"]["200"]["headers"]
    conn = OPENAPI["components"]["schemas"]["Connection"]["properties"]
    assert conn["direction"]["enum"] == list(model.DIRECTIONS)


def test_stats_counters_say_what_sessions_and_packets_count():
    counter = OPENAPI["components"]["schemas"]["Stats"]["properties"]["defaults"][
        "additionalProperties"]["properties"]
    assert "new connections" in counter["sessions"]["description"]
    assert "every packet" in counter["packets"]["description"]


CONNS = {"connections": [
    {"protocol": "tcp", "direction": "ingress", "src": "192.0.2.7", "dst": "10.0.0.11",
     "sport": 40000, "dport": 22, "state": "ESTABLISHED", "blocked": False,
     "rule": "web-in/ssh", "timeout": 431999},
    {"protocol": "icmp", "direction": "egress", "src": "10.0.0.11", "dst": "10.0.0.91",
     "type": 8, "code": 0, "id": 77, "state": "", "blocked": True, "rule": "default",
     "timeout": 29},
    {"protocol": "udp", "direction": "egress", "src": "10.0.0.11", "dst": "10.0.0.53",
     "sport": 5353, "dport": 53, "state": "", "blocked": False, "rule": None,
     "timeout": None}], "total": 3, "truncated": False}


def test_connections_answer_matches_its_schema(api):
    api.backend.conn_result = CONNS
    s, body = api.get("/v1/vms/web1/connections")
    assert s == 200
    _check("/v1/vms/{name}/connections", "get", body)
    with pytest.raises(AssertionError):
        _check("/v1/vms/{name}/connections", "get", {k: v for k, v in body.items()
                                                      if k != "truncated"})


# --- safe changes: preview, force, assertion_failed ----------------------------------------
WRITE_OPS = [("/v1/state", "put"), *((f"/v1/{c}/{{name}}", m) for c in
                                     ("vms", "groups", "policies") for m in ("put", "delete"))]


@pytest.mark.parametrize(("path", "method"), WRITE_OPS)
def test_writes_document_preview_force_and_assertion_failed(path, method):
    op = PATHS[path][method]
    params = {p["name"]: p for p in op["parameters"]}
    assert params["preview"]["schema"]["enum"] == ["impact"]
    assert set(params["force"]["schema"]["enum"]) == {"true", "1", "false", "0"}
    assert "assertion_failed" in op["responses"]["409"]["description"]
    preview = OPENAPI["components"]["schemas"]["Preview"]
    assert preview in _ok_schema(path, method)["oneOf"]
    assert set(preview["required"]) == {"preview", "revision", "changed", "impact",
                                        "violations"}


def test_error_schema_carries_violations():
    from vgw_ryu.api.safe import refusal

    v = {"expectation": 0, "from": "a", "to": "b", "protocol": "tcp", "port": 22,
         "verdict": "allow", "pair": ["a", "b"], "got": "deny", "decided_by": "b ingress: "
                                                                              "default"}
    body = refusal([v]).body()
    schema = _jsonschema(OPENAPI["components"]["schemas"]["Error"])
    assert list(jsonschema_rs.validator_for(schema).iter_errors(body)) == []
    assert body["error"]["violations"] == [v]
    bad = {"error": {**body["error"], "violations": [{"expectation": "x"}]}}
    assert list(jsonschema_rs.validator_for(schema).iter_errors(bad))


def test_preview_schema_refuses_a_write_answer():
    _check("/v1/state", "put", {"preview": "impact", "revision": 1, "changed": True,
                                "impact": None, "impact_unavailable": "x", "violations": []})
    with pytest.raises(AssertionError):
        _check("/v1/state", "put", {"preview": "impact", "revision": 1, "changed": True})
