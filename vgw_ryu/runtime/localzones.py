"""A fleet agent's zones follow the VMs it hosts.

An agent numbers a protected VM when it first sees the VM's port on one of its
switches, and gives the zone back once the VM has been on none of them for a while (it
moved to another hypervisor, or left while the agent was down): otherwise every VM that
ever visited would keep a zone here, and a narrow ``--vgw-zone-range`` would fill up.
The grace period lets a VM come back (a port re-plugged, a switch reconnecting) with
its zone and connection entries. A zone given back is flushed before it is reused, like
a deleted VM's. The all-in-one controller numbers every protected VM wherever it is and
uses none of this. No Ryu here.
"""

from __future__ import annotations

import logging

from vgw_ryu.policy.ids import Ids
from vgw_ryu.policy.model import State
from vgw_ryu.runtime.conntrack import FlushPlan, ZoneFlush

LOG = logging.getLogger("vgw_ryu.engine")

RELEASE_AFTER = 300.0   # seconds a VM may be away before its zone here is given back


class LocalZones:
    """Which VMs an agent hosts, and since when the numbered ones have been away."""

    def __init__(self, numbered: set[str], now: float):
        self.local: set[str] = set()   # seen on a switch here (ids.sync numbers these)
        # Numbered VMs on no switch here -> when that was first noticed. After a start
        # every VM of the zone file is away until its switch shows it again.
        self.away: dict[str, float] = dict.fromkeys(numbered, now)

    def number(self, ids: Ids, state: State, present: set[str]) -> Ids | None:
        """A copy of ``ids`` numbering the VMs newly ``present`` here, None if none is
        new; logs the VMs the zone range has no room for."""
        for vm in present:
            self.away.pop(vm, None)
        new = present - self.local
        if not new:
            return None
        self.local |= new
        out = ids.copy()
        out.sync(state, self.local)
        self.left_out(ids, out)
        return out

    def release(self, ids: Ids, present: set[str], now: float, after: float
                ) -> tuple[Ids, FlushPlan] | None:
        """Give back the zones of VMs away ``after`` seconds or more: (a copy of ``ids``
        without them, the flush of their zones), or None when nothing is due."""
        for vm in present:
            self.away.pop(vm, None)
        numbered = ids.zones()
        for vm in numbered.keys() - present:
            self.away.setdefault(vm, now)
        for vm in self.away.keys() - numbered.keys():
            del self.away[vm]   # deleted or unprotected: released by the state change
        due = sorted(vm for vm, since in self.away.items() if now - since >= after)
        if not due:
            return None
        for vm in due:
            del self.away[vm]
            self.local.discard(vm)
        out = ids.copy()
        released = out.release(due)
        LOG.info("zones given back: vm %s on no switch here for %.0f s or more",
                 ", ".join(f"{vm} (zone {z})" for vm, z in released.items()), after)
        return out, FlushPlan([ZoneFlush(z, vm, "left this hypervisor")
                               for vm, z in released.items()], [])

    @staticmethod
    def left_out(before: Ids, after: Ids) -> None:
        """Say which protected VMs here got no zone (the range is full): their ports
        drop everything until one frees."""
        new = after.unnumbered - before.unnumbered
        if new:
            LOG.error("no free conntrack zone in %d-%d (--vgw-zone-range) for vm %s: "
                      "its port drops all traffic until a zone is free", *after.zone_range,
                      ", ".join(sorted(new)))
