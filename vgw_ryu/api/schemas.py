"""JSON schemas (OpenAPI 3.0) of the state document, built from the model's own
constants so the API description cannot drift from validation. No Ryu here."""

from __future__ import annotations

from typing import Any

from vgw_ryu.api.openapi_safe import VIOLATIONS
from vgw_ryu.policy.model import (
    ACTIONS,
    DEFAULT_VERDICTS,
    DIRECTIONS,
    LOG_LEVELS,
    MAX_TIERS,
    NAME_RE,
    PROTOCOLS,
    RULE_ACTIONS,
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
                                            "field": {"type": "string", "nullable": True},
                                            "violations": {
                                                **VIOLATIONS,
                                                "description": "409 assertion_failed: the "
                                                "connectivity assertions the write would "
                                                "break"}}}},
}
LABELS = {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63}}
LIMIT = {"type": "integer", "minimum": 0, "maximum": MAX_CONNECTIONS}
VM = {
    "type": "object", "additionalProperties": False,
    "properties": {"mac": {"type": "string"}, "ips": {"type": "array", "items": {"type": "string"}},
                   "labels": LABELS, "protected": {"type": "boolean"},
                   "max_connections": LIMIT, "log": _enum(LOG_LEVELS),
                   "address_pairs": {"type": "array", "items": {
                       "type": "object", "additionalProperties": False, "required": ["ip"],
                       "properties": {"ip": {"type": "string"}, "mac": {"type": "string"}}}}},
}
GROUP = {
    "type": "object", "additionalProperties": False,
    "properties": {"match_labels": LABELS, "members": {"type": "array", "items": NAME},
                   "cidrs": {"type": "array", "items": {"type": "string"}},
                   "except": {"type": "array", "items": {"type": "string"}},
                   "protected": {"type": "boolean"}},
}
PORTS = {"oneOf": [{"type": "string"}, {"type": "integer"},
                   {"type": "array", "items": {"oneOf": [{"type": "string"},
                                                         {"type": "integer"}]}}]}
BYTE = {"type": "integer", "minimum": 0, "maximum": 255}
RULE = {
    "type": "object", "additionalProperties": False, "required": ["id", "direction", "action"],
    "properties": {
        "id": NAME, "direction": _enum(DIRECTIONS),
        "action": _enum(RULE_ACTIONS),
        "protocol": {"oneOf": [_enum(PROTOCOLS), BYTE,
                               {"type": "string", "pattern": "^[0-9]{1,3}$"}]},
        "ports": PORTS, "src_ports": PORTS, "icmp_type": BYTE, "icmp_code": BYTE,
        "peer": {"type": "string"}, "priority": {"type": "integer", "minimum": 1,
                                                  "maximum": 1000},
        "log": {"type": "boolean"}, "stateful": {"type": "boolean"},
    },
}
POLICY = {
    "type": "object", "additionalProperties": False,
    "properties": {"applied_to": {"type": "array", "items": {"type": "string"}},
                   "rules": {"type": "array", "items": RULE}, "tier": NAME},
}
SETTINGS = {
    "type": "object", "additionalProperties": False,
    "properties": {"default_ingress": _enum(DEFAULT_VERDICTS),
                   "default_egress": _enum(DEFAULT_VERDICTS),
                   "log_default_deny": {"type": "boolean"},
                   "unknown_ports": _enum(UNKNOWN_PORT_ACTIONS),
                   "uplinks": {"type": "array", "items": {"type": "string"}},
                   "max_connections": LIMIT, "log": _enum(LOG_LEVELS),
                   "tiers": {"type": "array", "items": NAME, "minItems": 1,
                             "maxItems": MAX_TIERS},
                   "default_tier": {**NAME, "nullable": True},
                   "default_protected": {"type": "boolean"},
                   "portgroups": {
                       "type": "array",
                       "description": "protection by where a VM's port is: a bridge, a "
                                      "VLAN tag (OVSDB Port.tag) or both; below the VM's "
                                      "own setting and its groups'",
                       "items": {"type": "object", "additionalProperties": False,
                                 "properties": {
                                     "bridge": {"type": "string", "minLength": 1,
                                                "maxLength": 64},
                                     "vlan": {"type": "integer", "minimum": 0,
                                              "maximum": 4095},
                                     "protected": {"type": "boolean"}}}}},
}
EXPECTATION = {
    "type": "object", "additionalProperties": False, "required": ["from", "to", "verdict"],
    "properties": {"from": {"type": "string"}, "to": {"type": "string"},
                   "protocol": _enum(("tcp", "udp", "icmp", "icmpv6")),
                   "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                   "verdict": _enum(ACTIONS)},
}
STATE = {
    "type": "object", "additionalProperties": False,
    "properties": {"settings": SETTINGS,
                   "expectations": {"type": "array", "items": EXPECTATION},
                   "vms": {"type": "object", "additionalProperties": VM},
                   "groups": {"type": "object", "additionalProperties": GROUP},
                   "policies": {"type": "object", "additionalProperties": POLICY},
                   "revision": {"type": "integer"}},
}
