"""The desired state: settings, VMs, groups, policies and rules, parsed and validated.

One document shape serves the REST API (JSON), the CLI and the labs (YAML); see
DESIGN.md. ``parse_state`` turns a document into immutable objects or raises
``ValidationError`` naming every bad field by its path, e.g.
``policies.web-in.rules[1].ports: 70000 is not a port (1-65535)``.
No Ryu here.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,62}$")

DIRECTIONS = ("ingress", "egress")
ACTIONS = ("allow", "deny", "reject")
PROTOCOLS = ("tcp", "udp", "icmp", "icmpv6", "any")
PORT_PROTOCOLS = ("tcp", "udp")

IpAddr = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNet = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ValidationError(ValueError):
    """One or more invalid fields; ``errors[0]`` is the one reported first."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors[:5])
                         + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""))

    @property
    def field(self) -> str:
        return self.errors[0].path


@dataclass(frozen=True)
class Settings:
    default_ingress: str = "deny"
    default_egress: str = "allow"
    log_default_deny: bool = False
    unknown_ports: str = "drop"
    uplinks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Vm:
    name: str
    mac: str | None = None
    ips: tuple[IpAddr, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    protected: bool = True

    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True)
class Group:
    name: str
    match_labels: tuple[tuple[str, str], ...] = ()
    members: tuple[str, ...] = ()
    cidrs: tuple[IpNet, ...] = ()


@dataclass(frozen=True)
class Peer:
    kind: str  # any | vm | group | cidr
    value: str = ""

    def __str__(self) -> str:
        return "any" if self.kind == "any" else f"{self.kind}:{self.value}"


@dataclass(frozen=True)
class Rule:
    id: str
    direction: str
    action: str
    protocol: str = "any"
    ports: tuple[tuple[int, int], ...] = ()
    peer: Peer = Peer("any")
    priority: int = 100
    log: bool = False

    def ports_text(self) -> str | None:
        if not self.ports:
            return None
        return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in self.ports)


@dataclass(frozen=True)
class Policy:
    name: str
    applied_to: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class State:
    settings: Settings = field(default_factory=Settings)
    vms: dict[str, Vm] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    policies: dict[str, Policy] = field(default_factory=dict)


# --- parsing ----------------------------------------------------------------------

class _Ctx:
    """Collects errors while parsing so one pass reports all of them."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def err(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path, message))


def _typename(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "null"}.get(type(v), type(v).__name__)


def _obj(ctx: _Ctx, path: str, v: Any, allowed: tuple[str, ...],
         required: tuple[str, ...] = ()) -> dict[str, Any] | None:
    if v is None:
        v = {}
    if not isinstance(v, dict):
        ctx.err(path, f"must be an object, not {_typename(v)}")
        return None
    for k in v:
        if k not in allowed:
            ctx.err(_join(path, str(k)), f"unknown field (allowed: {', '.join(allowed)})")
    for k in required:
        if k not in v:
            ctx.err(_join(path, k), "is required")
    return v


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _name(ctx: _Ctx, path: str, v: Any) -> bool:
    if not isinstance(v, str) or not NAME_RE.match(v):
        shown = v if isinstance(v, str) and len(v) <= 80 else (
            f"{v[:40]}...({len(v)} chars)" if isinstance(v, str) else _typename(v))
        ctx.err(path, f"{shown!s} is not a valid name "
                      "([a-z0-9][a-z0-9_.-]{0,62})")
        return False
    return True


def _bool(ctx: _Ctx, path: str, v: Any, default: bool) -> bool:
    if v is None:
        return default
    if not isinstance(v, bool):
        ctx.err(path, f"must be true or false, not {_typename(v)}")
        return default
    return v


def _choice(ctx: _Ctx, path: str, v: Any, choices: tuple[str, ...], default: str) -> str:
    if v is None:
        return default
    if v not in choices:
        ctx.err(path, f"{v!r} is not one of {', '.join(choices)}")
        return default
    return v


def _list(ctx: _Ctx, path: str, v: Any) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        ctx.err(path, f"must be a list, not {_typename(v)}")
        return []
    return v


def _labels(ctx: _Ctx, path: str, v: Any) -> tuple[tuple[str, str], ...]:
    if v is None:
        return ()
    if not isinstance(v, dict):
        ctx.err(path, f"must be an object of label: value, not {_typename(v)}")
        return ()
    out = []
    for k, val in v.items():
        if not isinstance(k, str) or not LABEL_RE.match(k):
            ctx.err(_join(path, str(k)), "is not a valid label key")
            continue
        if not isinstance(val, str) or len(val) > 63:
            ctx.err(_join(path, k), "label values are strings of at most 63 characters")
            continue
        out.append((k, val))
    return tuple(sorted(out))


def parse_ip(text: Any) -> IpAddr:
    """An IPv4/IPv6 address, or ValueError with a readable message."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not an IP address")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None


def parse_net(text: Any) -> IpNet:
    """A CIDR prefix (host bits must be zero), or ValueError."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a CIDR prefix")
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as e:
        if "host bits" in str(e):
            raise ValueError(f"{text!r} has host bits set") from None
        raise ValueError(f"{text!r} is not a CIDR prefix") from None


def parse_ports(v: Any) -> tuple[tuple[int, int], ...]:
    """ "80", "8000-8080", "80,443" or an integer -> sorted ranges; ValueError if bad."""
    if isinstance(v, bool):
        raise ValueError(f"{v!r} is not a port list")
    if isinstance(v, int):
        v = str(v)
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"{v!r} is not a port list (\"N\", \"N-M\" or \"N,M,...\")")
    out = []
    for part in v.split(","):
        part = part.strip()
        lo_s, sep, hi_s = part.partition("-")
        try:
            lo = int(lo_s)
            hi = int(hi_s) if sep else lo
        except ValueError:
            raise ValueError(f"{part!r} is not a port or range") from None
        for p in (lo, hi):
            if not 1 <= p <= 65535:
                raise ValueError(f"{p} is not a port (1-65535)")
        if hi < lo:
            raise ValueError(f"{part} is a reversed range")
        out.append((lo, hi))
    return tuple(sorted(set(out)))


def _peer(ctx: _Ctx, path: str, v: Any) -> Peer:
    if v is None or v == "any":
        return Peer("any")
    if not isinstance(v, str) or ":" not in v:
        ctx.err(path, f"{v!r} is not a peer (any, vm:NAME, group:NAME or cidr:PREFIX)")
        return Peer("any")
    kind, _, value = v.partition(":")
    if kind == "cidr":
        try:
            return Peer("cidr", str(parse_net(value)))
        except ValueError as e:
            ctx.err(path, str(e))
            return Peer("any")
    if kind in ("vm", "group"):
        if _name(ctx, path, value):
            return Peer(kind, value)
        return Peer("any")
    ctx.err(path, f"{v!r} is not a peer (any, vm:NAME, group:NAME or cidr:PREFIX)")
    return Peer("any")


RULE_KEYS = ("id", "direction", "action", "protocol", "ports", "peer", "priority", "log")


def _rule(ctx: _Ctx, path: str, v: Any) -> Rule | None:
    d = _obj(ctx, path, v, RULE_KEYS, ("id", "direction", "action"))
    if d is None:
        return None
    n_before = len(ctx.errors)
    rid = d.get("id")
    if rid is not None:
        _name(ctx, _join(path, "id"), rid)
    direction = _choice(ctx, _join(path, "direction"), d.get("direction"), DIRECTIONS, "ingress")
    action = _choice(ctx, _join(path, "action"), d.get("action"), ACTIONS, "deny")
    protocol = _choice(ctx, _join(path, "protocol"), d.get("protocol"), PROTOCOLS, "any")
    ports: tuple[tuple[int, int], ...] = ()
    if d.get("ports") is not None:
        if protocol not in PORT_PROTOCOLS:
            ctx.err(_join(path, "ports"), f"ports need protocol tcp or udp, not {protocol}")
        else:
            try:
                ports = parse_ports(d["ports"])
            except ValueError as e:
                ctx.err(_join(path, "ports"), str(e))
    peer = _peer(ctx, _join(path, "peer"), d.get("peer"))
    if peer.kind == "cidr":
        fam = ipaddress.ip_network(peer.value).version
        if (protocol == "icmp" and fam == 6) or (protocol == "icmpv6" and fam == 4):
            ctx.err(_join(path, "peer"),
                    f"an IPv{fam} prefix cannot be the peer of a {protocol} rule")
    priority = d.get("priority", 100)
    if isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 1000:
        ctx.err(_join(path, "priority"), f"{priority!r} is not a priority (1-1000)")
        priority = 100
    log = _bool(ctx, _join(path, "log"), d.get("log"), False)
    if len(ctx.errors) != n_before or not isinstance(rid, str):
        return None
    return Rule(rid, direction, action, protocol, ports, peer, priority, log)


def _settings(ctx: _Ctx, v: Any) -> Settings:
    d = _obj(ctx, "settings", v, ("default_ingress", "default_egress", "log_default_deny",
                                  "unknown_ports", "uplinks"))
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
                                ("deny", "allow"), "deny"),
        default_egress=_choice(ctx, "settings.default_egress", d.get("default_egress"),
                               ("deny", "allow"), "allow"),
        log_default_deny=_bool(ctx, "settings.log_default_deny", d.get("log_default_deny"),
                               False),
        unknown_ports=_choice(ctx, "settings.unknown_ports", d.get("unknown_ports"),
                              ("drop", "allow"), "drop"),
        uplinks=tuple(uplinks))


def _parsed_items(ctx: _Ctx, path: str, key: str, d: dict[str, Any], parse) -> list[Any]:
    """A list field whose items each go through ``parse``; errors name the item."""
    out = []
    for i, item in enumerate(_list(ctx, _join(path, key), d.get(key))):
        try:
            out.append(parse(item))
        except ValueError as e:
            ctx.err(f"{path}.{key}[{i}]", str(e))
    return out


def parse_vm(ctx: _Ctx, path: str, name: str, v: Any) -> Vm | None:
    d = _obj(ctx, path, v, ("mac", "ips", "labels", "protected"))
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
              _bool(ctx, _join(path, "protected"), d.get("protected"), True))


def parse_group(ctx: _Ctx, path: str, name: str, v: Any) -> Group | None:
    d = _obj(ctx, path, v, ("match_labels", "members", "cidrs"))
    if d is None:
        return None
    members = []
    for i, m in enumerate(_list(ctx, _join(path, "members"), d.get("members"))):
        if _name(ctx, f"{path}.members[{i}]", m):
            members.append(m)
    cidrs = _parsed_items(ctx, path, "cidrs", d, parse_net)
    return Group(name, _labels(ctx, _join(path, "match_labels"), d.get("match_labels")),
                 tuple(sorted(set(members))), tuple(sorted(set(cidrs), key=str)))


def parse_policy(ctx: _Ctx, path: str, name: str, v: Any) -> Policy | None:
    d = _obj(ctx, path, v, ("applied_to", "rules"))
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
    return Policy(name, tuple(dict.fromkeys(applied)), tuple(rules))


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
            obj = parse(ctx, p, name, body)
            if obj is not None:
                out[name] = obj
    return dict(sorted(out.items()))


def check_references(ctx: _Ctx, state: State) -> None:
    """Every name a policy or group uses exists; identities are not shared."""
    for gname, g in state.groups.items():
        for i, m in enumerate(g.members):
            if m not in state.vms:
                ctx.err(f"groups.{gname}.members[{i}]", f"vm {m!r} does not exist")
    for pname, pol in state.policies.items():
        for i, a in enumerate(pol.applied_to):
            kind, _, name = a.partition(":")
            table = state.vms if kind == "vm" else state.groups
            if name not in table:
                ctx.err(f"policies.{pname}.applied_to[{i}]", f"{kind} {name!r} does not exist")
        for i, r in enumerate(pol.rules):
            if r.peer.kind in ("vm", "group"):
                table = state.vms if r.peer.kind == "vm" else state.groups
                if r.peer.value not in table:
                    ctx.err(f"policies.{pname}.rules[{i}].peer",
                            f"{r.peer.kind} {r.peer.value!r} does not exist")
    macs: dict[str, str] = {}
    ips: dict[IpAddr, str] = {}
    for name, vm in state.vms.items():
        if vm.mac is not None:
            if vm.mac in macs:
                ctx.err(f"vms.{name}.mac", f"{vm.mac} is also the MAC of vm {macs[vm.mac]!r}")
            macs.setdefault(vm.mac, name)
        for i, ip in enumerate(vm.ips):
            if ip in ips and ips[ip] != name:
                ctx.err(f"vms.{name}.ips[{i}]", f"{ip} is also an address of vm {ips[ip]!r}")
            ips.setdefault(ip, name)


STATE_KEYS = ("settings", "vms", "groups", "policies", "revision")


def parse_state(doc: Any) -> State:
    """Validate a whole desired-state document; raise ValidationError if anything is off."""
    ctx = _Ctx()
    d = _obj(ctx, "", doc, STATE_KEYS)
    if d is None:
        raise ValidationError(ctx.errors)
    state = State(_settings(ctx, d.get("settings")),
                  _section(ctx, d, "vms", parse_vm),
                  _section(ctx, d, "groups", parse_group),
                  _section(ctx, d, "policies", parse_policy))
    if not ctx.errors:
        check_references(ctx, state)
    if ctx.errors:
        raise ValidationError(ctx.errors)
    return state


def parse_object(kind: str, name: str, body: Any) -> Vm | Group | Policy:
    """Validate one VM, group or policy document (without cross-references)."""
    ctx = _Ctx()
    path = f"{kind}.{name}"
    parse = {"vms": parse_vm, "groups": parse_group, "policies": parse_policy}[kind]
    obj = parse(ctx, path, name, body) if _name(ctx, path, name) else None
    if ctx.errors or obj is None:
        raise ValidationError(ctx.errors or [FieldError(path, "invalid")])
    return obj


# --- back to documents --------------------------------------------------------------

def settings_doc(s: Settings) -> dict[str, Any]:
    return {"default_ingress": s.default_ingress, "default_egress": s.default_egress,
            "log_default_deny": s.log_default_deny, "unknown_ports": s.unknown_ports,
            "uplinks": list(s.uplinks)}


def vm_doc(vm: Vm) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if vm.mac is not None:
        d["mac"] = vm.mac
    d["ips"] = [str(i) for i in vm.ips]
    d["labels"] = dict(vm.labels)
    d["protected"] = vm.protected
    return d


def group_doc(g: Group) -> dict[str, Any]:
    return {"match_labels": dict(g.match_labels), "members": list(g.members),
            "cidrs": [str(c) for c in g.cidrs]}


def rule_doc(r: Rule) -> dict[str, Any]:
    d: dict[str, Any] = {"id": r.id, "direction": r.direction, "action": r.action,
                         "protocol": r.protocol}
    if r.ports:
        d["ports"] = r.ports_text()
    d.update({"peer": str(r.peer), "priority": r.priority, "log": r.log})
    return d


def policy_doc(p: Policy) -> dict[str, Any]:
    return {"applied_to": list(p.applied_to), "rules": [rule_doc(r) for r in p.rules]}


def state_doc(s: State) -> dict[str, Any]:
    """The canonical document of a state (parse_state(state_doc(s)) == s)."""
    return {"settings": settings_doc(s.settings),
            "vms": {n: vm_doc(v) for n, v in s.vms.items()},
            "groups": {n: group_doc(g) for n, g in s.groups.items()},
            "policies": {n: policy_doc(p) for n, p in s.policies.items()}}
