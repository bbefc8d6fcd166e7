"""Connectivity assertions checked against the installed flows, with ofproto/trace.

The model check (vgw_ryu.policy.expectations) says what the state means; this says
what the switches actually do: for every pair an expectation names, the source VM's
egress and the destination VM's ingress are traced on their local switches as a new
connection, and the first side that does not allow decides. A flow deleted or changed
by hand shows up here before the audit's repair puts it back. No Ryu here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from vgw_ryu.policy.expectations import hosts
from vgw_ryu.runtime import ovstrace
from vgw_ryu.runtime.snapshot import Snapshot
from vgw_ryu.runtime.trace import trace_datapath


def datapath_violations(snap: Snapshot, bridge_of: Callable[[int], str | None],
                        run: Callable[..., ovstrace.TraceResult] = ovstrace.trace,
                        ) -> list[dict[str, Any]]:
    """Expectation pairs whose traced verdict differs from the expected one."""
    out = []
    local = snap.vm_locations()
    for i, e in enumerate(snap.state.expectations):
        for src, src_ip in hosts(snap.state, e.src):
            for dst, dst_ip in hosts(snap.state, e.dst):
                if (src is not None and src == dst) or src_ip is None or dst_ip is None \
                        or src_ip.version != dst_ip.version:
                    continue
                got, where = "allow", []
                for vm, direction, peer in ((src, "egress", dst_ip), (dst, "ingress", src_ip)):
                    if vm is None or not snap.state.vms[vm].protected or not local.get(vm):
                        continue
                    t = trace_datapath(snap, bridge_of, vm, direction, peer, e.protocol,
                                       e.port, run=run)
                    if not t or "verdict" not in t:
                        continue   # not traceable here (no local switch, no uplink, ...)
                    where.append(f"{vm} {direction} on {t['bridge']}")
                    if t["verdict"] != "allow":
                        got = t["verdict"]
                        break
                if where and got != e.verdict:
                    out.append({"expectation": i, **e.doc(),
                                "pair": [src or str(src_ip), dst or str(dst_ip)],
                                "got": got, "traced": where})
    return out


class AssertionWatch:
    """The last datapath check's violations, as health problems."""

    def __init__(self) -> None:
        self.violations: list[dict[str, Any]] = []
        self.since: dict[tuple, float] = {}

    def update(self, violations: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Store a new check's result; returns the violations not seen last time."""
        keys = {(v["expectation"], *v["pair"]): v for v in violations}
        new = [v for k, v in keys.items() if k not in self.since]
        now = time.time()
        self.since = {k: self.since.get(k, now) for k in keys}
        self.violations = violations
        return new

    def problems(self) -> list[dict[str, Any]]:
        return [{"code": "assertion_violated",
                 "message": f"expected {v['verdict']} from {v['pair'][0]} to {v['pair'][1]} "
                            f"({v['protocol']}{'/' + str(v['port']) if v.get('port') else ''})"
                            f", the installed flows {v['got']} it ({'; '.join(v['traced'])})",
                 "source": "datapath", "expectation": v["expectation"],
                 "since": self.since.get((v["expectation"], *v["pair"]))}
                for v in self.violations]
