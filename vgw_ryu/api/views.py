"""How the API shows VMs, groups and policies, and what refers to them. No Ryu here."""

from __future__ import annotations

from typing import Any

from vgw_ryu.policy import model
from vgw_ryu.policy.model import State
from vgw_ryu.policy.ruleset import applied_vms, connection_limit, group_members
from vgw_ryu.runtime.snapshot import Snapshot

KINDS = {"vms": "vm", "groups": "group", "policies": "policy"}

# JSON schemas (OpenAPI 3.0) of what object_view adds to each kind's declared fields;
# vgw_ryu.api.openapi builds the GET answers from these, and the unit tests check that
# object_view produces exactly these keys.
_STR_LIST = {"type": "array", "items": {"type": "string"}}
SEEN = {"type": "object", "additionalProperties": False,
        "required": ["switch", "ofport", "port", "zone"],
        "properties": {"switch": {"type": "string"}, "ofport": {"type": "integer"},
                       "port": {"type": "string"},
                       "zone": {"type": "integer", "nullable": True}}}
VIEW_FIELDS: dict[str, dict[str, Any]] = {
    "vms": {
        "protection": {"type": "object", "additionalProperties": False,
                       "required": ["protected", "by"],
                       "properties": {"protected": {"type": "boolean"},
                                      "by": {"type": "string",
                                             "description": "vm, group, portgroup or default"}}},
        "zone": {"type": "integer", "nullable": True},
        "seen": {"type": "array", "items": SEEN},
        "connections": {"type": "object", "additionalProperties": False,
                        "required": ["limit", "count"],
                        "properties": {"limit": {"type": "integer", "nullable": True},
                                       "count": {"type": "integer", "nullable": True}}},
    },
    "groups": {
        "resolved": {"type": "object", "additionalProperties": False,
                     "required": ["vms", "addresses"],
                     "properties": {"vms": _STR_LIST, "addresses": _STR_LIST}},
    },
    "policies": {"applies_to_vms": _STR_LIST},
}
# What GET adds is read-only: PUT accepts it back and ignores it (revision: see handlers).
READ_ONLY = ("name", "revision", *(k for fields in VIEW_FIELDS.values() for k in fields))


def object_view(snap: Snapshot, coll: str, name: str,
                locations: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """One object as GET shows it, with what the controller adds (read-only fields).

    ``locations`` (snap.vm_locations()) may be passed in when showing many VMs.
    """
    st = snap.state
    if coll == "vms":
        vm = st.vms[name]
        zone = snap.ids.zone(name) if vm.protected else None
        where = snap.vm_locations() if locations is None else locations
        limit = connection_limit(st, name) if vm.protected else 0
        by = vm.protected_by
        return {"name": name, **model.vm_doc(vm),
                "protection": {"protected": vm.protected, "by": by}, "zone": zone,
                "seen": where.get(name, []),
                "connections": {"limit": limit or None, "count": None}}
    if coll == "groups":
        g = st.groups[name]
        members = group_members(st, name)
        addrs = sorted({str(ip) for m in members for ip in st.vms[m].ips}
                       | {str(c) for c in g.cidrs})
        return {"name": name, **model.group_doc(g),
                "resolved": {"vms": members, "addresses": addrs}}
    pol = st.policies[name]
    return {"name": name, **model.policy_doc(pol), "applies_to_vms": applied_vms(st, name)}


def references(st: State, coll: str, name: str) -> list[str]:
    """Where an object is referred to (group members, applied_to, rule peers,
    connectivity assertions)."""
    refs = []
    target = f"{KINDS[coll]}:{name}"
    if coll == "vms":
        refs += [f"groups.{g}.members" for g, grp in st.groups.items() if name in grp.members]
    for pname, pol in st.policies.items():
        if target in pol.applied_to:
            refs.append(f"policies.{pname}.applied_to")
        for i, r in enumerate(pol.rules):
            if str(r.peer) == target:
                refs.append(f"policies.{pname}.rules[{i}].peer")
    for i, e in enumerate(st.expectations):
        for key, end in (("from", e.src), ("to", e.dst)):
            if end.kind == KINDS[coll] and end.value == name:
                refs.append(f"expectations[{i}].{key}")
    return refs
