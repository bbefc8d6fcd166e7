"""OpenAPI 3 description of the /v1 API, served at GET /v1/openapi.json.

Kept next to the handlers' contract; the fuzz test in tests/sandbox/test_api.py drives
the running app from this document and requires no 5xx and no answer outside it. The
enums and the name pattern come from the policy model's constants, and the read-only
fields of the object views from vgw_ryu.api.views, so the document, the validation and
the answers cannot disagree. Every operation has an operationId and a summary; every
answer (2xx and 4xx) a schema. Schemas are inline and also listed under
components/schemas.
"""

from __future__ import annotations

from typing import Any

from vgw_ryu.api.openapi_safe import FORCED, IMPACT, PREVIEW, VIOLATION, WRITE_PARAMS
from vgw_ryu.api.openapi_safe import or_preview as _or_preview
from vgw_ryu.api.schemas import (
    ERROR,
    GROUP,
    NAME,
    POLICY,
    RULE,
    SETTINGS,
    STATE,
    VM,
    _enum,
)
from vgw_ryu.api.views import VIEW_FIELDS
from vgw_ryu.policy.model import (
    ACTIONS,
    DIRECTIONS,
    PROTO_NUM,
)

REVISION = {"type": "integer", "minimum": 0}
ANY_OBJECT = {"type": "object"}
WARNINGS = {"type": "array", "description": "rule analysis of the resulting state: shadowed, "
            "overlapping or never-matching rules, policies applied to no VM",
            "items": {"type": "object", "additionalProperties": False,
                      "required": ["code", "message", "field"],
                      "properties": {"code": _enum(("shadowed", "overlap", "never_matches",
                                                    "applies_to_nothing")),
                                     "message": {"type": "string"},
                                     "field": {"type": "string"}}}}
STATE_WRITE = {"type": "object", "additionalProperties": False, "required": ["revision"],
               "properties": {"revision": REVISION,
                              "changed": {"type": "boolean", "enum": [False]},
                              "violations": FORCED, "warnings": WARNINGS}}
OBJECT_WRITE = {"type": "object", "additionalProperties": False,
                "required": ["revision", "created", "name"],
                "properties": {**STATE_WRITE["properties"], "created": {"type": "boolean"},
                               "name": NAME}}
DELETED = {"type": "object", "additionalProperties": False,
           "required": ["revision", "deleted"],
           "properties": {"revision": REVISION, "deleted": NAME, "violations": FORCED,
                          "warnings": WARNINGS}}
DECLARED = {"vms": VM, "groups": GROUP, "policies": POLICY}


def _view(coll: str, with_revision: bool) -> dict[str, Any]:
    """What GET shows of one object: its declared fields plus the views' read-only ones."""
    props = {"name": NAME, **DECLARED[coll]["properties"], **VIEW_FIELDS[coll]}
    required = ["name", *VIEW_FIELDS[coll]]
    if with_revision:
        props["revision"] = REVISION
        required.append("revision")
    return {"type": "object", "additionalProperties": False, "required": required,
            "properties": props}


VIEWS = {coll: _view(coll, True) for coll in DECLARED}


def _keyed(coll: str) -> dict[str, Any]:
    """A collection: objects keyed by name, and the revision."""
    return {"type": "object", "additionalProperties": False, "required": [coll, "revision"],
            "properties": {coll: {"type": "object",
                                  "additionalProperties": _view(coll, False)},
                           "revision": REVISION}}


NULL_STR = {"type": "string", "nullable": True}
PORT = {"type": "object", "required": ["ofport", "name", "kind", "vm"],
        "properties": {"ofport": {"type": "integer"}, "name": {"type": "string"},
                       "kind": _enum(("vm", "uplink", "unknown")), "vm": NULL_STR,
                       "vm_id": NULL_STR,
                       "problems": {"type": "array", "items": ANY_OBJECT}}}
SWITCH = {"type": "object",
          "required": ["dpid", "of_version", "applied_revision", "flows", "vm_ports",
                       "uplinks", "unknown_ports"],
          "properties": {"dpid": {"type": "string"}, "bridge": NULL_STR,
                         "of_version": {"type": "integer"},
                         "applied_revision": {"type": "integer", "nullable": True},
                         "flows": {"type": "integer"},
                         "vm_ports": {"type": "array", "items": PORT},
                         "uplinks": {"type": "array", "items": PORT},
                         "unknown_ports": {"type": "array", "items": PORT}}}
AGENT = {"type": "object",
         "required": ["name", "hostname", "applied_revision", "in_sync", "bridges",
                      "vm_ports", "unknown_ports", "heartbeat_age", "stale", "version"],
         "properties": {
             "name": {"type": "string"}, "hostname": {"type": "string"},
             "applied_revision": {"type": "integer",
                                  "description": "oldest revision its switches run; -1 "
                                                 "while one has none yet"},
             "in_sync": {"type": "boolean"},
             "bridges": {"type": "object", "additionalProperties": {"type": "string"},
                         "description": "bridge name -> datapath id"},
             "vm_ports": {"type": "object", "additionalProperties": {"type": "string"},
                          "description": "VM -> bridge:port"},
             "unknown_ports": {"type": "array", "items": {"type": "string"}},
             "heartbeat_age": {"type": "number", "description": "seconds"},
             "stale": {"type": "boolean", "description": "no report for 15 s"},
             "version": {"type": "string"}}}
SWITCHES = {"type": "object", "required": ["switches", "revision"],
            "properties": {"switches": {"type": "array", "items": SWITCH},
                           "agents": {"type": "array", "items": AGENT,
                                      "description": "every agent's report in the policy "
                                                     "database (Chassis rows)"},
                           "wait": {"type": "object",
                                    "required": ["revision", "applied", "seconds",
                                                 "of", "checked"],
                                    "description": "with wait_revision: what the wait saw",
                                    "properties": {
                                        "revision": {"type": "integer"},
                                        "applied": {"type": "boolean",
                                                    "description": "every switch (API "
                                                    "server: every live agent) runs it"},
                                        "seconds": {"type": "number"},
                                        "of": _enum(("switches", "agents")),
                                        "checked": {"type": "integer", "description":
                                                    "switches (agents) looked at; 0: "
                                                    "the revision runs nowhere yet"}}},
                           "revision": REVISION}}
WAIT_PARAMS = [
    {"name": "wait_revision", "in": "query", "schema": {"type": "integer", "minimum": 0},
     "description": "answer once every switch runs this revision or a later one (an API "
                    "server: every live agent), or when timeout passed; see wait.applied"},
    {"name": "timeout", "in": "query",
     "schema": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 300,
                "default": 30},
     "description": "seconds to wait at most"}]
COUNTER = {"type": "object", "properties": {
    "sessions": {"type": "integer",
                 "description": "connection decisions: new connections the rule judged"},
    "packets": {"type": "integer", "description": "every packet the rule judged"},
    "bytes": {"type": "integer", "description": "the bytes of those packets"}}}
STATS = {"type": "object", "required": ["policies", "revision"],
         "properties": {
             "policies": {"type": "object", "additionalProperties": {
                 "type": "object", "properties": {"rules": {
                     "type": "object", "additionalProperties": COUNTER}}}},
             "defaults": {"type": "object", "additionalProperties": COUNTER},
             "punts_suppressed": {"type": "object",
                                  "additionalProperties": {"type": "integer"}},
             "note": {"type": "string"}, "packet_ins": {"type": "integer"},
             "switches": {"type": "integer"}, "revision": REVISION}}
LOG_RECORD = {"type": "object",
              "properties": {"ts": {"type": "number"}, "time": {"type": "string"},
                             "verdict": {"type": "string"}, "vm": NULL_STR,
                             "count": {"type": "integer"}}}
LOGS = {"type": "object", "required": ["logs", "revision"],
        "properties": {"logs": {"type": "array", "items": LOG_RECORD}, "revision": REVISION}}
PORT_NUM = {"type": "integer", "nullable": True}
CONNECTION = {
    "type": "object",
    "required": ["protocol", "direction", "src", "dst", "state", "blocked", "rule"],
    "properties": {
        "protocol": {"type": "string"},
        "direction": {**_enum(DIRECTIONS), "description": "relative to the VM"},
        "src": {"type": "string"}, "dst": {"type": "string"},
        "sport": PORT_NUM, "dport": PORT_NUM,
        "type": {**PORT_NUM, "description": "ICMP type"},
        "code": {**PORT_NUM, "description": "ICMP code"},
        "id": {**PORT_NUM, "description": "ICMP id"},
        "state": {"type": "string"}, "blocked": {"type": "boolean"},
        "rule": {**NULL_STR, "description": '"policy/id", "default", or null'},
        "timeout": {**PORT_NUM, "description": "seconds left"}}}
CONNECTIONS = {
    "type": "object",
    "required": ["vm", "zone", "connections", "total", "truncated", "revision"],
    "properties": {"vm": NAME, "zone": {"type": "integer", "nullable": True},
                   "connections": {"type": "array", "items": CONNECTION},
                   "total": {"type": "integer", "description": "matching the filters"},
                   "truncated": {"type": "boolean",
                                 "description": "more matched than limit"},
                   "revision": REVISION}}
CONN_PARAMS = [
    {"name": "peer", "in": "query", "schema": {"type": "string"},
     "description": "only connections with this address at the other end"},
    {"name": "port", "in": "query",
     "schema": {"type": "integer", "minimum": 1, "maximum": 65535},
     "description": "only connections with this source or destination port"},
    {"name": "rule", "in": "query", "schema": {"type": "string"},
     "description": "only connections decided by this rule: POLICY/RULE_ID or default"},
    {"name": "limit", "in": "query",
     "schema": {"type": "integer", "minimum": 1, "maximum": 10000},
     "description": "at most this many (default 1000)"}]
HEALTH = {"type": "object", "required": ["status", "revision", "switches"],
          "properties": {"status": {"enum": ["ok", "degraded"]}, "revision": REVISION,
                         "switches": {"type": "integer"},
                         "database": {"type": "object",
                                      "required": ["remote", "connected", "member",
                                                   "revision"],
                                      "properties": {
                                          "remote": {"type": "string"},
                                          "connected": {"type": "boolean"},
                                          "member": NULL_STR,
                                          "revision": REVISION}}}}
TRACE_REQUEST = {
    "type": "object", "required": ["vm", "direction", "peer_ip"],
    "additionalProperties": False,
    "properties": {"vm": {"type": "string"}, "direction": _enum(DIRECTIONS),
                   "peer_ip": {"type": "string"}, "protocol": _enum(PROTO_NUM),
                   "port": {"type": "integer"}}}
TRACE = {
    "type": "object",
    "required": ["vm", "direction", "peer_ip", "protocol", "port", "model", "datapath"],
    "properties": {
        "vm": NAME, "direction": _enum(DIRECTIONS), "peer_ip": {"type": "string"},
        "protocol": _enum(PROTO_NUM), "port": {"type": "integer", "nullable": True},
        "model": {"type": "object", "required": ["verdict"],
                  "properties": {"verdict": _enum(ACTIONS), "policy": NULL_STR,
                                 "rule": NULL_STR, "log": {"type": "boolean"},
                                 "default": {"type": "boolean"},
                                 "unprotected": {"type": "boolean"}}},
        "datapath": {"type": "object", "nullable": True,
                     "description": "ofproto/trace on the VM's switch; null when the VM "
                                    "is on no local switch; {error} when it failed"}}}
STATE_VIEW = {**STATE, "required": ["settings", "vms", "groups", "policies", "revision"]}

READ = [{}, {"bearerAuth": []}]     # open on loopback; the token off loopback
WRITE = [{"bearerAuth": []}]        # the token whenever one is configured
ETAG = {"ETag": {"description": 'the revision read, quoted: "<revision>"',
                 "schema": {"type": "string"}}}
REQUEST_ID = {"name": "X-Request-Id", "in": "header", "required": False,
              "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"},
              "description": "a client's id for this write: resent after a timeout or a "
                             "503, a write that did commit is not applied twice"}
IF_MATCH = {"name": "If-Match", "in": "header", "required": False,
            "schema": {"type": "string"},
            "description": "write only if this is the current revision (409 if not); a "
                           "`revision` in the body does the same"}
ERRORS = {400: "invalid input (error.field names it)", 401: "missing or wrong token",
          404: "no such path or object", 409: "stale revision, or still referenced",
          "w409": "stale revision, still referenced, or (code assertion_failed, field "
                  "expectations, error.violations) the resulting state would break "
                  "connectivity assertions and force=true was not sent; or (code "
                  "out_of_zones) the controller's conntrack zone range is full",
          413: "body over 1 MiB", 415: "body is not application/json",
          503: "not available on this controller now, or (writes) the policy database did "
               "not commit in time (code unavailable; retry with the same X-Request-Id)"}


def _err(*codes: int, **described: str) -> dict[str, Any]:
    """Error answers; ``described`` overrides a description: ``e409="..."``."""
    if "e409" not in described and described.pop("write", False):
        described["e409"] = ERRORS["w409"]
    described.pop("write", None)
    return {str(c): {"description": described.get(f"e{c}", ERRORS[c]),
                     "content": {"application/json": {"schema": ERROR}}} for c in codes}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _op(op_id: str, summary: str, ok: dict[str, Any], errors: tuple[int, ...],
        write: bool = False, etag: bool = True, described: dict[str, str] | None = None,
        **extra: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": "ok",
                              "content": {"application/json": {"schema": ok}}}
    if etag and not write:
        answer["headers"] = ETAG
    return {"operationId": op_id, "summary": summary, "security": WRITE if write else READ,
            **extra, "responses": {"200": answer, **_err(*errors, write=write,
                                                         **(described or {}))}}


def _metrics(op_id: str) -> dict[str, Any]:
    """GET /metrics: Prometheus text, not JSON."""
    return {"get": {
        "operationId": op_id, "summary": "Prometheus metrics (text exposition format)",
        "security": READ,
        "responses": {"200": {"description": "the text exposition format 0.0.4",
                              "content": {"text/plain": {"schema": {"type": "string"}}}},
                      **_err(401, 503)}}}


def _collection(coll: str) -> dict[str, Any]:
    kind = {"vms": "Vm", "groups": "Group", "policies": "Policy"}[coll]
    item_path = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        f"/v1/{coll}": {"get": _op(f"list{coll.capitalize()}",
                                   f"All {coll}, keyed by name, with the revision",
                                   _keyed(coll), (401,))},
        f"/v1/{coll}/{{name}}": {
            "parameters": [item_path],
            "get": _op(f"get{kind}", f"One {kind.lower()} with what the controller adds",
                       VIEWS[coll], (401, 404)),
            "put": _op(f"put{kind}", f"Create or replace a {kind.lower()} (or preview it)",
                       _or_preview(OBJECT_WRITE), (400, 401, 409, 413, 415, 503),
                       write=True, parameters=[IF_MATCH, REQUEST_ID, *WRITE_PARAMS],
                       requestBody=_body(DECLARED[coll])),
            "delete": _op(f"delete{kind}", f"Delete a {kind.lower()} nothing refers to "
                          "(or preview it)", _or_preview(DELETED), (400, 401, 404, 409, 503),
                          write=True, parameters=[IF_MATCH, REQUEST_ID, *WRITE_PARAMS]),
        },
    }


LOG_PARAMS = [
    {"name": "vm", "in": "query", "schema": {"type": "string"}},
    {"name": "verdict", "in": "query", "schema": _enum(ACTIONS)},
    {"name": "since", "in": "query", "schema": {"type": "string"},
     "description": "records at or after: a UNIX time (1714557600.5) or an ISO 8601 time "
                    "(vgwctl also takes 30s, 5m, 2h, 1d)"},
    {"name": "limit", "in": "query",
     "schema": {"type": "integer", "minimum": 1, "maximum": 10000}}]

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "vgw_ryu", "version": "1",
             "description": "Per-VM stateful firewall for Open vSwitch: desired state, "
                            "switches, stats, logs and trace. Every read answers with the "
                            "`revision` it was read at (also as ETag); every write with "
                            "the revision it committed, or `\"changed\": false` and the "
                            "current revision when it changed nothing."},
    "components": {
        "securitySchemes": {"bearerAuth": {
            "type": "http", "scheme": "bearer",
            "description": "--vgw-token: needed for writes, and for reads off loopback"}},
        "schemas": {"Agent": AGENT, "Error": ERROR, "State": STATE, "Settings": SETTINGS, "Vm": VM,
                    "Group": GROUP, "Policy": POLICY, "Rule": RULE,
                    "VmView": VIEWS["vms"], "GroupView": VIEWS["groups"],
                    "PolicyView": VIEWS["policies"], "StateWrite": STATE_WRITE,
                    "ObjectWrite": OBJECT_WRITE, "Deleted": DELETED, "Switch": SWITCH,
                    "Stats": STATS, "Connection": CONNECTION,
                    "Connections": CONNECTIONS, "LogRecord": LOG_RECORD, "Trace": TRACE,
                    "TraceRequest": TRACE_REQUEST, "Health": HEALTH,
                    "Preview": PREVIEW, "Impact": IMPACT, "Violation": VIOLATION},
    },
    "paths": {
        "/v1/health": {"get": _op("getHealth", "Liveness, revision and switch count",
                                  HEALTH, (401,), etag=False)},
        "/v1/switches": {"get": _op("listSwitches", "Connected switches and their ports "
                                    "(or, with wait_revision, once they run a revision)",
                                    SWITCHES, (400, 401), parameters=WAIT_PARAMS)},
        "/v1/state": {
            "get": _op("getState", "The whole desired state and its revision", STATE_VIEW,
                       (401,)),
            "put": _op("putState", "Replace the whole desired state atomically (or "
                       "preview it)", _or_preview(STATE_WRITE), (400, 401, 409, 413, 415, 503),
                       write=True, parameters=[IF_MATCH, REQUEST_ID, *WRITE_PARAMS],
                       requestBody=_body(STATE)),
        },
        **_collection("vms"),
        **_collection("groups"),
        **_collection("policies"),
        "/v1/vms/{name}/connections": {
            "parameters": [{"name": "name", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "get": _op("listVmConnections", "A VM's live connections (its connection "
                       "table), filtered", CONNECTIONS, (400, 401, 404, 409, 503),
                       parameters=CONN_PARAMS,
                       described={"e400": "bad peer, port, rule or limit (error.field)",
                                  "e409": "the VM is unprotected: no connection table "
                                          "(code unprotected)",
                                  "e503": "the VM's connection table cannot be read here: "
                                          "on no local switch (code unavailable)"})},
        "/v1/stats": {"get": _op("getStats", "Per policy and rule counters: sessions "
                                 "(connection decisions), packets and bytes judged", STATS,
                                 (401,))},
        "/v1/logs": {"get": _op("listLogs", "Recent firewall log records, newest last", LOGS,
                                (400, 401), parameters=LOG_PARAMS)},
        "/v1/trace": {"post": _op("trace", "Which rule decides a connection (read-only)",
                                  TRACE, (400, 401, 404, 413, 415),
                                  requestBody=_body(TRACE_REQUEST), etag=False)},
        "/v1/openapi.json": {"get": _op("getOpenApi", "This document", ANY_OBJECT, (401,),
                                        etag=False)},
        "/v1/metrics": _metrics("getMetricsV1"),
        "/metrics": _metrics("getMetrics"),
    },
}
