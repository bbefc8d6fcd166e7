"""The OpenAPI document: built from the model's constants, covering every routed path."""

from __future__ import annotations

import json
import re

import pytest

from vgw_ryu.api.handlers import Api, Request
from vgw_ryu.api.openapi import OPENAPI
from vgw_ryu.policy import model

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
    assert rule["action"]["enum"] == list(model.ACTIONS)
    assert rule["protocol"]["enum"] == list(model.PROTOCOLS)
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
    assert model.PROTO_NUM == {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}


def _routes() -> list[tuple[str, str]]:
    api = Api(backend=None)
    return [("/v1/" + "/".join(pattern), method.lower())
            for pattern, methods in api.routes for method in methods]


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
