"""Connection-table flushes the engine owes, sent to the switches (a part of Syncer).

A VM's zone reused, or an address that left a VM: the entries made under the old owner
are flushed on every switch before any flow lets the new owner send. A big plan may
read the connection table first and flush only the zones that hold its addresses.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from ryu.lib import hub

from vgw_ryu.runtime import conntrack
from vgw_ryu.runtime.ctlimits import UnixctlError, call
from vgw_ryu.ryuapp import ofencode

LOG = logging.getLogger("vgw_ryu")
FLUSH_CHUNK = 2000   # connection-table flush messages per barrier
READ_TABLE_ABOVE = 20_000


class ConntrackFlushes:
    """The flush half of the syncer; uses its engine, io, dps, ports, limits, metrics,
    wake, read_table_above and _recheck."""

    def flush_conntrack(self) -> None:
        """Send the connection-table flushes the engine owes to every connected switch."""
        owed = self.engine.take_flushes()
        if not owed:
            return
        if not self.dps:
            self.engine.return_flushes(owed)   # nobody to flush yet; zones stay held
            return
        dps, local = self.flush_switches()
        for plan, in_use in owed:
            count = conntrack.message_count(plan, in_use)
            messages = None
            if local and 0 <= self.read_table_above < count:
                messages = self.read_targets(plan, in_use)
                if messages is not None:
                    # Entries made by the old owner's traffic until its flows go are
                    # flushed by a second look once this round of syncs is done.
                    self._recheck.append((plan, in_use))
                    LOG.info("conntrack flush of %d address(es): %d message(s) for the "
                             "entries the table holds, instead of %d", len(plan.addresses),
                             len(messages), count)
            elif count > 10 * FLUSH_CHUNK:
                LOG.warning("conntrack flush of %d zone(s) and %d address(es) in %d zone(s): "
                            "%d messages per switch; flows wait until it is done",
                            len(plan.zones), len(plan.addresses), len(in_use), count)
            if not self.send_plan(dps, plan, in_use, messages):
                self.engine.return_flushes([(plan, in_use)])
                continue
            if self.metrics is not None:
                for item in [*plan.zones, *plan.addresses]:
                    self.metrics.conntrack_flushes.labels(item.reason).inc()
            for z in plan.zones:
                LOG.info("conntrack flush on %d switch(es): zone %d of vm %s (%s)", len(dps),
                         z.zone, z.vm, z.reason)
            for a in plan.addresses:
                LOG.info("conntrack flush on %d switch(es): address %s of vm %s (%s), as "
                         "source and destination in %d zone(s)", len(dps), a.addr, a.vm,
                         a.reason, len(in_use - {z.zone for z in plan.zones}))
            self.engine.zones_flushed({z.zone for z in plan.zones})

    def flush_switches(self) -> tuple[list[Any], bool]:
        """The switches a flush goes to (one per datapath type: bridges of one type share
        its connection table), and whether this host's ovs-vswitchd runs all of them
        (only then can the table be read here)."""
        dps = list(self.dps.values())
        ports = self.ports()
        if ports is None or not ports.idl.has_ever_connected():
            return dps, False
        types = ports.datapath_types()
        chosen = conntrack.one_per_datapath(list(self.dps), types)
        # Local: the port directory reads this host's OVSDB (a unix socket) and knows
        # every switch; an OVSDB over TCP may be another host's, whose table the
        # control socket here does not hold.
        local = ports.remote.startswith("unix:") and all(d in types for d in chosen)
        return [self.dps[d] for d in chosen], local

    def send_plan(self, dps: list[Any], plan: conntrack.FlushPlan, in_use: set[int],
                  messages: list[tuple[int, bytes]] | None) -> bool:
        """A plan's messages (None: every zone's, made as sent) to each switch; False
        (logged, a retry woken) when a switch did not take them."""
        try:
            for dp in dps:
                self.send_flushes(dp, messages if messages is not None
                                  else conntrack.iter_messages(plan, in_use))
        except Exception:
            LOG.exception("conntrack flush failed; retrying")
            hub.spawn_after(1.0, self.wake.set)
            return False
        return True

    def send_flushes(self, dp: Any, messages: Iterable[tuple[int, bytes]]) -> None:
        """Flush messages to one switch in chunks, each confirmed: memory stays small
        and the switch (and this controller's other work) keeps up with a big plan."""
        chunk: list = []
        for sub, body in messages:
            chunk.append(ofencode.nicira(dp, sub, body))
            if len(chunk) >= FLUSH_CHUNK:
                self.io.send_and_confirm(dp, chunk)
                chunk = []
        self.io.send_and_confirm(dp, chunk)

    def read_targets(self, plan: conntrack.FlushPlan, in_use: set[int]
                     ) -> list[tuple[int, bytes]] | None:
        """The plan's messages for what the connection table holds now (None: it could
        not be read; the caller flushes every zone)."""
        try:
            dump = call("dpctl/dump-conntrack", socket_path=self.limits.socket_path)
        except UnixctlError as e:
            LOG.warning("cannot read the connection table (%s): flushing the addresses "
                        "in every zone", e)
            return None
        return conntrack.targeted_messages(plan, in_use, dump)

    def recheck_flushes(self) -> None:
        """The second look of targeted flushes, once the flows that let the old owners
        send are gone: whatever entries for their addresses were made meanwhile."""
        todo, self._recheck = self._recheck, []
        dps, _ = self.flush_switches()
        for plan, in_use in todo:
            again = conntrack.FlushPlan([], plan.addresses)
            in_use = in_use - {z.zone for z in plan.zones}   # flushed whole already
            messages = self.read_targets(again, in_use)
            if not self.send_plan(dps, again, in_use, messages):
                self._recheck.append((plan, in_use))
                continue
            LOG.info("conntrack flush, second look after the flows changed: %d "
                     "message(s) for %d address(es)", len(messages or ()),
                     len(plan.addresses))
