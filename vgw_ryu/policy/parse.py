"""Parsing and validation: a desired-state document (or one object) to immutable objects.

``parse_state`` turns a whole document into a ``State`` or raises ``ValidationError``
naming every bad field by its path, e.g.
``policies.web-in.rules[1].ports: 70000 is not a port (1-65535)``. The checks across
objects are in vgw_ryu.policy.checks; one-object writes (``replace_object``,
``remove_object``, ``parse_object``) in vgw_ryu.policy.edits. No Ryu here.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import threading
from collections import OrderedDict
from typing import Any

from vgw_ryu.policy import expectations
from vgw_ryu.policy.checks import check_references
from vgw_ryu.policy.fields import (
    _bool,
    _choice,
    _Ctx,
    _join,
    _labels,
    _list,
    _name,
    _obj,
    _parsed_items,
    _typename,
    parse_ip,
    parse_net,
)
from vgw_ryu.policy.objects import (
    DEFAULT_VERDICTS,
    LOG_LEVELS,
    MAC_RE,
    MAX_TIERS,
    UNKNOWN_PORT_ACTIONS,
    AddressPair,
    Group,
    Policy,
    PortGroup,
    Settings,
    State,
    ValidationError,
    Vm,
)
from vgw_ryu.policy.rule_parse import _rule
from vgw_ryu.policy.ruleset import group_members

MAX_CONNECTIONS = 10_000_000


def _limit(ctx: _Ctx, path: str, v: Any) -> int | None:
    """A connection limit: 0 (none) up to MAX_CONNECTIONS, or None when absent."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_CONNECTIONS:
        ctx.err(path, f"{v!r} is not a connection limit (0 for none, up to {MAX_CONNECTIONS})")
        return None
    return v


def _settings(ctx: _Ctx, v: Any) -> Settings:
    d = _obj(ctx, "settings", v, ("default_ingress", "default_egress", "log_default_deny",
                                  "unknown_ports", "uplinks", "max_connections", "log",
                                  "tiers", "default_tier", "default_protected",
                                  "portgroups"))
    if d is None:
        return Settings()
    uplinks = []
    for i, p in enumerate(_list(ctx, "settings.uplinks", d.get("uplinks"))):
        if not isinstance(p, str) or not p or len(p) > 64:
            ctx.err(f"settings.uplinks[{i}]", "must be a port-name pattern like eth*")
        else:
            uplinks.append(p)
    return Settings(
        default_ingress=_choice(ctx, "settings.default_ingress", d.get("default_ingress"),
                                DEFAULT_VERDICTS, "deny"),
        default_egress=_choice(ctx, "settings.default_egress", d.get("default_egress"),
                               DEFAULT_VERDICTS, "allow"),
        log_default_deny=_bool(ctx, "settings.log_default_deny", d.get("log_default_deny"),
                               False),
        unknown_ports=_choice(ctx, "settings.unknown_ports", d.get("unknown_ports"),
                              UNKNOWN_PORT_ACTIONS, "drop"),
        uplinks=tuple(uplinks),
        max_connections=_limit(ctx, "settings.max_connections", d.get("max_connections")) or 0,
        log=_choice(ctx, "settings.log", d.get("log"), LOG_LEVELS, "none"),
        default_protected=_bool(ctx, "settings.default_protected", d.get("default_protected"),
                                True),
        portgroups=_portgroups(ctx, d.get("portgroups")),
        **_tiers(ctx, d.get("tiers"), d.get("default_tier")))


def _portgroups(ctx: _Ctx, v: Any) -> tuple[PortGroup, ...]:
    """settings.portgroups: [{bridge, vlan, protected}], each naming a bridge, a VLAN
    tag (OVSDB Port.tag) or both."""
    out = []
    for i, item in enumerate(_list(ctx, "settings.portgroups", v)):
        path = f"settings.portgroups[{i}]"
        d = _obj(ctx, path, item, ("bridge", "vlan", "protected"))
        if d is None:
            continue
        bridge, vlan = d.get("bridge"), d.get("vlan")
        if bridge is None and vlan is None:
            ctx.err(path, "must name a bridge, a vlan, or both")
            continue
        if bridge is not None and (not isinstance(bridge, str) or not 0 < len(bridge) <= 64):
            ctx.err(f"{path}.bridge", "must be a bridge name")
            continue
        if vlan is not None and (isinstance(vlan, bool) or not isinstance(vlan, int)
                                 or not 0 <= vlan <= 4095):
            ctx.err(f"{path}.vlan", "must be a VLAN tag, 0-4095")
            continue
        out.append(PortGroup(bridge, vlan, _bool(ctx, f"{path}.protected",
                                                 d.get("protected"), True)))
    return tuple(out)


def _tiers(ctx: _Ctx, tiers: Any, default: Any) -> dict[str, Any]:
    """settings.tiers (ordered names) and settings.default_tier."""
    out: dict[str, Any] = {}
    if tiers is not None:
        names = _list(ctx, "settings.tiers", tiers)
        ok = [t for i, t in enumerate(names) if _name(ctx, f"settings.tiers[{i}]", t)]
        if len(ok) == len(names):
            if not ok or len(ok) > MAX_TIERS or len(set(ok)) != len(ok):
                ctx.err("settings.tiers", f"must name 1 to {MAX_TIERS} distinct tiers, in "
                        "the order they are evaluated")
            else:
                out["tiers"] = tuple(ok)
    if default is not None:
        if default not in out.get("tiers", ("default",)):
            ctx.err("settings.default_tier", f"{default!r} is not one of settings.tiers")
        else:
            out["default_tier"] = default
    return out


def parse_vm(ctx: _Ctx, path: str, name: str, v: Any) -> Vm | None:
    d = _obj(ctx, path, v, ("mac", "ips", "labels", "protected", "max_connections", "log",
                            "address_pairs"))
    if d is None:
        return None
    mac = d.get("mac")
    if mac is not None:
        if not isinstance(mac, str) or not MAC_RE.match(mac.lower()):
            ctx.err(_join(path, "mac"), f"{mac!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
            mac = None
        else:
            mac = mac.lower()
            if int(mac[:2], 16) & 1:
                ctx.err(_join(path, "mac"), f"{mac} is a multicast MAC")
    ips = _parsed_items(ctx, path, "ips", d, parse_ip)
    return Vm(name, mac, tuple(ips), _labels(ctx, _join(path, "labels"), d.get("labels")),
              d.get("protected") is not False,
              _limit(ctx, _join(path, "max_connections"), d.get("max_connections")),
              _choice(ctx, _join(path, "log"), d.get("log"), LOG_LEVELS, None)
              if d.get("log") is not None else None,
              _address_pairs(ctx, _join(path, "address_pairs"), d.get("address_pairs")),
              _bool(ctx, _join(path, "protected"), d.get("protected"), None))


def _mac(ctx: _Ctx, path: str, mac: Any) -> str | None:
    if not isinstance(mac, str) or not MAC_RE.match(mac.lower()):
        ctx.err(path, f"{mac!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
        return None
    if int(mac[:2], 16) & 1:
        ctx.err(path, f"{mac.lower()} is a multicast MAC")
        return None
    return mac.lower()


def _address_pairs(ctx: _Ctx, path: str, v: Any) -> tuple[AddressPair, ...]:
    """[{ip: ADDRESS or PREFIX, mac: optional}]: extra addresses the VM may use."""
    if v is None:
        return ()
    if not isinstance(v, list):
        ctx.err(path, "must be a list of {ip, mac}")
        return ()
    out = []
    for i, item in enumerate(v):
        p = f"{path}[{i}]"
        d = _obj(ctx, p, item, ("ip", "mac"), ("ip",))
        if d is None or "ip" not in d:
            continue
        try:
            net = ipaddress.ip_network(d["ip"], strict=False) if isinstance(d["ip"], str) \
                else None
        except ValueError:
            net = None
        if net is None:
            ctx.err(_join(p, "ip"), f"{d['ip']!r} is not an IP address or prefix")
            continue
        mac = _mac(ctx, _join(p, "mac"), d["mac"]) if d.get("mac") is not None else None
        out.append(AddressPair(net, mac))
    return tuple(out)


def parse_group(ctx: _Ctx, path: str, name: str, v: Any) -> Group | None:
    d = _obj(ctx, path, v, ("match_labels", "members", "cidrs", "except", "protected"))
    if d is None:
        return None
    members = []
    for i, m in enumerate(_list(ctx, _join(path, "members"), d.get("members"))):
        if _name(ctx, f"{path}.members[{i}]", m):
            members.append(m)
    cidrs = _parsed_items(ctx, path, "cidrs", d, parse_net)
    excepts = _parsed_items(ctx, path, "except", d, parse_net)
    for i, ex in enumerate(excepts):
        if not any(ex.version == c.version and ex.subnet_of(c) for c in cidrs):
            ctx.err(f"{path}.except[{i}]", f"{ex} is inside none of the group's cidrs: an "
                    "except prefix carves a part out of one of them")
    return Group(name, _labels(ctx, _join(path, "match_labels"), d.get("match_labels")),
                 tuple(sorted(set(members))), tuple(sorted(set(cidrs), key=str)),
                 tuple(sorted(set(excepts), key=str)),
                 _bool(ctx, _join(path, "protected"), d.get("protected"), None))


def parse_policy(ctx: _Ctx, path: str, name: str, v: Any) -> Policy | None:
    d = _obj(ctx, path, v, ("applied_to", "rules", "tier"))
    if d is None:
        return None
    applied = []
    for i, a in enumerate(_list(ctx, _join(path, "applied_to"), d.get("applied_to"))):
        p = f"{path}.applied_to[{i}]"
        if not isinstance(a, str) or a.partition(":")[0] not in ("vm", "group"):
            ctx.err(p, f"{a!r} is not vm:NAME or group:NAME")
        elif _name(ctx, p, a.partition(":")[2]):
            applied.append(a)
    rules = []
    seen: dict[str, int] = {}
    for i, r in enumerate(_list(ctx, _join(path, "rules"), d.get("rules"))):
        rp = f"{path}.rules[{i}]"
        rule = _rule(ctx, rp, r)
        if rule is None:
            continue
        if rule.id in seen:
            ctx.err(_join(rp, "id"), f"duplicate rule id {rule.id!r} (also rules[{seen[rule.id]}])")
            continue
        seen[rule.id] = i
        rules.append(rule)
    tier = d.get("tier")
    if tier is not None and not _name(ctx, _join(path, "tier"), tier):
        tier = None
    return Policy(name, tuple(dict.fromkeys(applied)), tuple(rules), tier)


# Objects parsed before, by (section, name, canonical JSON): a write of one VM re-parses
# that VM, not the other thousand (parsing is a pure function of those three).
_PARSED: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
_PARSED_MAX = 50_000
_PARSED_LOCK = threading.Lock()


def _parse_cached(ctx: _Ctx, key: str, p: str, name: str, body: Any, parse) -> Any:
    try:
        ck = (key, name, json.dumps(body, sort_keys=True, separators=(",", ":"),
                                    allow_nan=False))
    except (TypeError, ValueError):   # not plain JSON (e.g. a YAML date): no caching
        return parse(ctx, p, name, body)
    with _PARSED_LOCK:
        obj = _PARSED.get(ck)
        if obj is not None:
            _PARSED.move_to_end(ck)
            return obj
    before = len(ctx.errors)
    obj = parse(ctx, p, name, body)
    if obj is not None and len(ctx.errors) == before:
        with _PARSED_LOCK:
            _PARSED[ck] = obj
            while len(_PARSED) > _PARSED_MAX:
                _PARSED.popitem(last=False)
    return obj


def _section(ctx: _Ctx, doc: dict[str, Any], key: str, parse) -> dict[str, Any]:
    v = doc.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        ctx.err(key, f"must be an object of name: {key[:-1]}, not {_typename(v)}")
        return {}
    out = {}
    for name, body in v.items():
        p = f"{key}.{name}"
        if _name(ctx, p, name):
            obj = _parse_cached(ctx, key, p, name, body, parse)
            if obj is not None:
                out[name] = obj
    return dict(sorted(out.items()))


STATE_KEYS = ("settings", "vms", "groups", "policies", "expectations", "revision")


def parse_state(doc: Any) -> State:
    """Validate a whole desired-state document; raise ValidationError if anything is off."""
    ctx = _Ctx()
    d = _obj(ctx, "", doc, STATE_KEYS)
    if d is None:
        raise ValidationError(ctx.errors)
    state = State(_settings(ctx, d.get("settings")),
                  _section(ctx, d, "vms", parse_vm),
                  _section(ctx, d, "groups", parse_group),
                  _section(ctx, d, "policies", parse_policy),
                  expectations.parse(ctx, d.get("expectations")))
    if not ctx.errors:
        state = resolve_protection(state)
        check_references(ctx, state)
        expectations.check_references(ctx, state, state.expectations)
    if ctx.errors:
        raise ValidationError(ctx.errors)
    return state


def resolve_protection(state: State,
                       ports: dict[str, set[tuple[str | None, int | None]]] | None = None,
                       only: str | None = None) -> State:
    """Each VM's protection: its own setting, else its groups' (members, labels or an
    address in the group's cidrs; any group that protects wins), else the portgroups
    its ports are in (``ports``: VM -> {(bridge, vlan tag)} where it is seen; any that
    protects wins), else the default. ``only``: the one VM whose protection can have
    changed (the others' stay as they are)."""
    by_group = [(g, set(group_members(state, name))) for name, g in state.groups.items()
                if g.protected is not None]
    vms = dict(state.vms)
    changed = False
    for name, vm in (state.vms.items() if only is None else
                     [(only, state.vms[only])] if only in state.vms else []):
        says, by = vm.protected_set, "vm"
        if says is None:
            votes = {g.protected for g, members in by_group
                     if name in members or any(ip in net for ip in vm.ips
                                               for net in g.resolved_cidrs())}
            by = "group"
            if not votes and ports and state.settings.portgroups:
                votes = {pg.protected for pg in state.settings.portgroups
                         for bridge, vlan in ports.get(name, ()) if pg.holds(bridge, vlan)}
                by = "portgroup"
            if not votes:
                by = "default"
            says = True if True in votes else False if False in votes else \
                state.settings.default_protected
        if vm.protected != says or vm.protected_by != by:
            vm = dataclasses.replace(vm, protected=says, protected_by=by)
            changed = True
        vms[name] = vm
    return dataclasses.replace(state, vms=vms) if changed else state
