"""A switch's new flows sent into an open bundle while the compile that makes them runs.

ovs-vswitchd does most of a bundle's work as each add arrives (at 1,000 VMs, 25,000
adds took it ~0.2 s and the commit ~0.06 s): sent while the compile runs, that work
overlaps the compile on the switch's core instead of following it. The bundle stays
one atomic change: nothing applies before its commit, and a compile that fails or is
voided discards it. The bundle is opened before the compile (``open``), because the
compile runs under the engine's lock and waiting for the switch there could wait
forever: the reply comes through Ryu's receive loop, which stalls when the app's event
queue is full of events whose handlers wait for that lock. While the compile runs,
``take`` only queues messages.

ovs-vswitchd drops a bundle that received nothing for its bundle idle timeout (10 s
unless ``other_config:bundle-idle-timeout`` says otherwise): a compile that went that
long without a new flow to stream would commit into a bundle the switch no longer has.
And an add for a bundle id the switch dropped quietly opens a new bundle under that id,
without what the first one held. So once the stream has been idle for ``IDLE_LIMIT``,
at a new chunk or at the compile's end, it is ``stale``: it sends nothing more, and the
sync throws it away and sends the whole change in a new bundle.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ryu.app.ofctl.exception import InvalidDatapath
from ryu.lib import hub

from vgw_ryu.pipeline import wire
from vgw_ryu.pipeline.flows import Flow
from vgw_ryu.runtime import syncdiff
from vgw_ryu.ryuapp.switch_io import SwitchIO

LOG = logging.getLogger("vgw_ryu")

# Half of ovs-vswitchd's default bundle idle timeout.
IDLE_LIMIT = 5.0
clock = time.monotonic   # (tests replace it)


class FlowStream:
    """Flow adds streamed into one bundle of one switch."""

    def __init__(self, io: SwitchIO, dp: Any, known: syncdiff.Installed,
                 meters: dict[int, int | None], meter_rate: Callable[[int], int]):
        self.io = io
        self.dp = dp
        self.known = known
        self.meters = meters            # what the switch has; updated as meters are sent
        self.meter_rate = meter_rate    # meter id -> the rate it gets
        self.bundle: tuple[int, int] | None = None
        self.sent: dict[syncdiff.Key, Flow] = {}
        self.active = 0.0               # when the switch last got a message of the bundle
        self.stale = False              # idle too long once: the switch may have dropped it

    def open(self) -> None:
        """Open the bundle (waits for the switch's reply: call outside the engine lock)."""
        self.bundle = self.io.open_bundle(self.dp)
        self.active = clock()

    def expired(self) -> bool:
        """Idle for IDLE_LIMIT at some point: what the bundle holds is not to be trusted."""
        self.stale = self.stale or (self.bundle is not None
                                    and clock() - self.active > IDLE_LIMIT)
        return self.stale

    def take(self, flows: list[Flow]) -> None:
        """Send these flows' adds now (their meters first), and let them go out."""
        if self.bundle is None:
            raise RuntimeError("FlowStream.take before open: it would wait for the switch")
        if self.expired():
            return   # these go with the whole change, in a new bundle
        known, sent = self.known, self.sent
        new = []
        for f in flows:
            k = (f.table, f.cookie)
            if k not in known:
                new.append(f)
                sent[k] = f
        if not new:
            return
        # A flow may not name a meter the switch lacks: meter mods are no bundle
        # messages, and the switch takes them in order, before the adds.
        named = {f.meter for f in new if f.meter is not None and f.meter not in self.meters}
        if named:
            self.io.set_meters(self.dp, self.meters, {m: self.meter_rate(m) for m in named})
        self.io.bundle_add(self.dp, self.bundle, [e.add for e in wire.encode_all(new)])
        self.active = clock()
        hub.sleep(0)   # the datapath's send loop writes them while the compile goes on

    def discard(self) -> None:
        """Throw away what was streamed (the switch keeps what it had)."""
        bundle, self.bundle = self.bundle, None
        self.sent = {}
        if bundle is not None:
            try:
                self.io.discard_bundle(self.dp, bundle)
            except InvalidDatapath:
                pass   # the connection is gone, and its open bundles with it
            except Exception:
                if self.stale:
                    # (Expected: the switch dropped the idle bundle, and says so.)
                    LOG.info("switch %016x: idle bundle %d already gone", self.dp.id,
                             bundle[0])
                    return
                # (Called on the way out of a failed sync: its error is the one to see.)
                LOG.warning("switch %016x: discarding bundle %d failed", self.dp.id,
                            bundle[0], exc_info=True)
