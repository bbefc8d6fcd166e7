"""Checking the parameters of GET /v1/logs, GET /v1/vms/{name}/connections and POST
/v1/trace. No Ryu here."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from vgw_ryu.api.http import ApiError, looks_like_iso
from vgw_ryu.policy import model
from vgw_ryu.policy.model import State, parse_ip

TRACE_FIELDS = ("vm", "direction", "peer_ip", "protocol", "port")
PROTOCOLS = ("tcp", "udp", "icmp", "icmpv6")


@dataclass(frozen=True)
class LogQuery:
    vm: str | None
    verdict: str | None
    since: str | None
    limit: int


@dataclass(frozen=True)
class ConnQuery:
    peer: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    port: int | None
    rule: str | None
    limit: int


@dataclass(frozen=True)
class TraceQuery:
    vm: str
    direction: str
    peer: ipaddress.IPv4Address | ipaddress.IPv6Address
    proto: str
    port: int | None


def log_query(q: dict[str, str]) -> LogQuery:
    limit = _limit(q, 100)
    since = q.get("since")
    if since is not None:
        try:
            float(since)
        except ValueError:
            if not looks_like_iso(since):
                raise ApiError(400, "invalid", "since must be a UNIX time or an ISO 8601 time",
                               "since") from None
    verdict = q.get("verdict")
    if verdict is not None and verdict not in ("allow", "deny", "reject"):
        raise ApiError(400, "invalid", "verdict must be allow, deny or reject", "verdict")
    return LogQuery(q.get("vm"), verdict, since, limit)


def _limit(q: dict[str, str], default: int) -> int:
    limit = q.get("limit", str(default))
    if not limit.isdigit() or not 1 <= int(limit) <= 10000:
        raise ApiError(400, "invalid", "limit must be 1-10000", "limit")
    return int(limit)


def conn_query(q: dict[str, str]) -> ConnQuery:
    """The filters of a VM's connection listing: peer address, port, deciding rule."""
    peer = None
    if "peer" in q:
        try:
            peer = parse_ip(q["peer"])
        except ValueError as e:
            raise ApiError(400, "invalid", str(e)[:200], "peer") from None
    port = q.get("port")
    if port is not None and (not port.isdigit() or not 1 <= int(port) <= 65535):
        raise ApiError(400, "invalid", f"{port[:40]!r} is not a port (1-65535)", "port")
    rule = q.get("rule")
    if rule is not None and rule != "default":
        policy, _, rid = rule.partition("/")
        if not (model.NAME_RE.fullmatch(policy) and model.NAME_RE.fullmatch(rid)):
            raise ApiError(400, "invalid", f"rule must be POLICY/RULE_ID or default, not "
                                           f"{rule[:80]!r}", "rule")
    return ConnQuery(peer, int(port) if port is not None else None, rule, _limit(q, 1000))


def trace_query(body: Any, st: State) -> TraceQuery:
    """The trace request, checked field by field against the state."""
    if not isinstance(body, dict):
        raise ApiError(400, "invalid", "body must be an object")
    for k in body:
        if k not in TRACE_FIELDS:
            raise ApiError(400, "invalid",
                           f"unknown field (allowed: {', '.join(TRACE_FIELDS)})", k)
    vm = body.get("vm")
    if not isinstance(vm, str) or vm not in st.vms:
        raise ApiError(404 if isinstance(vm, str) else 400,
                       "not_found" if isinstance(vm, str) else "invalid",
                       f"no vm named {str(vm)[:80]!r}", "vm")
    direction = body.get("direction")
    if direction not in model.DIRECTIONS:
        raise ApiError(400, "invalid", "direction must be ingress or egress", "direction")
    try:
        peer = parse_ip(body.get("peer_ip"))
    except ValueError as e:
        raise ApiError(400, "invalid", str(e), "peer_ip") from None
    proto = body.get("protocol", "tcp")
    if proto not in PROTOCOLS:
        raise ApiError(400, "invalid", "protocol must be tcp, udp, icmp or icmpv6",
                       "protocol")
    port = body.get("port")
    if proto in ("tcp", "udp"):
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ApiError(400, "invalid", f"{port!r} is not a port (1-65535)", "port")
    elif port is not None:
        raise ApiError(400, "invalid", f"no port with protocol {proto}", "port")
    if (proto == "icmp" and peer.version == 6) or (proto == "icmpv6" and peer.version == 4):
        raise ApiError(400, "invalid", f"{proto} with an IPv{peer.version} peer", "peer_ip")
    return TraceQuery(vm, direction, peer, proto, port)
