"""OpenAPI schemas of safe changes: the ``preview`` and ``force`` parameters of the
writes, the impact preview answer and the violated connectivity assertions (the
``assertion_failed`` 409 and a forced write's answer). vgw_ryu.api.openapi puts them on
the write operations; vgw_ryu.api.safe produces them.
"""

from __future__ import annotations

from typing import Any

from vgw_ryu.policy.model import ACTIONS, DIRECTIONS


def _enum(values: Any) -> dict[str, Any]:
    return {"enum": list(values)}


REVISION = {"type": "integer", "minimum": 0}
VIOLATION = {
    "type": "object",
    "required": ["expectation", "from", "to", "protocol", "verdict", "pair", "got",
                 "decided_by"],
    "properties": {"expectation": {"type": "integer", "minimum": 0,
                                   "description": "index in the state's expectations"},
                   "from": {"type": "string"}, "to": {"type": "string"},
                   "protocol": {"type": "string"},
                   "port": {"type": "integer", "nullable": True},
                   "verdict": {**_enum(ACTIONS), "description": "what must hold"},
                   "pair": {"type": "array", "items": {"type": "string"},
                            "description": "[source, destination]: the VMs or addresses "
                                           "judged"},
                   "got": {**_enum(ACTIONS), "description": "what the state decides"},
                   "decided_by": {"type": "string",
                                  "description": "VM, direction and deciding rule"}}}
VIOLATIONS = {"type": "array", "items": VIOLATION}
FORCED = {**VIOLATIONS, "description": "the connectivity assertions a forced write "
                                       "broke (force=true); absent when none"}
_ANY_STR = {"type": "string", "nullable": True}
_ANY_PORT = {"oneOf": [{"type": "integer"}, {"type": "string"}], "nullable": True}
CUT = {"type": "object", "required": ["vm", "direction", "protocol", "src", "dst",
                                      "rule_now", "verdict_after", "rule_after"],
       "properties": {"vm": {"type": "string"}, "direction": _enum(DIRECTIONS),
                      "protocol": {"type": "string"}, "src": {"type": "string"},
                      "dst": {"type": "string"}, "sport": _ANY_PORT, "dport": _ANY_PORT,
                      "state": _ANY_STR, "rule_now": {"type": "string"},
                      "verdict_after": _enum(ACTIONS), "rule_after": {"type": "string"}}}
ALLOWED = {"type": "object", "required": ["vm", "direction", "protocol", "peer",
                                          "allowed_by", "records"],
           "properties": {"vm": {"type": "string"}, "direction": _enum(DIRECTIONS),
                          "protocol": {"type": "string"}, "peer": {"type": "string"},
                          "port": _ANY_PORT, "denied_by": _ANY_STR,
                          "allowed_by": {"type": "string"},
                          "records": {"type": "integer"}}}
IMPACT = {
    "type": "object", "nullable": True,
    "description": "what the write would do to live traffic; null when the live "
                   "connections cannot be read here (impact_unavailable says why)",
    "required": ["connections_judged", "cut_total", "cut", "cut_truncated",
                 "newly_allowed_total", "newly_allowed", "newly_allowed_truncated"],
    "properties": {
        "connections_judged": {"type": "integer",
                               "description": "live connections of protected VMs judged"},
        "cut_total": {"type": "integer",
                      "description": "allowed now and denied or rejected after"},
        "cut": {"type": "array", "items": CUT}, "cut_truncated": {"type": "boolean"},
        "newly_allowed_total": {"type": "integer",
                                "description": "recent denials (firewall log) allowed "
                                               "after, deduplicated"},
        "newly_allowed": {"type": "array", "items": ALLOWED},
        "newly_allowed_truncated": {"type": "boolean"}}}
PREVIEW = {
    "type": "object", "additionalProperties": False,
    "required": ["preview", "revision", "changed", "impact", "violations"],
    "properties": {"preview": _enum(("impact",)),
                   "revision": {**REVISION, "description": "the current revision: nothing "
                                                          "was written"},
                   "changed": {"type": "boolean",
                               "description": "whether the write would change anything"},
                   "impact": IMPACT,
                   "impact_unavailable": {"type": "string"},
                   "violations": {**VIOLATIONS,
                                  "description": "the connectivity assertions the "
                                                 "resulting state would break"},
                   "warnings": {"type": "array", "items": {"type": "object"},
                                "description": "rule analysis of the resulting state"}}}


def or_preview(answer: dict[str, Any]) -> dict[str, Any]:
    """A write's 200 answer: what it did, or with ?preview=impact what it would do."""
    return {"type": "object", "oneOf": [answer, PREVIEW]}


WRITE_PARAMS = [
    {"name": "preview", "in": "query", "required": False, "schema": _enum(("impact",)),
     "description": "impact: validate the write as usual, change nothing, and answer what "
                    "it would do (live connections cut, recent denials allowed, "
                    "connectivity assertions broken)"},
    {"name": "force", "in": "query", "required": False,
     "schema": _enum(("true", "1", "false", "0")),
     "description": "true (or 1): apply the write even though it breaks connectivity "
                    "assertions (the answer lists them as violations)"}]
