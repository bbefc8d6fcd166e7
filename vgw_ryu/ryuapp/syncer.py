"""Keeps each switch's flows equal to the desired set, sending only the difference.

Syncs are scheduled per switch (optionally with a full re-read of the switch first)
and run one at a time by ``loop`` in a green thread. The first sync of a switch, and
every full one, re-reads its meters, ports and flows; later ones trust what was sent.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from typing import Any

from ryu.app.ofctl.exception import InvalidDatapath
from ryu.lib import hub

from vgw_ryu.compiler.owned import STREAM_CHUNK
from vgw_ryu.pipeline import wire
from vgw_ryu.pipeline.tables import LOG_METER_BASE, PUNT_BY_PURPOSE
from vgw_ryu.runtime import conntrack, syncdiff
from vgw_ryu.runtime.ctlimits import UnixctlError, ZoneLimits
from vgw_ryu.runtime.engine import Engine
from vgw_ryu.runtime.gcpause import freeze_if_many, paused_gc
from vgw_ryu.runtime.metrics import Metrics
from vgw_ryu.runtime.ports import Iface, PortDirectory
from vgw_ryu.ryuapp import flowstream, ofencode
from vgw_ryu.ryuapp.flowstream import FlowStream
from vgw_ryu.ryuapp.flushes import READ_TABLE_ABOVE, ConntrackFlushes
from vgw_ryu.ryuapp.switch_io import SwitchIO

LOG = logging.getLogger("vgw_ryu")
OVSDB_GRACE = 10.0  # seconds after start to wait for OVSDB before using OpenFlow ports
# Changes that come together (the ports of one OVSDB transaction and their port-status
# messages, a burst of writes) join one sync: it starts once none came for BATCH_QUIET,
# and never later than BATCH_MAX after the first, so a lone change waits ~1 ms.
BATCH_QUIET = 0.001
BATCH_MAX = 0.01
# A full garbage collection walks every live object: 0.1-0.2 s with 1,000 VMs of flows,
# and it came at random, often in the middle of a change. The automatic collector keeps
# its young generations; full collections run when no sync was due for GC_IDLE seconds
# (or, under endless churn, between syncs once GC_MAX_DEFER passed), and what survives
# them (flows, state: long-lived) is frozen out of the next ones' way, all of it thawed
# for one collection every GC_THAW seconds so no garbage stays frozen for good.
GC_IDLE = 1.0
GC_MAX_DEFER = 30.0
GC_THAW = 600.0
GC_THAW_BUSY = 3600.0   # thawed under endless churn too, less often: writes wait for it
# A sync that changed this many flows made that many long-lived objects: they are frozen
# as soon as the round of syncs ends, so the idle collection that follows does not walk
# them (at 1,000 VMs it took 0.2 s, and a write arriving meanwhile waited for it).
FREEZE_AFTER = 2000
# Switches synced at once: with two, one switch's flows are compiled while another's
# commit runs in ovs-vswitchd (5,000 VMs on 5 bridges: the commits were 2.7 s of 8.9).
SYNC_AHEAD = 2


def match_wire(match: Any) -> bytes:
    """An installed flow's match as ``ofp_match`` bytes: recorded adds already are; a
    match from a flow dump is a Ryu OFPMatch, serialised when it is to be deleted."""
    return match if isinstance(match, bytes) else ofencode.match_bytes(match)


class Syncer(ConntrackFlushes):
    """Scheduling, the sync loop and one switch's sync."""

    def __init__(self, engine: Engine, io: SwitchIO, dps: dict[int, Any],
                 ports: Callable[[], PortDirectory | None],
                 meter_rates: dict[int, int], after_sync: Callable[[Any], None]):
        self.engine = engine
        self.io = io
        self.dps = dps
        self.ports = ports
        self.meter_rates = meter_rates
        self.after_sync = after_sync   # called with the datapath after each sync
        self.started = time.monotonic()
        self.known: dict[int, syncdiff.Installed] = {}
        self.meters: dict[int, dict[int, int | None]] = {}   # dpid -> meter id -> rate
        self.metrics: Metrics | None = None
        self.pending: dict[int, bool] = {}       # dpid -> needs a full dump first
        self.port_desc: dict[int, list[Iface]] = {}
        # Every switch's interfaces as OVSDB last said, and the replica's change number
        # they are from: reading them costs ~0.2 s per 1,000 ports, so once per change.
        self._bridges: dict[int, list[Iface]] = {}
        self._bridges_seq: tuple[PortDirectory, int] | None = None
        self.wake = hub.Event()
        self.limits = ZoneLimits()
        self._limits_error: str | None = None
        self._limits_rev: int | None = None   # revision whose limits are applied
        self._collected = self._thawed = time.monotonic()   # last full collections
        self._freeze = False   # a sync made many long-lived objects: freeze them
        self._syncing: set[int] = set()   # switches whose sync is under way
        self._sync_ended = hub.Event()
        # A flush plan of more messages than this reads the connection table first and
        # flushes only the zones holding its addresses (-1: never, 0: always).
        self.read_table_above = READ_TABLE_ABOVE
        self._recheck: list[tuple[conntrack.FlushPlan, set[int]]] = []
        # New flows sent into the bundle this many at a time while the compile runs
        # (0: none; all sent after it).
        self.stream_chunk = STREAM_CHUNK

    def schedule(self, dpid: int, full: bool = False) -> None:
        self.pending[dpid] = self.pending.get(dpid, False) or full
        self.wake.set()

    def schedule_all(self) -> None:
        for dpid in list(self.dps):
            self.schedule(dpid)

    def forget(self, dpid: int) -> None:
        self.known.pop(dpid, None)
        self.meters.pop(dpid, None)

    def ports_ready(self) -> bool:
        ports = self.ports()
        return ports is not None and ports.idl.has_ever_connected()

    def ifaces(self, dpid: int) -> list[Iface]:
        """A switch's interfaces: from OVSDB, else as OpenFlow last described them."""
        ports = self.ports()
        if ports is not None:
            seq = (ports, ports.idl.change_seqno)
            if self._bridges_seq is None or self._bridges_seq[0] is not ports or \
                    self._bridges_seq[1] != seq[1]:
                self._bridges, self._bridges_seq = ports.bridges(), seq
            found = self._bridges.get(dpid)
            if found is not None:
                return found
        return self.port_desc.get(dpid, [])

    def loop(self) -> None:
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, 1 << 30)   # no automatic full collection
        while True:
            idle = not self.wake.wait(timeout=GC_IDLE)
            if idle or time.monotonic() - self._collected > GC_MAX_DEFER:
                self.collect_garbage(idle)
                continue
            self.gather()
            # Stale connection entries go before any flow that lets a new owner of an
            # address (or a reused zone) send: flushes first, on every switch.
            self.flush_conntrack()
            self.sync_pending()
            # After the flows: a new VM's flows waited for this unixctl round trip.
            self.apply_limits()
            if self._recheck:
                self.recheck_flushes()
            if self._freeze:
                self._freeze = False
                gc.freeze()

    def sync_pending(self) -> None:
        """Sync every switch with changes; returns when none is pending or under way.

        Oldest first: a switch scheduled again while it syncs goes to the back, so a
        busy switch cannot starve the others. Up to SYNC_AHEAD switches at once, never
        one switch twice: while one switch commits (ovs-vswitchd's work, on another
        core), the next one's flows are compiled.
        """
        while self.pending or self._syncing:
            self._sync_ended.clear()
            dpid = next((d for d in self.pending if d not in self._syncing), None)
            if dpid is None or len(self._syncing) >= SYNC_AHEAD:
                self._sync_ended.wait()
                continue
            full = self.pending.pop(dpid)
            self._syncing.add(dpid)
            hub.spawn(self._sync_one, dpid, full)

    def _sync_one(self, dpid: int, full: bool) -> None:
        try:
            self.sync(dpid, full)
        except InvalidDatapath:
            LOG.info("switch %016x went away during sync", dpid)
        except Exception:
            LOG.exception("sync of switch %016x failed; retrying with a full dump", dpid)
            self.known.pop(dpid, None)
            hub.spawn_after(1.0, self.schedule, dpid, True)
        finally:
            self._syncing.discard(dpid)
            self._sync_ended.set()

    def note_changed(self, flow_mods: int) -> None:
        """A sync sent ``flow_mods``; many are frozen out of the collector's way when
        the round of syncs ends (what the sync's own steps made, at their ends)."""
        if flow_mods >= FREEZE_AFTER:
            self._freeze = True

    def collect_garbage(self, idle: bool = True) -> None:
        """A full collection if objects grew old since the last one (of everything, frozen
        too, every GC_THAW when idle, every GC_THAW_BUSY under churn), then freeze what
        is left."""
        now = self._collected = time.monotonic()
        if now - self._thawed > (GC_THAW if idle else GC_THAW_BUSY):
            gc.unfreeze()
            self._thawed = now
        elif gc.get_count()[2] == 0:
            return
        gc.collect()
        gc.freeze()

    def gather(self) -> None:
        """Wait while changes keep coming (BATCH_QUIET apart), at most BATCH_MAX."""
        deadline = time.monotonic() + BATCH_MAX
        self.wake.clear()
        while time.monotonic() < deadline:
            hub.sleep(BATCH_QUIET)
            if not self.wake.is_set():
                return
            self.wake.clear()

    def apply_limits(self) -> None:
        """Keep the datapath's per-zone connection caps equal to the VMs' limits."""
        rev = self.engine.revision   # (a whole snapshot copies every switch's ports)
        if rev == self._limits_rev:
            return   # limits only change with the state
        wanted = self.engine.connection_limits()
        if wanted == self.limits.applied:
            self._limits_rev = rev
            return
        try:
            changes = self.limits.apply(wanted)
            if changes:
                LOG.info("connection limits: %d zone(s) changed (%s%s)", len(changes),
                         ", ".join(changes[:5]), ", ..." if len(changes) > 5 else "")
            self._limits_error = None
            self._limits_rev = rev
        except UnixctlError as e:
            if str(e) != self._limits_error:   # say it once, retry quietly
                LOG.warning("connection limits not applied yet: %s", e)
            self._limits_error = str(e)
            hub.spawn_after(2.0, self.wake.set)

    def sync(self, dpid: int, full: bool = False) -> None:
        """Make one switch's flows equal to the desired set, sending only the difference."""
        dp = self.dps.get(dpid)
        if dp is None:
            return
        if not self.ports_ready() and time.monotonic() - self.started < OVSDB_GRACE:
            # Programming from a half-loaded port list would remove VM flows only to
            # add them back: wait for the OVSDB replica (briefly) instead.
            hub.spawn_after(0.2, self.schedule, dpid, full)
            return
        t0 = time.monotonic()
        dumped = full or dpid not in self.known
        if dumped:
            self.meters[dpid] = self.io.meters(dp)
            self.port_desc[dpid] = self.io.port_desc(dp)
            self.known[dpid] = self.io.dump(dp)
        t_read = time.monotonic()
        known = self.known[dpid]
        have = self.meters[dpid]
        holds = getattr(known, "synced", None)   # the compiler's result the switch has
        stream = self._stream(dp, known, have, holds)
        if stream is not None:
            stream.open()   # here: the compile holds the engine lock, and must not wait
        try:
            rev, want, d, bodies, t_compiled, t_encoded = self._prepare(
                dp, dpid, known, have, stream, holds)
            if stream is not None and stream.bundle is not None and (bodies or stream.sent):
                bundle, stream.bundle = stream.bundle, None   # committed, or gone with it
                self.io.bundle_add(dp, bundle, bodies)
                self.io.commit_bundle(dp, bundle)
            else:
                if stream is not None:
                    stream.discard()   # nothing to change, or voided (discarded already)
                if bodies:
                    self.io.send_atomically(dp, bodies)
        except Exception:
            if stream is not None:
                stream.discard()   # nothing streamed takes effect
            raise
        if d:
            with paused_gc():
                syncdiff.record(known, d, wire.match_of)
                freeze_if_many()
            self.note_changed(len(d.adds) + len(d.dels))
            t1 = time.monotonic()
            # Where the time went: reading the switch (full syncs), compiling (with the
            # meters, the diff and the flows sent meanwhile), encoding the rest, and the
            # switch taking the change (until its commit or barrier reply).
            LOG.info("switch %016x: revision %d programmed: +%d -%d flows (%d total, "
                     "%.0f ms: %scompile %.0f, encode %.0f, switch %.0f%s)", dpid, rev,
                     len(d.adds), len(d.dels), len(known), (t1 - t0) * 1000,
                     f"switch read {(t_read - t0) * 1000:.0f}, " if dumped else "",
                     (t_compiled - t_read) * 1000, (t_encoded - t_compiled) * 1000,
                     (t1 - t_encoded) * 1000,
                     f"; {len(stream.sent)} sent during the compile"
                     if stream is not None and stream.sent else "")
        gone = {m for m in have if m >= LOG_METER_BASE and m not in want}
        if gone:
            self.io.delete_meters(dp, have, gone)
        self.engine.mark_applied(dpid, rev, len(known))
        if self.metrics is not None:
            self.metrics.sync_seconds.observe(time.monotonic() - t0)
            if d:
                self.metrics.flow_mods.labels("add").inc(len(d.adds))
                self.metrics.flow_mods.labels("delete").inc(len(d.dels))
        self.after_sync(dp)

    def _prepare(self, dp: Any, dpid: int, known: syncdiff.Installed,
                 have: dict[int, int | None], stream: FlowStream | None,
                 holds: int | None) -> tuple:
        """Compile (streaming what it can), send the meters, diff and encode the rest:
        (revision, wanted meters, diff, flow mod bodies, compiled at, encoded at)."""
        # The CPU-bound steps run with the collector paused and freeze what a large one
        # made: young collections walked the new flows again and again (the waits for
        # the switch run with it on).
        with paused_gc():
            flows, rev = self.engine.desired_flows(dpid, self.ifaces(dpid),
                                                   stream and stream.take, holds,
                                                   self.stream_chunk)
            freeze_if_many()
        if stream is not None and getattr(flows, "base", None) != holds:
            stream.discard()   # a full compile came instead: what was sent is void
        elif stream is not None and stream.expired():
            LOG.info("switch %016x: the compile left the streamed bundle idle over %.0f s "
                     "(the switch may have dropped it): the change goes in a new bundle",
                     dpid, flowstream.IDLE_LIMIT)
            stream.discard()
        # Meters first (a flow may not name a meter the switch lacks), unused VM log
        # meters last (once no flow names them).
        want = self.wanted_meters(flows)
        self.io.set_meters(dp, have, want)
        with paused_gc():
            d = syncdiff.diff(flows, known)
            adds, dropped = d.adds, []
            if stream is not None and stream.sent:
                adds, dropped = syncdiff.after_stream(d, stream.sent)
            t_compiled = time.monotonic()
            # Flow mods as bytes straight from the flows (pipeline.wire): Ryu message
            # objects for tens of thousands of flows cost far more than OVS's work.
            bodies = [e.add for e in wire.encode_all(adds)]
            bodies += [wire.delete_strict(table, prio, match_wire(match), cookie)
                       for (table, cookie), (prio, match) in d.dels]
            bodies += [wire.delete_strict(f.table, f.priority, wire.match_of(f), f.cookie)
                       for f in dropped]
            t_encoded = time.monotonic()
            freeze_if_many()
        return rev, want, d, bodies, t_compiled, t_encoded

    def _stream(self, dp: Any, known: syncdiff.Installed, have: dict[int, int | None],
                holds: int | None) -> FlowStream | None:
        """A stream for the flows the compile adds, where the switch takes bundles and
        holds a known result of the compiler (else the sync sends after the compile)."""
        if holds is None or self.stream_chunk <= 0 or not self.io.has_bundles(dp):
            return None
        return FlowStream(self.io, dp, known, have, self.meter_rate)

    def wanted_meters(self, flows: list) -> dict[int, int]:
        """meter id -> rate for the punt meters and every meter the flows name."""
        want = dict(self.meter_rates)
        # The incremental compiler's FlowList knows them; other lists are looked through.
        named = getattr(flows, "meters", None)
        if named is None:
            named = {f.meter for f in flows if f.meter is not None}
        for meter in named:
            if meter not in want:
                want[meter] = self.meter_rate(meter)
        return want

    def meter_rate(self, meter: int) -> int:
        """A meter's rate: a punt meter's own, else (a VM's own log meter) the log rate."""
        rate = self.meter_rates.get(meter)
        return rate if rate is not None else self.meter_rates[PUNT_BY_PURPOSE["log"].meter]
