"""What a punt's registers say, and the log record it becomes. No Ryu here.

A punt is identified by the table it came from (punt_log, punt_reject, punt_unknown)
and the registers OVS copies into the packet-in: reg0 verdict, log bit and direction
bit, reg3 the deciding rule's number (0: a default), reg4 the zone of the VM whose
policy decided. flows/PIPELINE.md describes every bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vgw_ryu.pipeline import fields as F  # noqa: N812 - F.<field> reads like the register map
from vgw_ryu.pipeline.tables import PUNT_BY_TABLE
from vgw_ryu.policy.ids import Ids


@dataclass(frozen=True)
class PuntRegs:
    """The decoded registers of one packet-in."""
    purpose: str               # log | reject | unknown
    in_port: int
    verdict: str | None        # None for unknown-port punts
    direction: str | None      # egress | ingress (whose rules decided); None for unknown
    rule: int                  # rule number, 0 for a default
    zone: int
    log: bool
    revoke: bool = False       # a policy change just cut this established connection
    invalid: bool = False      # conntrack found it invalid (over the limit, or broken)


def reg_value(match: Mapping[str, Any], name: str) -> int:
    """A match field's value (without its mask); 0 when absent."""
    v = match.get(name)
    if v is None:
        return 0
    return v[0] if isinstance(v, tuple) else int(v)


def decode_registers(table_id: int, match: Mapping[str, Any]) -> PuntRegs | None:
    """The registers of a packet-in from a punt table; None for any other table."""
    punt = PUNT_BY_TABLE.get(table_id)
    if punt is None:
        return None
    purpose = punt.purpose
    reg0 = reg_value(match, F.VERDICT.reg)
    judged = purpose != "unknown"
    return PuntRegs(purpose, reg_value(match, "in_port"),
                    F.VERDICT_NAMES.get(reg0 & F.VERDICT.mask) if judged else None,
                    ("ingress" if reg0 & F.DIRECTION.mask else "egress") if judged else None,
                    reg_value(match, F.RULE.reg), reg_value(match, F.PUNT_ZONE.reg),
                    bool(reg0 & F.LOG.mask), bool(reg0 & F.REVOKE.mask),
                    bool(reg0 & F.INVALID.mask))


def log_record(dpid: int, regs: PuntRegs, ids: Ids, summary: Mapping[str, Any],
               length: int, revision: int | None = None) -> dict[str, Any]:
    """The firewall log record of a punt (``summary``: protocol, addresses, ports).

    A revocation (the first packet of a live connection a policy change now denies)
    says so with ``event: revoked`` and the revision in force.
    """
    vm = ids.vm_of_zone(regs.zone) if regs.zone else None
    owner = ids.rule_owner(regs.rule) if regs.rule else None
    return {"switch": f"{dpid:016x}", "port": regs.in_port, "vm": vm,
            "direction": regs.direction, "verdict": regs.verdict,
            "policy": owner[0] if owner and not regs.invalid else None,
            "rule": None if regs.invalid else owner[1] if owner else (
                "default" if regs.rule == 0 else None),
            **summary, "length": length,
            **({"event": "revoked", "revision": revision} if regs.revoke else {}),
            **({"event": "invalid"} if regs.invalid else {})}
