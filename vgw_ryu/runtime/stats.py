"""Counters from the switches as the stats document, and punt-meter drop watching.

The OpenFlow layer collects plain tuples: flow stats of the rules table as (cookie,
reg0 match value, packets, bytes) and meter stats as (meter_id, packets dropped by the
first band). This module adds them up per rule, per default and per meter. No Ryu here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from vgw_ryu.pipeline import cookies
from vgw_ryu.pipeline import fields as F  # noqa: N812 - F.<field> reads like the register map
from vgw_ryu.pipeline.cookies import split_cookie
from vgw_ryu.pipeline.tables import LOG_METER_BASE, PUNTS
from vgw_ryu.runtime.snapshot import Snapshot

METER_NAMES = {p.meter: p.purpose for p in PUNTS}
NOTE = ("sessions: connection decisions (new connections the rule or default judged); "
        "packets and bytes: every packet judged (the original direction of each "
        "connection, established ones included; replies are not judged)")

FlowSample = tuple[int, int, int, int, bool]   # cookie, reg0 value, packets, bytes, +new


def meter_purpose(meter_id: int) -> str | None:
    """What a meter limits: a punt purpose (each VM's own log meter counts as log)."""
    if meter_id >= LOG_METER_BASE:
        return "log"
    return METER_NAMES.get(meter_id)
MeterSample = tuple[int, int]            # meter id, band packet count


@dataclass
class Counters:
    """[packets, bytes, sessions] per rule number and per default direction; drops per
    punt purpose."""
    per_rule: dict[int, list[int]] = field(default_factory=dict)
    defaults: dict[str, list[int]] = field(
        default_factory=lambda: {"egress": [0, 0, 0], "ingress": [0, 0, 0]})
    meters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(METER_NAMES.values(), 0))

    def add_flows(self, samples: Iterable[FlowSample]) -> None:
        for cookie, reg0, packets, nbytes, new in samples:
            owner = split_cookie(cookie)
            if owner is None:
                continue
            if owner[0] == cookies.KIND_RULE:
                acc = self.per_rule.setdefault(owner[1], [0, 0, 0])
            elif owner[0] == cookies.KIND_DEFAULT:
                acc = self.defaults["ingress" if reg0 & F.DIRECTION.mask else "egress"]
            else:
                continue
            acc[0] += packets
            acc[1] += nbytes
            if new:
                acc[2] += packets

    def add_meters(self, samples: Iterable[MeterSample]) -> None:
        for meter_id, dropped in samples:
            purpose = meter_purpose(meter_id)
            if purpose is not None:
                self.meters[purpose] += dropped


def document(snap: Snapshot, c: Counters, packet_ins: int, switches: int) -> dict[str, Any]:
    """The GET /v1/stats answer."""
    policies: dict[str, Any] = {}
    for pname, pol in snap.state.policies.items():
        rules = {}
        for r in pol.rules:
            pk, by, sessions = c.per_rule.get(snap.ids.rule(pname, r.id), [0, 0, 0])
            rules[r.id] = {"sessions": sessions, "packets": pk, "bytes": by}
        policies[pname] = {"rules": rules}
    return {"policies": policies,
            "defaults": {d: {"sessions": v[2], "packets": v[0], "bytes": v[1]}
                         for d, v in c.defaults.items()},
            "punts_suppressed": dict(c.meters),
            "note": NOTE,
            "packet_ins": packet_ins,
            "switches": switches, "revision": snap.revision}


class MeterWatch:
    """Remembers each switch's meter drop counts; reports what grew since last time."""

    def __init__(self) -> None:
        self.seen: dict[tuple[int, int], int] = {}

    def update(self, dpid: int, samples: Iterable[MeterSample]) -> list[tuple[str, int]]:
        """(meter name, new drops) for each punt meter that dropped since the last check."""
        grown = []
        for meter_id, n in samples:
            purpose = meter_purpose(meter_id)
            if purpose is None:
                continue
            name = purpose if meter_id < LOG_METER_BASE else \
                f"{purpose} (zone {meter_id - LOG_METER_BASE})"
            prev = self.seen.get((dpid, meter_id), 0)
            if n > prev:
                grown.append((name, n - prev))
            self.seen[(dpid, meter_id)] = n
        return grown
