"""The punt path: packet-ins become log records, reject answers and learned ports.

A log punt (or a punt with the log bit) is written to the firewall log; a reject punt
is answered with a TCP RST or an ICMP(v6) unreachable; an unknown-port punt teaches the
engine the port's source MAC, and when that MAC is a declared VM's the packet is sent
again through the pipeline once the switch has the VM's flows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from vgw_ryu.runtime.engine import Engine
from vgw_ryu.runtime.fwlog import FirewallLog
from vgw_ryu.runtime.puntregs import log_record
from vgw_ryu.ryuapp import punts
from vgw_ryu.ryuapp.switch_io import SwitchIO

LOG = logging.getLogger("vgw_ryu")
MAX_REINJECT = 64   # packets kept per switch until its next sync


class PuntHandler:
    """Handles every packet-in; counts them."""

    def __init__(self, engine: Engine, fwlog: FirewallLog,
                 schedule: Callable[[int], None]):
        self.engine = engine
        self.fwlog = fwlog
        self.schedule = schedule
        self.packet_ins = 0
        self.reinject: dict[int, list[tuple[int, bytes]]] = {}

    def packet_in(self, msg: Any) -> None:
        dp = msg.datapath
        self.packet_ins += 1
        p = punts.decode(msg)
        if p is None:
            return
        if p.purpose == "unknown":
            self._unknown_port(dp, p, msg.data)
            return
        if p.purpose == "reject":
            answer = punts.reject_answer(p)
            if answer is not None:
                SwitchIO.packet_out(dp, answer, dp.ofproto.OFPP_CONTROLLER, p.in_port)
        if p.purpose == "log" or p.log:
            snap = self.engine.snapshot()
            self.fwlog.record(log_record(dp.id, p.regs, snap.ids, p.summary(), p.length,
                                         snap.revision))

    def _unknown_port(self, dp: Any, p: punts.Punt, data: bytes) -> None:
        """Identify the port by the source MAC; re-inject the packet once it is a VM."""
        is_vm = self.engine.learn_new_mac(dp.id, p.in_port, p.eth.src)
        if is_vm is None:
            return   # already learned: the sync it asked for is on its way
        LOG.info("switch %016x port %d: unknown port sent from %s%s", dp.id, p.in_port,
                 p.eth.src, " (a declared VM's MAC)" if is_vm else "; applying settings."
                 "unknown_ports")
        if is_vm:
            pending = self.reinject.setdefault(dp.id, [])
            if len(pending) < MAX_REINJECT:
                pending.append((p.in_port, data))
        self.schedule(dp.id)

    def reinject_pending(self, dp: Any) -> None:
        """Send the held packets of a switch back into its pipeline (after a sync)."""
        for in_port, data in self.reinject.pop(dp.id, []):
            SwitchIO.packet_out(dp, data, in_port, dp.ofproto.OFPP_TABLE)
