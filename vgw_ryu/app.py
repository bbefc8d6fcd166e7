"""The vgw_ryu Ryu application: start with ``ryu-manager vgw_ryu.app`` or ``vgw-ryu``.

Thin layer: OpenFlow I/O and event plumbing. The decisions live in vgw_ryu.engine
(state, port identity, desired flows) and vgw_ryu.compiler; this module sends each
switch the difference between the desired flows and what the switch has.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import os
import signal
import time
from typing import Any

import yaml
from ryu.app.ofctl import api as ofctl_api
from ryu.app.ofctl.exception import InvalidDatapath
from ryu.app.wsgi import WSGIApplication
from ryu.base import app_manager
from ryu.controller import ofp_event
from ryu.controller.handler import DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from ryu.lib import hub
from ryu.ofproto import ofproto_v1_3, ofproto_v1_4

from vgw_ryu import compat, ofbuild, options
from vgw_ryu import pipeline as pl
from vgw_ryu.engine import Engine
from vgw_ryu.http_api import Api
from vgw_ryu.model import ValidationError
from vgw_ryu.ovsdb import Iface, PortDirectory
from vgw_ryu.ryu_rest import API_INSTANCE, RestController
from vgw_ryu.store import Store, StoreError

compat.apply()
options.register()

LOG = logging.getLogger("vgw_ryu")
PIPELINE_TABLES = set(pl.BY_ID)


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve the API off loopback without a token."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not token:
        raise SystemExit(
            f"vgw_ryu: refusing to serve the REST API on {host}: binding off loopback "
            "needs a token (--vgw-token or [vgw] token in the config file)")


def load_state_file(path: str) -> tuple[str, Any]:
    """Text and parsed YAML/JSON of a state file (ValueError with the reason)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        return text, yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not YAML/JSON: {e}") from None


class VgwApp(app_manager.RyuApp):
    """Programs every connected switch with the compiled firewall and keeps it in sync."""

    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION, ofproto_v1_4.OFP_VERSION]
    _CONTEXTS = {"wsgi": WSGIApplication}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        conf = self.CONF
        self.conf = conf.vgw
        check_bind(conf.wsapi_host, self.conf.token)
        try:
            self.store = Store(self.conf.db)
            self.engine = Engine(self.store)
        except (StoreError, RuntimeError) as e:
            raise SystemExit(f"vgw_ryu: {e}") from None
        self.dps: dict[int, Any] = {}
        self.known: dict[int, dict[tuple[int, int], list[tuple[int, Any]]]] = {}
        self.pending: dict[int, bool] = {}       # dpid -> needs a full dump first
        self.wake = hub.Event()
        self.bundle_ids = itertools.count(1)
        self.port_desc: dict[int, list[Iface]] = {}
        self.ports: PortDirectory | None = None
        self._state_file_sig: tuple[float, int] | None = None
        self._reload_requested = False
        self.engine.listeners.append(self.schedule_all)
        if self.conf.state:
            self._load_state_file(initial=True)
        self.api = Api(self)
        kwargs["wsgi"].register(RestController, {API_INSTANCE: self.api})
        signal.signal(signal.SIGHUP, self._on_sighup)
        self.threads.append(hub.spawn(self._sync_loop))
        self.threads.append(hub.spawn(self._ovsdb_loop))
        self.threads.append(hub.spawn(self._timers_loop))
        LOG.info("vgw_ryu: REST API on http://%s:%s/v1/, state revision %d, db %s",
                 conf.wsapi_host, conf.wsapi_port, self.engine.revision, self.conf.db)

    # --- backend interface of the REST API ----------------------------------------
    def revision(self) -> int:
        return self.engine.revision

    def switch_count(self) -> int:
        return len(self.dps)

    # --- policy input: the state file -----------------------------------------------
    def _on_sighup(self, *_):
        self._reload_requested = True

    def _load_state_file(self, initial: bool = False) -> None:
        path = self.conf.state
        try:
            st = os.stat(path)
            self._state_file_sig = (st.st_mtime, st.st_size)
            text, doc = load_state_file(path)
            rev = self.engine.seed_from_file(text, doc)
        except (OSError, ValueError, ValidationError) as e:
            if initial and self.engine.revision == 0:
                raise SystemExit(f"vgw_ryu: state file rejected: {e}") from None
            LOG.error("state file %s rejected, keeping revision %d: %s", path,
                      self.engine.revision, e)
            return
        if rev is None:
            LOG.info("state file %s unchanged since it was last applied", path)
        else:
            LOG.info("state file %s applied as revision %d", path, rev)

    def _timers_loop(self):
        last_audit = time.monotonic()
        while True:
            hub.sleep(0.5)
            if self.conf.state:
                try:
                    st = os.stat(self.conf.state)
                    sig = (st.st_mtime, st.st_size)
                except OSError:
                    sig = None
                if self._reload_requested or (sig is not None and sig != self._state_file_sig):
                    self._reload_requested = False
                    self._load_state_file()
            if self.conf.audit_interval > 0 and \
                    time.monotonic() - last_audit >= self.conf.audit_interval:
                last_audit = time.monotonic()
                for dpid in list(self.dps):
                    self.schedule(dpid, full=True)

    # --- port identity from OVSDB ---------------------------------------------------
    def _ovsdb_loop(self):
        next_try = 0.0
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
                    if self.ports.poll():
                        self._refresh_ifaces()
                except Exception:
                    LOG.exception("OVSDB replica failed; reconnecting")
                    self.ports = None
            hub.sleep(0.05)

    def _ifaces(self, dpid: int) -> list[Iface]:
        if self.ports is not None:
            found = self.ports.bridges().get(dpid)
            if found is not None:
                return found
        return self.port_desc.get(dpid, [])

    def _refresh_ifaces(self) -> None:
        for dpid in list(self.dps):
            ifaces = self._ifaces(dpid)
            if ifaces != self.engine.switch(dpid).ifaces:
                self.engine.refresh_facts(dpid, ifaces)
                self.schedule(dpid)

    # --- switches ------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def _state_change(self, ev):
        dp = ev.datapath
        if ev.state == MAIN_DISPATCHER:
            self.dps[dp.id] = dp
            self.engine.switch(dp.id).of_version = dp.ofproto.OFP_VERSION
            LOG.info("switch %016x connected (OpenFlow 0x%x)", dp.id, dp.ofproto.OFP_VERSION)
            self.schedule(dp.id, full=True)
        elif ev.state == DEAD_DISPATCHER and dp.id is not None:
            if self.dps.get(dp.id) is dp:
                del self.dps[dp.id]
                self.known.pop(dp.id, None)
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
        self.schedule(msg.datapath.id, full=True)

    def schedule(self, dpid: int, full: bool = False) -> None:
        self.pending[dpid] = self.pending.get(dpid, False) or full
        self.wake.set()

    def schedule_all(self) -> None:
        for dpid in list(self.dps):
            self.schedule(dpid)

    def _sync_loop(self):
        while True:
            self.wake.wait()
            self.wake.clear()
            while self.pending:
                dpid, full = self.pending.popitem()
                try:
                    self.sync(dpid, full)
                except InvalidDatapath:
                    LOG.info("switch %016x went away during sync", dpid)
                except Exception:
                    LOG.exception("sync of switch %016x failed; retrying with a full dump",
                                  dpid)
                    self.known.pop(dpid, None)
                    hub.spawn_after(1.0, self.schedule, dpid, True)

    def _dump(self, dp) -> dict[tuple[int, int], list[tuple[int, Any]]]:
        p = dp.ofproto_parser
        ofp = dp.ofproto
        req = p.OFPFlowStatsRequest(dp, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY, ofp.OFPG_ANY,
                                    0, 0, p.OFPMatch())
        known: dict[tuple[int, int], list[tuple[int, Any]]] = {}
        for reply in ofctl_api.send_msg(self, req, reply_cls=p.OFPFlowStatsReply,
                                        reply_multi=True) or []:
            for s in reply.body:
                if s.table_id in PIPELINE_TABLES:
                    known.setdefault((s.table_id, s.cookie), []).append((s.priority, s.match))
        return known

    def _port_desc(self, dp) -> list[Iface]:
        """Ports as OpenFlow sees them: the fallback when OVSDB has no such bridge."""
        p = dp.ofproto_parser
        out = []
        for reply in ofctl_api.send_msg(self, p.OFPPortDescStatsRequest(dp, 0),
                                        reply_cls=p.OFPPortDescStatsReply,
                                        reply_multi=True) or []:
            for port in reply.body:
                if port.port_no < dp.ofproto.OFPP_MAX:
                    name = port.name.decode() if isinstance(port.name, bytes) else port.name
                    out.append(Iface(name, port.port_no, "", {}))
        return sorted(out, key=lambda i: i.ofport)

    def _ensure_meters(self, dp) -> None:
        p = dp.ofproto_parser
        want = {pl.METER_LOG: self.conf.meter_log_pps,
                pl.METER_REJECT: self.conf.meter_reject_pps,
                pl.METER_UNKNOWN: self.conf.meter_unknown_pps}
        have: dict[int, int | None] = {}
        replies = ofctl_api.send_msg(self, p.OFPMeterConfigStatsRequest(dp, 0, dp.ofproto.OFPM_ALL),
                                     reply_cls=p.OFPMeterConfigStatsReply, reply_multi=True)
        for reply in replies or []:
            for cfg in reply.body:
                have[cfg.meter_id] = cfg.bands[0].rate if cfg.bands else None
        for meter_id, pps in want.items():
            if meter_id not in have:
                dp.send_msg(ofbuild.meter_mod(dp, meter_id, pps, "add"))
            elif have[meter_id] != pps:
                dp.send_msg(ofbuild.meter_mod(dp, meter_id, pps, "modify"))

    def sync(self, dpid: int, full: bool = False) -> None:
        """Make one switch's flows equal to the desired set, sending only the difference."""
        dp = self.dps.get(dpid)
        if dp is None:
            return
        t0 = time.monotonic()
        if full or dpid not in self.known:
            self._ensure_meters(dp)
            self.port_desc[dpid] = self._port_desc(dp)
            self.known[dpid] = self._dump(dp)
        self.engine.refresh_facts(dpid, self._ifaces(dpid))
        flows, rev = self.engine.desired_flows(dpid)
        known = self.known[dpid]
        desired = {(f.table, f.cookie): f for f in flows}
        adds = [f for k, f in desired.items() if k not in known]
        dels = [(k, entry) for k, entries in known.items() if k not in desired
                for entry in entries]
        if adds or dels:
            msgs = [ofbuild.add(dp, f) for f in adds]
            msgs += [ofbuild.delete_strict(dp, table, prio, match, cookie)
                     for (table, cookie), (prio, match) in dels]
            self._send_atomically(dp, msgs)
            for k, _ in dels:
                known.pop(k, None)
            for f in adds:
                known[(f.table, f.cookie)] = [(f.priority, ofbuild.match(dp, f))]
            LOG.info("switch %016x: revision %d programmed: +%d -%d flows (%d total, "
                     "%.0f ms%s)", dpid, rev, len(adds), len(dels), len(known),
                     (time.monotonic() - t0) * 1000, ", after a full dump" if full else "")
        sw = self.engine.switch(dpid)
        sw.applied_revision = rev
        sw.flow_count = len(known)

    def _send_atomically(self, dp, msgs: list) -> None:
        p = dp.ofproto_parser
        ofp = dp.ofproto
        if ofp.OFP_VERSION >= ofproto_v1_4.OFP_VERSION:
            bid = next(self.bundle_ids)
            flags = ofp.OFPBF_ATOMIC | ofp.OFPBF_ORDERED
            ofctl_api.send_msg(self, p.OFPBundleCtrlMsg(dp, bid, ofp.OFPBCT_OPEN_REQUEST,
                                                        flags, []),
                               reply_cls=p.OFPBundleCtrlMsg)
            for m in msgs:
                dp.send_msg(p.OFPBundleAddMsg(dp, bid, flags, m, []))
            ofctl_api.send_msg(self, p.OFPBundleCtrlMsg(dp, bid, ofp.OFPBCT_COMMIT_REQUEST,
                                                        flags, []),
                               reply_cls=p.OFPBundleCtrlMsg)
        else:
            for m in msgs:
                dp.send_msg(m)
            ofctl_api.send_msg(self, p.OFPBarrierRequest(dp), reply_cls=p.OFPBarrierReply)
