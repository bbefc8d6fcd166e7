"""OpenAPI 3 description of the /v1 API, served at GET /v1/openapi.json.

Kept next to the handlers' contract; the fuzz test in tests/sandbox/test_api.py drives
the running app from this document and requires no 5xx and no answer outside it. The
enums and the name pattern come from the policy model's constants, so the document and
the validation cannot disagree.
"""

from __future__ import annotations

from typing import Any

from vgw_ryu.policy.model import (
    ACTIONS,
    DEFAULT_VERDICTS,
    DIRECTIONS,
    NAME_RE,
    PROTO_NUM,
    PROTOCOLS,
    UNKNOWN_PORT_ACTIONS,
)
from vgw_ryu.policy.parse import MAX_CONNECTIONS


def _enum(values: Any) -> dict[str, Any]:
    return {"enum": list(values)}


NAME = {"type": "string", "pattern": NAME_RE.pattern}
ERROR = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message", "field"],
                             "properties": {"code": {"type": "string"},
                                            "message": {"type": "string"},
                                            "field": {"type": "string", "nullable": True}}}},
}
LABELS = {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63}}
LIMIT = {"type": "integer", "minimum": 0, "maximum": MAX_CONNECTIONS}
VM = {
    "type": "object", "additionalProperties": False,
    "properties": {"mac": {"type": "string"}, "ips": {"type": "array", "items": {"type": "string"}},
                   "labels": LABELS, "protected": {"type": "boolean"},
                   "max_connections": LIMIT},
}
GROUP = {
    "type": "object", "additionalProperties": False,
    "properties": {"match_labels": LABELS, "members": {"type": "array", "items": NAME},
                   "cidrs": {"type": "array", "items": {"type": "string"}}},
}
RULE = {
    "type": "object", "additionalProperties": False, "required": ["id", "direction", "action"],
    "properties": {
        "id": NAME, "direction": _enum(DIRECTIONS),
        "action": _enum(ACTIONS),
        "protocol": _enum(PROTOCOLS),
        "ports": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        "peer": {"type": "string"}, "priority": {"type": "integer", "minimum": 1,
                                                  "maximum": 1000},
        "log": {"type": "boolean"}, "stateful": {"type": "boolean"},
    },
}
POLICY = {
    "type": "object", "additionalProperties": False,
    "properties": {"applied_to": {"type": "array", "items": {"type": "string"}},
                   "rules": {"type": "array", "items": RULE}},
}
SETTINGS = {
    "type": "object", "additionalProperties": False,
    "properties": {"default_ingress": _enum(DEFAULT_VERDICTS),
                   "default_egress": _enum(DEFAULT_VERDICTS),
                   "log_default_deny": {"type": "boolean"},
                   "unknown_ports": _enum(UNKNOWN_PORT_ACTIONS),
                   "uplinks": {"type": "array", "items": {"type": "string"}},
                   "max_connections": LIMIT},
}
STATE = {
    "type": "object", "additionalProperties": False,
    "properties": {"settings": SETTINGS,
                   "vms": {"type": "object", "additionalProperties": VM},
                   "groups": {"type": "object", "additionalProperties": GROUP},
                   "policies": {"type": "object", "additionalProperties": POLICY},
                   "revision": {"type": "integer"}},
}
WRITE = {"type": "object", "required": ["revision"],
         "properties": {"revision": {"type": "integer"}}}
ANY_OBJECT = {"type": "object"}


def _err(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": "error", "content": {"application/json": {"schema": ERROR}}}
            for c in codes}


def _ok(schema: dict[str, Any]) -> dict[str, Any]:
    return {"200": {"description": "ok", "content": {"application/json": {"schema": schema}}}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


IF_MATCH = {"name": "If-Match", "in": "header", "required": False,
            "schema": {"type": "string"}, "description": "expected current revision"}


def _collection(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    item_path = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        f"/v1/{name}": {"get": {"responses": {**_ok(ANY_OBJECT), **_err(401)}}},
        f"/v1/{name}/{{name}}": {
            "parameters": [item_path],
            "get": {"responses": {**_ok(ANY_OBJECT), **_err(401, 404)}},
            "put": {"parameters": [IF_MATCH], "requestBody": _body(schema),
                    "responses": {**_ok(WRITE), **_err(400, 401, 409, 413, 415)}},
            "delete": {"parameters": [IF_MATCH],
                       "responses": {**_ok(WRITE), **_err(400, 401, 404, 409)}},
        },
    }


OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "vgw_ryu", "version": "1",
             "description": "Per-VM stateful firewall for Open vSwitch: desired state, "
                            "switches, stats, logs and trace."},
    "paths": {
        "/v1/health": {"get": {"responses": _ok({
            "type": "object", "required": ["status", "revision", "switches"],
            "properties": {"status": {"enum": ["ok"]}, "revision": {"type": "integer"},
                           "switches": {"type": "integer"}}})}},
        "/v1/switches": {"get": {"responses": {**_ok(ANY_OBJECT), **_err(401)}}},
        "/v1/state": {
            "get": {"responses": {**_ok(STATE), **_err(401)}},
            "put": {"parameters": [IF_MATCH], "requestBody": _body(STATE),
                    "responses": {**_ok(WRITE), **_err(400, 401, 409, 413, 415)}},
        },
        **_collection("vms", VM),
        **_collection("groups", GROUP),
        **_collection("policies", POLICY),
        "/v1/stats": {"get": {"responses": {**_ok(ANY_OBJECT), **_err(401)}}},
        "/v1/logs": {"get": {
            "parameters": [
                {"name": "vm", "in": "query", "schema": {"type": "string"}},
                {"name": "verdict", "in": "query", "schema": _enum(ACTIONS)},
                {"name": "since", "in": "query", "schema": {"type": "string"}},
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 10000}}],
            "responses": {**_ok({"type": "object", "required": ["logs"],
                                 "properties": {"logs": {"type": "array"}}}),
                          **_err(400, 401)}}},
        "/v1/trace": {"post": {
            "requestBody": _body({
                "type": "object", "required": ["vm", "direction", "peer_ip"],
                "additionalProperties": False,
                "properties": {"vm": {"type": "string"},
                               "direction": _enum(DIRECTIONS),
                               "peer_ip": {"type": "string"},
                               "protocol": _enum(PROTO_NUM),
                               "port": {"type": "integer"}}}),
            "responses": {**_ok(ANY_OBJECT), **_err(400, 401, 404, 413, 415)}}},
        "/v1/openapi.json": {"get": {"responses": _ok(ANY_OBJECT)}},
    },
}
