"""The desired state: settings, VMs, groups, policies and rules, parsed and validated.

One document shape serves the REST API (JSON), vgwctl and the labs (YAML): the
``settings``, ``vms``, ``groups`` and ``policies`` sections shown in the README's
"Policy" section. ``parse_state`` turns a document into immutable objects or raises
``ValidationError`` naming every bad field by its path, e.g.
``policies.web-in.rules[1].ports: 70000 is not a port (1-65535)``.

This module is the policy model's one import point; the code lives in
``objects`` (names, enums, protocol numbers, dataclasses), ``fields`` and ``parse``
(validation) and ``docs`` (objects back to documents). No Ryu here.
"""

from __future__ import annotations

from vgw_ryu.policy.checks import check_references
from vgw_ryu.policy.docs import (
    changed_objects,
    group_doc,
    object_doc,
    objects_doc,
    policy_doc,
    rule_doc,
    settings_doc,
    state_doc,
    vm_doc,
)
from vgw_ryu.policy.edits import parse_object, remove_object, replace_object
from vgw_ryu.policy.fields import parse_ip, parse_net, parse_ports
from vgw_ryu.policy.objects import (
    ACTIONS,
    DEFAULT_VERDICTS,
    DIRECTIONS,
    ICMP_PROTOCOLS,
    LABEL_RE,
    LOG_LEVELS,
    MAC_RE,
    MAX_TIERS,
    NAME_RE,
    PORT_PROTOCOLS,
    PROTO_NAME,
    PROTO_NUM,
    PROTOCOLS,
    RULE_ACTIONS,
    UNKNOWN_PORT_ACTIONS,
    FieldError,
    Group,
    IpAddr,
    IpNet,
    Peer,
    Policy,
    Rule,
    Settings,
    State,
    ValidationError,
    Vm,
    proto_number,
)
from vgw_ryu.policy.parse import (
    STATE_KEYS,
    parse_group,
    parse_policy,
    parse_state,
    parse_vm,
)
from vgw_ryu.policy.rule_parse import RULE_KEYS

__all__ = [
    "ACTIONS",
    "DEFAULT_VERDICTS",
    "DIRECTIONS",
    "ICMP_PROTOCOLS",
    "LABEL_RE",
    "LOG_LEVELS",
    "MAC_RE",
    "MAX_TIERS",
    "NAME_RE",
    "PORT_PROTOCOLS",
    "PROTOCOLS",
    "PROTO_NAME",
    "PROTO_NUM",
    "RULE_ACTIONS",
    "RULE_KEYS",
    "STATE_KEYS",
    "UNKNOWN_PORT_ACTIONS",
    "FieldError",
    "Group",
    "IpAddr",
    "IpNet",
    "Peer",
    "Policy",
    "Rule",
    "Settings",
    "State",
    "ValidationError",
    "Vm",
    "changed_objects",
    "check_references",
    "group_doc",
    "object_doc",
    "objects_doc",
    "parse_group",
    "parse_ip",
    "parse_net",
    "parse_object",
    "parse_policy",
    "parse_ports",
    "parse_state",
    "parse_vm",
    "policy_doc",
    "proto_number",
    "remove_object",
    "replace_object",
    "rule_doc",
    "settings_doc",
    "state_doc",
    "vm_doc",
]
