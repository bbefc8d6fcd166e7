"""The vgw_ryu Ryu application: start with ``ryu-manager vgw_ryu.app`` or ``vgw-ryu``.

Thin layer: Ryu event handlers and the app's green threads. The decisions live in
vgw_ryu.runtime (engine, sync diff, stats, trace, state file) and vgw_ryu.compiler;
the work is done by ryuapp.syncer (flows), ryuapp.punt_handler (packet-ins),
ryuapp.switch_io (OpenFlow requests) and ryuapp.backend (what the REST API asks).
"""

from __future__ import annotations

from vgw_ryu.ryuapp import compat

compat.apply()  # before any Ryu import: ryu.app.wsgi needs it at import time

import logging
import signal
import socket
import sys
import time
from typing import Any

from eventlet.green import threading as green_threading
from ryu.app.ofctl.exception import InvalidDatapath
from ryu.app.wsgi import WSGIApplication
from ryu.base import app_manager
from ryu.controller import ofp_event
from ryu.controller.handler import DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from ryu.lib import hub
from ryu.ofproto import ofproto_v1_3, ofproto_v1_4

from vgw_ryu.api.handlers import Api
from vgw_ryu.pipeline.tables import PUNTS
from vgw_ryu.runtime.assertaudit import datapath_violations
from vgw_ryu.runtime.engine import Engine
from vgw_ryu.runtime.fwlog import FirewallLog
from vgw_ryu.runtime.metrics import Metrics
from vgw_ryu.runtime.ports import PortDirectory
from vgw_ryu.runtime.problems import InvalidWatch, carried_counts, zone_ports
from vgw_ryu.runtime.statefile import StateFileFatalError, StateFileWatcher, load_state_file
from vgw_ryu.runtime.stats import MeterWatch
from vgw_ryu.ryuapp import options, preflight
from vgw_ryu.ryuapp.backend import AppBackend
from vgw_ryu.ryuapp.chassis import ChassisReporter
from vgw_ryu.ryuapp.punt_handler import PuntHandler, write_log_on_sigterm
from vgw_ryu.ryuapp.switch_io import SwitchIO
from vgw_ryu.ryuapp.syncer import OVSDB_GRACE, Syncer
from vgw_ryu.ryuapp.wsgi import API_INSTANCE, RestController, check_bind
from vgw_ryu.store.local import LocalDatabase, import_legacy, is_remote
from vgw_ryu.store.ovsdb import OvsdbStore, StoreError, StoreUnavailableError
from vgw_ryu.store.policycache import PolicyCache
from vgw_ryu.store.server import DbError
from vgw_ryu.store.zonefile import ZoneFile, ZoneFileError

options.register()

__all__ = ["OVSDB_GRACE", "VgwApp", "check_bind", "load_state_file"]
LOG = logging.getLogger("vgw_ryu")
DB_POLL = 0.02        # seconds between looks at the policy database replica
INVALID_CHECK = 3.0   # seconds between reads of the per-VM conntrack-invalid counters
OFCTL_SERVICE = "ryu.app.ofctl.service"   # answers ofctl_api.send_msg (switch_io)
app_manager.require_app(OFCTL_SERVICE)     # for ``ryu-manager vgw_ryu.ryuapp.app``


class VgwApp(app_manager.RyuApp):
    """Programs every connected switch with the compiled firewall and keeps it in sync."""

    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION, ofproto_v1_4.OFP_VERSION]
    _CONTEXTS = {"wsgi": WSGIApplication}

    def __init_subclass__(cls, **kwargs):
        """Ryu loads the apps a module requires (``_REQUIRED_APP``) only for the module
        it was given (vgw_ryu.app subclasses this class there): without the ofctl
        service every switch request would wait forever."""
        super().__init_subclass__(**kwargs)
        required = vars(sys.modules[cls.__module__]).setdefault("_REQUIRED_APP", [])
        if OFCTL_SERVICE not in required:
            required.append(OFCTL_SERVICE)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        conf = self.CONF
        self.conf = conf.vgw
        check_bind(conf.wsapi_host, self.conf.token)
        preflight.check_openflow_listen(conf)
        mode = options.state_mode(self.conf)
        options.zone_range(self.conf)   # a bad range stops the start before any file opens
        self.local_db: LocalDatabase | None = None
        try:
            self._open_database()
        except (DbError, StoreError, ZoneFileError, RuntimeError, ValueError) as e:
            if self.local_db is not None:
                self.local_db.close()
            raise SystemExit(f"vgw_ryu: {e}") from None
        self.dps: dict[int, Any] = {}
        self.ports: PortDirectory | None = None
        self.io = SwitchIO(self)
        self.meter_watch = MeterWatch()
        self.syncer = Syncer(self.engine, self.io, self.dps, lambda: self.ports,
                             {p.meter: getattr(self.conf, f"meter_{p.purpose}_pps")
                              for p in PUNTS},
                             lambda dp: self.punts.reinject_pending(dp))
        self.syncer.read_table_above = self.conf.ct_flush_read_above
        self.syncer.stream_chunk = self.conf.stream_chunk
        self.engine.on_change(self.syncer.schedule_all)
        self.state_file = StateFileWatcher(mode[1], self.engine, mode[0]) if mode else None
        if self.state_file is not None:
            try:
                self.state_file.load(initial=True)
            except StateFileFatalError as e:
                raise SystemExit(f"vgw_ryu: {e}") from None
        try:
            self.fwlog = FirewallLog(options.log_file(self.conf), self.conf.log_max_bytes,
                                     syslog=self.conf.syslog)
        except (ValueError, OSError) as e:
            raise SystemExit(f"vgw_ryu: firewall log: {e}") from None
        self.punts = PuntHandler(self.engine, self.fwlog, self.syncer.schedule,
                                 handle_sigterm=False)
        self.invalid = InvalidWatch()
        # dpid -> (the summed invalid drops, the counts by zone) last read
        self._invalid_read: dict[int, tuple[int, dict[int, int]]] = {}
        self.backend = AppBackend(self.engine, self.fwlog, self.io, self.dps,
                                  lambda: self.ports, lambda: self.punts.packet_ins,
                                  self.state_file, self.invalid)
        self.chassis = ChassisReporter(self.store, self.engine,
                                       options.chassis(self.conf), socket.gethostname())
        self.metrics = Metrics(self.backend.scrape)
        self.backend.metrics = self.metrics
        self.syncer.metrics = self.metrics
        self.api = Api(self.backend, self.conf.token)
        kwargs["wsgi"].register(RestController, {API_INSTANCE: self.api})
        signal.signal(signal.SIGHUP, self._on_sighup)
        write_log_on_sigterm()   # the firewall log's last batch reaches the file
        self.threads.append(hub.spawn(self.syncer.loop))
        self.threads.append(hub.spawn(self._ovsdb_loop))
        self.threads.append(hub.spawn(self._timers_loop))
        self.threads.append(hub.spawn(self._db_loop))
        self.threads.append(hub.spawn(self.chassis.loop))
        LOG.info("vgw_ryu: REST API on http://%s:%s/v1/, OpenFlow on %s:%d, state revision "
                 "%d, db %s%s", conf.wsapi_host, conf.wsapi_port,
                 *preflight.openflow_address(conf), self.engine.snapshot().revision,
                 self.conf.db, f", {self.state_file.option} {self.state_file.path}"
                 if self.state_file else "")

    def _open_database(self) -> None:
        """The policy database (a file this process serves, or a shared one), the
        engine over it, and this hypervisor's zones."""
        remote = self.conf.db
        if not is_remote(remote):
            self.local_db = LocalDatabase(remote)
            remote = self.local_db.open()
        # Green locks: a write waits for the database without stopping other work.
        self.store = OvsdbStore(remote, timeout=self.conf.db_timeout,
                                lock=green_threading.RLock, connect=False)
        zones = ZoneFile(options.zones_file(self.conf))
        cache = PolicyCache(options.policy_cache_file(self.conf)) \
            if self.local_db is None else None
        initial = None
        try:
            self.store.wait_connected(self.conf.db_timeout)
        except StoreUnavailableError as e:
            initial = cache.load() if cache is not None else None
            if initial is None:
                raise
            LOG.warning("%s: enforcing revision %d from %s until the database answers",
                        e, initial.revision, cache.path)
        if self.local_db is not None and self.local_db.legacy is not None:
            import_legacy(self.store, zones, self.local_db.legacy)
        # A fleet agent numbers only the VMs it hosts: zones are per hypervisor.
        self.engine = Engine(self.store, zones, lock=green_threading.RLock,
                             local_zones=self.local_db is None, initial=initial,
                             zone_range=options.zone_range(self.conf))
        if cache is not None:
            def keep() -> None:
                snap = self.engine.snapshot()
                doc = {k: v for k, v in snap.document().items() if k != "revision"}
                cache.save(doc, snap.revision, snap.ids.rule_numbers())
            keep()
            self.engine.on_change(keep)

    def _db_loop(self):
        """Adopt what other writers commit; keep this process's database server up."""
        while True:
            try:
                # Not a block on the replica's socket: a write may be waiting on it
                # (eventlet allows one reader per socket).
                hub.sleep(DB_POLL)
                if self.store.poll():
                    self.engine.refresh()
                if self.local_db is not None:
                    self.local_db.supervise()
            except Exception:
                LOG.exception("following the policy database failed; retrying")
                hub.sleep(1.0)

    def stop(self):
        """Stop the green threads, write the log and the zone file out, stop the
        database server this process runs."""
        # Ryu's stop() joins the app's threads; ours loop forever, so end them first
        # (else Ctrl-C hangs).
        for t in list(self.threads):
            hub.kill(t)
        super().stop()
        self.fwlog.close()
        try:
            self.engine.zone_file.close()   # the zone file whole again
        except ZoneFileError as e:
            LOG.error("%s", e)
        if self.local_db is not None:
            self.local_db.close()

    def schedule(self, dpid: int, full: bool = False) -> None:
        self.syncer.schedule(dpid, full)

    # --- green threads ----------------------------------------------------------------
    def _on_sighup(self, *_):
        if self.state_file is not None:
            self.state_file.request_reload()

    def _timers_loop(self):
        last_audit = last_meters = last_invalid = last_release = time.monotonic()
        while True:
            hub.sleep(0.5)
            self.fwlog.flush()   # folded counts whose second is over
            if time.monotonic() - last_invalid >= INVALID_CHECK:
                last_invalid = time.monotonic()
                self._check_invalid()
            if time.monotonic() - last_meters >= 10:
                last_meters = time.monotonic()
                self._check_meters()
            after = self.conf.zone_release_after
            if after > 0 and time.monotonic() - last_release >= min(10.0, after):
                last_release = time.monotonic()
                try:
                    self.engine.release_departed(after)
                except Exception:   # the timers must go on (firewall log, audits)
                    LOG.exception("giving back the zones of departed VMs failed")
            if self.state_file is not None:
                self.state_file.check()
            if self.conf.audit_interval > 0 and \
                    time.monotonic() - last_audit >= self.conf.audit_interval:
                last_audit = time.monotonic()
                # Assertions first: a flow changed by hand is reported before the
                # full syncs below put it back.
                self._check_assertions()
                for dpid in list(self.dps):
                    self.schedule(dpid, full=True)

    def _check_assertions(self) -> None:
        """Trace every connectivity assertion through the installed flows."""
        snap = self.engine.snapshot()
        if not snap.state.expectations or self.ports is None:
            return
        names = self.ports.bridge_names()
        try:
            found = datapath_violations(snap, names.get)
        except Exception:
            LOG.exception("checking the connectivity assertions in the datapath failed")
            return
        for v in self.backend.assertions.update(found):
            LOG.warning("assertion %d violated in the datapath: expected %s from %s to %s "
                        "(%s %s), the installed flows %s it (%s)", v["expectation"],
                        v["verdict"], v["pair"][0], v["pair"][1], v["protocol"],
                        v.get("port") or "", v["got"], "; ".join(v["traced"]))

    def _check_meters(self) -> None:
        """Log when a punt meter dropped packets (events were suppressed)."""
        for dp in list(self.dps.values()):
            try:
                samples = self.io.meter_drops(dp)
            except InvalidDatapath:
                continue
            for name, n in self.meter_watch.update(dp.id, samples):
                LOG.warning("switch %016x: %d %s punts suppressed by the rate limit "
                            "since the last check", dp.id, n, name)

    def _check_invalid(self) -> None:
        """Report ports whose traffic conntrack marks invalid (log, health, switches)."""
        snap = self.engine.snapshot()
        for dp in list(self.dps.values()):
            ports = zone_ports(snap, dp.id)
            try:
                counts = self._invalid_counts(dp, ports)
            except InvalidDatapath:
                continue
            except Exception:
                LOG.exception("switch %016x: reading conntrack-invalid counters failed",
                              dp.id)
                continue
            for p in self.invalid.update(dp.id, counts, ports):
                LOG.warning("%s", p["message"])
            self.engine.set_port_problems(dp.id, self.invalid.port_problems(dp.id))

    def _invalid_counts(self, dp: Any, ports: dict) -> dict[int, int]:
        """zone -> invalid drops on one switch: read again only when the switch's sum of
        them changed since the last read (a read is a flow entry per VM, parsed by Ryu:
        tens of milliseconds at 1,000 VMs, which every VM plugged used to cost)."""
        packets, _ = self.io.invalid_drop_total(dp)
        counts = carried_counts(self._invalid_read.get(dp.id), packets, ports)
        if counts is None:
            counts = self.io.invalid_drops(dp)
        self._invalid_read[dp.id] = (packets, counts)
        return counts

    def _name_bridges(self) -> None:
        ports = self.ports
        if ports is None:
            return
        names = ports.bridge_names()
        for dpid in list(self.dps):
            self.engine.set_bridge(dpid, names.get(dpid))

    def _ovsdb_loop(self):
        """Port identity from OVSDB: connect, follow changes, reconnect on failure."""
        next_try = last_check = 0.0
        while True:
            if self.ports is None and time.monotonic() >= next_try:
                try:
                    self.ports = PortDirectory(self.conf.ovsdb)
                    LOG.info("OVSDB %s connected", self.conf.ovsdb)
                except Exception as e:
                    LOG.warning("OVSDB %s unavailable (%s); retrying", self.conf.ovsdb, e)
                    next_try = time.monotonic() + 5
            if self.ports is not None:
                try:
                    # Also once a second: a switch that connected between an OVSDB
                    # change and its first sync must not keep a stale port list.
                    if self.ports.poll() or time.monotonic() - last_check >= 1.0:
                        last_check = time.monotonic()
                        self._refresh_ifaces()
                except Exception:
                    LOG.exception("OVSDB replica failed; reconnecting")
                    self.ports = None
            hub.sleep(0.05)

    def _refresh_ifaces(self) -> None:
        self._name_bridges()
        for dpid in list(self.dps):
            if self.engine.update_ifaces(dpid, self.syncer.ifaces(dpid)):
                self.schedule(dpid)

    # --- switches -----------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def _state_change(self, ev):
        dp = ev.datapath
        if ev.state == MAIN_DISPATCHER:
            self.dps[dp.id] = dp
            self.engine.set_of_version(dp.id, dp.ofproto.OFP_VERSION)
            LOG.info("switch %016x connected (OpenFlow 0x%x)", dp.id, dp.ofproto.OFP_VERSION)
            self._name_bridges()
            self.schedule(dp.id, full=True)
        elif ev.state == DEAD_DISPATCHER and dp.id is not None:
            if self.dps.get(dp.id) is dp:
                del self.dps[dp.id]
                self.syncer.forget(dp.id)
                self.invalid.forget(dp.id)
                self._invalid_read.pop(dp.id, None)
                self.engine.forget_switch(dp.id)
                LOG.info("switch %016x disconnected", dp.id)

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def _port_status(self, ev):
        self.schedule(ev.msg.datapath.id)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, MAIN_DISPATCHER)
    def _error(self, ev):
        msg = ev.msg
        LOG.error("switch %016x error type=%d code=%d; resyncing it", msg.datapath.id,
                  msg.type, msg.code)
        # After a pause: a flow the switch keeps refusing must not become a busy loop.
        hub.spawn_after(1.0, self.schedule, msg.datapath.id, True)

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev):
        self.punts.packet_in(ev.msg)
