"""The engine's connection-table and zone half: the flushes it owes the switches, the
zones that come free once flushed, each protected VM's connection limit, and (a fleet
agent) the zones that follow the VMs this hypervisor hosts. A mixin of
runtime.engine.Engine, which holds the state these read. No Ryu here."""

from __future__ import annotations

import time
from typing import Any

from vgw_ryu.policy.ids import Ids
from vgw_ryu.policy.ruleset import connection_limit
from vgw_ryu.runtime import conntrack
from vgw_ryu.runtime.localzones import RELEASE_AFTER, LocalZones

UNCAPPED = 50_000_000   # a zone limit no datapath reaches (OVS userspace: 3 M entries)


class EngineZones:
    """Uses the engine's _lock, ids, state, zone_file, _flushes, _here, _local,
    switches and listeners."""

    _lock: Any
    ids: Ids
    _here: LocalZones | None

    def take_flushes(self) -> list[tuple[conntrack.FlushPlan, set[int]]]:
        """The flushes owed to the switches (the caller sends them or gives them back)."""
        with self._lock:
            out, self._flushes = self._flushes, []
            return out

    def return_flushes(self, items: list[tuple[conntrack.FlushPlan, set[int]]]) -> None:
        """Flushes that could not be sent now (no switch): keep them, oldest first."""
        with self._lock:
            self._flushes = items + self._flushes

    def zones_flushed(self, zones: set[int]) -> None:
        """Zones flushed on every switch may go to new VMs again (persisted)."""
        with self._lock:
            if not self.ids.zones_flushed(zones):
                return
            self.zone_file.save(self.ids.zone_doc())
            if not self.ids.unnumbered:
                return
            # VMs here waiting for a zone (a full range) may get a freed one now.
            ids = self.ids.copy()
            if not ids.sync(self.state, self._local):
                return
            self.zone_file.save(ids.zone_doc())
            self.ids = ids
        for cb in list(self.listeners):
            cb()

    def connection_limits(self) -> dict[int, int]:
        """zone -> datapath zone limit for every protected VM.

        A VM without a cap still gets a limit, above anything the datapath holds
        (UNCAPPED): the userspace datapath counts a zone's entries only when the zone
        has a limit, and the count is what GET /v1/vms and /metrics show.
        """
        with self._lock:
            return {zone: connection_limit(self.state, name) or UNCAPPED
                    for name, zone in self.ids.zones().items()}

    def _number_local(self) -> None:
        """A fleet agent gives a zone to a protected VM when it first sees it here,
        durably, before any flow uses it."""
        ids = self._here.number(self.ids, self.state, self._present())
        if ids is not None:
            if ids.zone_doc() != self.ids.zone_doc():
                self.zone_file.save(ids.zone_doc())
            self.ids = ids

    def _present(self) -> set[str]:
        return {p.vm for sw in self.switches.values() for p in sw.facts.ports
                if p.kind == "vm" and p.vm}

    def _left_out(self, ids: Ids) -> None:
        if self._here is not None:
            self._here.left_out(self.ids, ids)

    def release_departed(self, after: float = RELEASE_AFTER,
                         now: float | None = None) -> bool:
        """A fleet agent gives back the zones of VMs on none of its switches for
        ``after`` seconds (flushed before reuse); True if it gave any back."""
        with self._lock:
            if self._here is None:
                return False
            now = time.monotonic() if now is None else now
            done = self._here.release(self.ids, self._present(), now, after)
            if done is None:
                return False
            ids, plan = done
            self.zone_file.save(ids.zone_doc())
            self._flushes.append((plan, set(self.ids.zones().values())))
            self.ids = ids
        for cb in list(self.listeners):
            cb()
        return True
