"""Objects back to documents: the canonical JSON/YAML form the API serves and diffs.

``parse_state(state_doc(s)) == s``; GET answers, ``vgwctl apply --dry-run`` and the
store all use these. No Ryu here.
"""

from __future__ import annotations

from typing import Any

from vgw_ryu.policy.objects import Group, Policy, Rule, Settings, State, Vm


def settings_doc(s: Settings) -> dict[str, Any]:
    return {"default_ingress": s.default_ingress, "default_egress": s.default_egress,
            "log_default_deny": s.log_default_deny, "unknown_ports": s.unknown_ports,
            "uplinks": list(s.uplinks), "max_connections": s.max_connections, "log": s.log,
            "tiers": list(s.tiers), "default_tier": s.default_tier,
            "default_protected": s.default_protected,
            "portgroups": [{**({"bridge": pg.bridge} if pg.bridge is not None else {}),
                            **({"vlan": pg.vlan} if pg.vlan is not None else {}),
                            "protected": pg.protected} for pg in s.portgroups]}


def vm_doc(vm: Vm) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if vm.mac is not None:
        d["mac"] = vm.mac
    d["ips"] = [str(i) for i in vm.ips]
    d["labels"] = dict(vm.labels)
    if vm.protected_set is not None:
        d["protected"] = vm.protected_set
    if vm.max_connections is not None:
        d["max_connections"] = vm.max_connections
    if vm.log is not None:
        d["log"] = vm.log
    if vm.address_pairs:
        d["address_pairs"] = [
            {"ip": str(a.net.network_address) if a.net.num_addresses == 1 else str(a.net),
             **({"mac": a.mac} if a.mac else {})} for a in vm.address_pairs]
    return d


def group_doc(g: Group) -> dict[str, Any]:
    return {"match_labels": dict(g.match_labels), "members": list(g.members),
            "cidrs": [str(c) for c in g.cidrs],
            **({"except": [str(c) for c in g.excepts]} if g.excepts else {}),
            **({"protected": g.protected} if g.protected is not None else {})}


def rule_doc(r: Rule) -> dict[str, Any]:
    d: dict[str, Any] = {"id": r.id, "direction": r.direction, "action": r.action,
                         "protocol": r.protocol}
    if r.ports:
        d["ports"] = r.ports_text()
    if r.src_ports:
        d["src_ports"] = r.ports_text(r.src_ports)
    for key in ("icmp_type", "icmp_code"):
        if getattr(r, key) is not None:
            d[key] = getattr(r, key)
    d.update({"peer": str(r.peer), "priority": r.priority, "log": r.log})
    if not r.stateful:
        d["stateful"] = False
    return d


def policy_doc(p: Policy) -> dict[str, Any]:
    return {"applied_to": list(p.applied_to), "rules": [rule_doc(r) for r in p.rules],
            **({"tier": p.tier} if p.tier is not None else {})}


def state_doc(s: State) -> dict[str, Any]:
    """The canonical document of a state (parse_state(state_doc(s)) == s)."""
    return {"settings": settings_doc(s.settings),
            "vms": {n: vm_doc(v) for n, v in s.vms.items()},
            "groups": {n: group_doc(g) for n, g in s.groups.items()},
            "policies": {n: policy_doc(p) for n, p in s.policies.items()},
            **({"expectations": [e.doc() for e in s.expectations]} if s.expectations
               else {})}


_OBJECT_DOCS = {"vms": vm_doc, "groups": group_doc, "policies": policy_doc}


def object_doc(kind: str, obj: Vm | Group | Policy | None) -> dict[str, Any] | None:
    """The canonical document of one VM, group or policy (``kind`` is its section);
    None for None (an object that does not exist)."""
    return None if obj is None else _OBJECT_DOCS[kind](obj)


def objects_doc(state: State, touched: dict[str, set[str]]) -> dict[str, Any]:
    """Only the named objects' documents, by section (an absent name: deleted), as a
    store writes one object without the rest of the state."""
    return {kind: {n: _OBJECT_DOCS[kind](getattr(state, kind)[n]) for n in sorted(names)
                   if n in getattr(state, kind)}
            for kind, names in touched.items()}


def changed_objects(old: State, new: State) -> dict[str, set[str]] | None:
    """The VMs, groups and policies that differ between two states, by section (what
    a store must write), or None when settings or assertions differ too."""
    if new.settings != old.settings or new.expectations != old.expectations:
        return None
    out: dict[str, set[str]] = {}
    for kind in _OBJECT_DOCS:
        a, b = getattr(old, kind), getattr(new, kind)
        names = {n for n in a.keys() | b.keys() if a.get(n) != b.get(n)}
        if names:
            out[kind] = names
    return out


def replaced_names(old: dict[str, Any], new: dict[str, Any]) -> set[str]:
    """Names whose object differs by identity between two maps of one section, or that
    one map lacks: what a consumer keeping results per object must look at again
    (states share the objects a write did not touch)."""
    changed = {name for name, obj in new.items() if old.get(name) is not obj}
    if len(old) != len(new) - len(changed - old.keys()):
        changed.update(old.keys() - new.keys())
    return changed
