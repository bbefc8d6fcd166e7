"""Field-level checks for the policy document: names, labels, addresses, ports, peers.

Each check records a ``FieldError`` (path and reason) in a ``_Ctx`` instead of raising,
so one pass over a document reports every bad field; ``vgw_ryu.policy.parse`` builds the
objects from them. No Ryu here.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from vgw_ryu.policy.objects import (
    LABEL_RE,
    NAME_RE,
    FieldError,
    IpAddr,
    IpNet,
    Peer,
)


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


# The name pattern as the error messages show it: [a-z0-9][a-z0-9_.-]{0,62}
NAME_SYNTAX = NAME_RE.pattern.strip("^$")


def _name(ctx: _Ctx, path: str, v: Any) -> bool:
    if not isinstance(v, str) or not NAME_RE.match(v):
        shown = v if isinstance(v, str) and len(v) <= 80 else (
            f"{v[:40]}...({len(v)} chars)" if isinstance(v, str) else _typename(v))
        ctx.err(path, f"{shown!s} is not a valid name ({NAME_SYNTAX})")
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
    """ "80", "8000-8080", "80,443", an integer, or a list of those (YAML ``[53, "5000-5010"]``)
    -> sorted ranges; ValueError if bad."""
    if isinstance(v, bool):
        raise ValueError(f"{v!r} is not a port list")
    if isinstance(v, list):
        if not v or any(isinstance(x, (bool, list)) or not isinstance(x, (int, str))
                        for x in v):
            raise ValueError(f"{v!r} is not a port list (numbers and \"N-M\" ranges)")
        v = ",".join(str(x) for x in v)
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


def _parsed_items(ctx: _Ctx, path: str, key: str, d: dict[str, Any], parse) -> list[Any]:
    """A list field whose items each go through ``parse``; errors name the item."""
    out = []
    for i, item in enumerate(_list(ctx, _join(path, key), d.get(key))):
        try:
            out.append(parse(item))
        except ValueError as e:
            ctx.err(f"{path}.{key}[{i}]", str(e))
    return out
