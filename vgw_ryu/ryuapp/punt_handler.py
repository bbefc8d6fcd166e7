"""The punt path: packet-ins become log records, reject answers and learned ports.

A log punt (or a punt with the log bit) is written to the firewall log; a reject punt
is answered with a TCP RST or an ICMP(v6) unreachable; an unknown-port punt teaches the
engine the port's source MAC, and when that MAC is a declared VM's the packet is sent
again through the pipeline once the switch has the VM's flows.

The log path is the hot one (every logged packet within the per-VM meters): it reads
only the header fields a record needs (runtime.pktfields), takes the ids and revision
from a copy refreshed when the state changes rather than a full engine snapshot per
packet, and leaves file writes to the firewall log's batches. So that SIGTERM loses no
batch, the handler has SIGTERM write it out first (below).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from typing import Any

from vgw_ryu.runtime.engine import Engine
from vgw_ryu.runtime.fwlog import FirewallLog, write_out_all
from vgw_ryu.runtime.puntregs import log_record
from vgw_ryu.ryuapp import punts
from vgw_ryu.ryuapp.switch_io import SwitchIO

LOG = logging.getLogger("vgw_ryu")
MAX_REINJECT = 64   # packets kept per switch until its next sync


def write_log_on_sigterm() -> bool:
    """On SIGTERM, write the firewall log's pending batch, then die of SIGTERM as before.

    SIGTERM (systemd, ``kill``) ends the process on the spot, and the records still in
    the firewall log's batch (up to half a second of them) would never reach the file.
    The handler writes them out (without waiting for any lock: it runs on top of the
    code it interrupted), puts the default action back and sends SIGTERM again, so the
    process still ends at once and with the same status. (Unwinding with SystemExit
    instead, as Ctrl-C does, waits in Ryu's app shutdown for loops that never end.)
    A handler someone else installed is left alone; True if this one was installed.
    """
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return False
        signal.signal(signal.SIGTERM, _sigterm)
    except ValueError:   # not the main thread: only it may set handlers
        return False
    return True


def _sigterm(signum: int, frame: Any) -> None:
    try:
        write_out_all()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


class _Names:
    """The answers of one Ids a log record asks for, remembered.

    Ids finds a zone's VM or a rule number's owner by scanning every zone or rule (a
    millisecond at 20,000 rules); a punt asks the same few again and again. One _Names
    lives as long as its Ids (until the state changes).
    """
    MAX_KEPT = 65536   # register values come from our flows; bound them anyway

    def __init__(self, ids: Any):
        self.ids = ids
        self._vms: dict[int, str | None] = {}
        self._owners: dict[int, tuple[str, str] | None] = {}

    def vm_of_zone(self, zone: int) -> str | None:
        try:
            return self._vms[zone]
        except KeyError:
            if len(self._vms) >= self.MAX_KEPT:
                self._vms.clear()
            vm = self._vms[zone] = self.ids.vm_of_zone(zone)
            return vm

    def rule_owner(self, number: int) -> tuple[str, str] | None:
        try:
            return self._owners[number]
        except KeyError:
            if len(self._owners) >= self.MAX_KEPT:
                self._owners.clear()
            owner = self._owners[number] = self.ids.rule_owner(number)
            return owner


class PuntHandler:
    """Handles every packet-in; counts them.

    ``handle_sigterm``: install write_log_on_sigterm() (the controller does; tests
    and benchmarks building a handler in their own process say False).
    """

    def __init__(self, engine: Engine, fwlog: FirewallLog,
                 schedule: Callable[[int], None], handle_sigterm: bool = True):
        self.engine = engine
        self.fwlog = fwlog
        self.schedule = schedule
        self.packet_ins = 0
        self.reinject: dict[int, list[tuple[int, bytes]]] = {}
        # (names, revision) for log records, made again when the state changes (the
        # only time ids are replaced): engine.snapshot() copies every switch's port
        # table, hundreds of microseconds a packet at 1,000 ports.
        self._naming: tuple[_Names, int] | None = None
        engine.on_change(self._state_changed)
        if handle_sigterm:
            write_log_on_sigterm()

    def _state_changed(self) -> None:
        self._naming = None

    def _names_and_revision(self) -> tuple[_Names, int]:
        if self._naming is None:
            snap = self.engine.snapshot()
            self._naming = (_Names(snap.ids), snap.revision)
        return self._naming

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
            names, revision = self._names_and_revision()
            self.fwlog.record(log_record(dp.id, p.regs, names, p.summary(), p.length,
                                         revision))

    def _unknown_port(self, dp: Any, p: punts.Punt, data: bytes) -> None:
        """Identify the port by the source MAC; re-inject the packet once it is a VM."""
        src_mac = p.headers.src_mac
        is_vm = self.engine.learn_new_mac(dp.id, p.in_port, src_mac)
        if is_vm is None:
            return   # already learned: the sync it asked for is on its way
        LOG.info("switch %016x port %d: unknown port sent from %s%s", dp.id, p.in_port,
                 src_mac, " (a declared VM's MAC)" if is_vm else "; applying settings."
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
