"""The vgw_ryu Ryu application: start with ``ryu-manager vgw_ryu.app`` or ``vgw-ryu``.

Thin layer: OpenFlow I/O and event plumbing. The decisions live in vgw_ryu.runtime.engine
(state, port identity, desired flows) and vgw_ryu.compiler; this module sends each
switch the difference between the desired flows and what the switch has.
"""

from __future__ import annotations

from vgw_ryu.ryuapp import compat

compat.apply()  # before any Ryu import: ryu.app.wsgi needs it at import time

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

from vgw_ryu.api.handlers import Api
from vgw_ryu.pipeline import tables as pl
from vgw_ryu.pipeline.flows import split_cookie
from vgw_ryu.policy.model import ValidationError
from vgw_ryu.runtime import ovstrace
from vgw_ryu.runtime.engine import Engine
from vgw_ryu.runtime.fwlog import FirewallLog
from vgw_ryu.runtime.ports import Iface, PortDirectory
from vgw_ryu.runtime.store import Store, StoreError
from vgw_ryu.ryuapp import ofencode as ofbuild
from vgw_ryu.ryuapp import options
from vgw_ryu.ryuapp import punts as punt
from vgw_ryu.ryuapp.wsgi import API_INSTANCE, RestController

options.register()

LOG = logging.getLogger("vgw_ryu")
PIPELINE_TABLES = set(pl.BY_ID)
OVSDB_GRACE = 10.0  # seconds after start to wait for OVSDB before using OpenFlow ports


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
        self.started = time.monotonic()
        self.dps: dict[int, Any] = {}
        self.known: dict[int, dict[tuple[int, int], list[tuple[int, Any]]]] = {}
        self.pending: dict[int, bool] = {}       # dpid -> needs a full dump first
        self.wake = hub.Event()
        self.bundle_ids = itertools.count(1)
        self.port_desc: dict[int, list[Iface]] = {}
        self.packet_ins = 0
        self.reinject: dict[int, list[tuple[int, bytes]]] = {}
        self.meter_drops: dict[tuple[int, int], int] = {}
        self.ports: PortDirectory | None = None
        self._state_file_sig: tuple[float, int] | None = None
        self._reload_requested = False
        self.engine.listeners.append(self.schedule_all)
        if self.conf.state:
            self._load_state_file(initial=True)
        self.fwlog = FirewallLog(self.conf.log_file, self.conf.log_max_bytes)
        self.api = Api(self, self.conf.token)
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

    def logs(self, vm=None, verdict=None, since=None, limit=100) -> list[dict]:
        return self.fwlog.query(vm, verdict, since, limit)

    def stats(self) -> dict[str, Any]:
        """Per rule: connection decisions counted by the rule's flows on every switch."""
        per_rule: dict[int, list[int]] = {}
        defaults = {"egress": [0, 0], "ingress": [0, 0]}
        meters = {"log": 0, "reject": 0, "unknown": 0}
        names = {pl.METER_LOG: "log", pl.METER_REJECT: "reject", pl.METER_UNKNOWN: "unknown"}
        for dp in list(self.dps.values()):
            p = dp.ofproto_parser
            ofp = dp.ofproto
            req = p.OFPFlowStatsRequest(dp, 0, pl.T["rules"], ofp.OFPP_ANY, ofp.OFPG_ANY,
                                        0, 0, p.OFPMatch())
            for reply in ofctl_api.send_msg(self, req, reply_cls=p.OFPFlowStatsReply,
                                            reply_multi=True) or []:
                for st in reply.body:
                    owner = split_cookie(st.cookie)
                    if owner is None:
                        continue
                    if owner[0] == pl.KIND_RULE:
                        acc = per_rule.setdefault(owner[1], [0, 0])
                    elif owner[0] == pl.KIND_DEFAULT:
                        reg0 = dict(st.match.items()).get("reg0", (0, 0))
                        value = reg0[0] if isinstance(reg0, tuple) else reg0
                        acc = defaults["ingress" if value & pl.DIR_BIT else "egress"]
                    else:
                        continue
                    acc[0] += st.packet_count
                    acc[1] += st.byte_count
            mreq = p.OFPMeterStatsRequest(dp, 0, ofp.OFPM_ALL)
            for reply in ofctl_api.send_msg(self, mreq, reply_cls=p.OFPMeterStatsReply,
                                            reply_multi=True) or []:
                for ms in reply.body:
                    if ms.meter_id in names and ms.band_stats:
                        meters[names[ms.meter_id]] += ms.band_stats[0].packet_band_count
        policies: dict[str, Any] = {}
        with self.engine.lock:
            for pname, pol in self.engine.state.policies.items():
                rules = {}
                for r in pol.rules:
                    pk, by = per_rule.get(self.engine.ids.rule(pname, r.id), [0, 0])
                    rules[r.id] = {"sessions": pk, "packets": pk, "bytes": by}
                policies[pname] = {"rules": rules}
        return {"policies": policies,
                "defaults": {d: {"sessions": v[0], "packets": v[0], "bytes": v[1]}
                             for d, v in defaults.items()},
                "punts_suppressed": meters,
                "note": "rules see the first packet of each connection (and the first "
                        "after a policy change): sessions counts those decisions",
                "packet_ins": self.packet_ins,
                "switches": len(self.dps), "revision": self.engine.revision}

    def trace_datapath(self, vm: str, direction: str, peer, proto: str,
                       port: int | None) -> dict[str, Any] | None:
        """ofproto/trace of the same connection on the VM's switch, when it is local."""
        where = self.engine.vm_locations().get(vm)
        if not where or self.ports is None:
            return None
        loc = where[0]
        dpid = int(loc["switch"], 16)
        bridge = self.ports.bridge_names().get(dpid)
        if bridge is None:
            return None
        st = self.engine.state
        vm_obj = st.vms[vm]
        mine = [ip for ip in vm_obj.ips if ip.version == peer.version]
        mac = vm_obj.mac or next((p.mac for p in self.engine.switch(dpid).facts.ports
                                  if p.vm == vm), None)
        if not mine or not mac:
            return {"error": f"vm {vm} has no IPv{peer.version} address or MAC to trace with"}
        other_mac = "02:00:00:00:00:fe"
        fam = "ipv6" if peer.version == 6 else "nw"
        l4 = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "icmpv6": "icmp6"}[proto]
        if peer.version == 6 and proto in ("tcp", "udp"):
            l4 += "6"
        if direction == "egress":
            in_port, src_mac, dst_mac = loc["ofport"], mac, other_mac
            src, dst = mine[0], peer
        else:
            uplinks = [p for p in self.engine.switch(dpid).facts.ports if p.kind == "uplink"]
            if not uplinks:
                return {"error": "no uplink on the VM's switch to trace ingress from"}
            in_port, src_mac, dst_mac = uplinks[0].ofport, other_mac, mac
            src, dst = peer, mine[0]
        flow = f"in_port={in_port},{l4},dl_src={src_mac},dl_dst={dst_mac}," \
               f"{fam}_src={src},{fam}_dst={dst}"
        if proto in ("tcp", "udp"):
            flow += f",{proto}_src=40000,{proto}_dst={port}"
        elif proto == "icmp":
            flow += ",icmp_type=8,icmp_code=0"
        else:
            flow += ",icmpv6_type=128,icmpv6_code=0"
        r = ovstrace.trace(bridge, flow, ("trk,new", "trk,new"))
        verdict = "allow" if r.forwarded else ("reject" if "reject" in r.punts else "deny")
        rules = [self.engine.ids.rule_owner(n) for n in r.rules]
        return {"switch": loc["switch"], "bridge": bridge, "flow": flow, "verdict": verdict,
                "punts": sorted(r.punts), "rules": [f"{o[0]}/{o[1]}" for o in rules if o],
                "outputs": sorted(r.outputs)}

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
        last_audit = last_meters = time.monotonic()
        while True:
            hub.sleep(0.5)
            if time.monotonic() - last_meters >= 10:
                last_meters = time.monotonic()
                self._check_meters()
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

    def _ports_ready(self) -> bool:
        return self.ports is not None and self.ports.idl.has_ever_connected()

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
        # After a pause: a flow the switch keeps refusing must not become a busy loop.
        hub.spawn_after(1.0, self.schedule, msg.datapath.id, True)

    # --- the punt path ----------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev):
        msg = ev.msg
        dp = msg.datapath
        self.packet_ins += 1
        p = punt.decode(msg)
        if p is None:
            return
        if p.purpose == "unknown":
            self._unknown_port(dp, p, msg.data)
            return
        if p.purpose == "reject":
            answer = punt.reject_answer(p)
            if answer is not None:
                self._packet_out(dp, p.in_port, answer, dp.ofproto.OFPP_CONTROLLER, p.in_port)
        if p.purpose == "log" or p.log:
            self._log_punt(dp, p)

    def _packet_out(self, dp, in_port: int, data: bytes, from_port: int, out_port: int):
        parser = dp.ofproto_parser
        dp.send_msg(parser.OFPPacketOut(dp, buffer_id=dp.ofproto.OFP_NO_BUFFER,
                                        in_port=from_port,
                                        actions=[parser.OFPActionOutput(out_port)], data=data))

    def _log_punt(self, dp, p: punt.Punt) -> None:
        with self.engine.lock:
            vm = self.engine.ids.vm_of_zone(p.zone) if p.zone else None
            owner = self.engine.ids.rule_owner(p.rule) if p.rule else None
        rec = {"switch": f"{dp.id:016x}", "port": p.in_port, "vm": vm,
               "direction": p.direction, "verdict": p.verdict,
               "policy": owner[0] if owner else None,
               "rule": owner[1] if owner else ("default" if p.rule == 0 else None),
               **p.summary(), "length": p.length}
        self.fwlog.record(rec)

    def _unknown_port(self, dp, p: punt.Punt, data: bytes) -> None:
        """Identify the port by the source MAC; re-inject the packet once it is a VM."""
        key = (dp.id, p.in_port)
        if self.engine.learned.get(key) == p.eth.src.lower():
            return
        is_vm = self.engine.learn_mac(dp.id, p.in_port, p.eth.src)
        LOG.info("switch %016x port %d: unknown port sent from %s%s", dp.id, p.in_port,
                 p.eth.src, " (a declared VM's MAC)" if is_vm else "; applying settings."
                 "unknown_ports")
        if is_vm:
            pending = self.reinject.setdefault(dp.id, [])
            if len(pending) < 64:
                pending.append((p.in_port, data))
        self.schedule(dp.id)

    def _reinject(self, dp) -> None:
        for in_port, data in self.reinject.pop(dp.id, []):
            self._packet_out(dp, in_port, data, in_port, dp.ofproto.OFPP_TABLE)

    def _check_meters(self) -> None:
        """Log when a punt meter dropped packets (events were suppressed)."""
        names = {pl.METER_LOG: "log", pl.METER_REJECT: "reject", pl.METER_UNKNOWN: "unknown"}
        for dp in list(self.dps.values()):
            p = dp.ofproto_parser
            try:
                req = p.OFPMeterStatsRequest(dp, 0, dp.ofproto.OFPM_ALL)
                replies = ofctl_api.send_msg(self, req, reply_cls=p.OFPMeterStatsReply,
                                             reply_multi=True)
            except InvalidDatapath:
                continue
            for reply in replies or []:
                for ms in reply.body:
                    if ms.meter_id not in names or not ms.band_stats:
                        continue
                    n = ms.band_stats[0].packet_band_count
                    prev = self.meter_drops.get((dp.id, ms.meter_id), 0)
                    if n > prev:
                        LOG.warning("switch %016x: %d %s punts suppressed by the rate limit "
                                    "since the last check", dp.id, n - prev,
                                    names[ms.meter_id])
                    self.meter_drops[(dp.id, ms.meter_id)] = n

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
        if not self._ports_ready() and time.monotonic() - self.started < OVSDB_GRACE:
            # Programming from a half-loaded port list would remove VM flows only to
            # add them back: wait for the OVSDB replica (briefly) instead.
            hub.spawn_after(0.2, self.schedule, dpid, full)
            return
        t0 = time.monotonic()
        if full or dpid not in self.known:
            self._ensure_meters(dp)
            self.port_desc[dpid] = self._port_desc(dp)
            self.known[dpid] = self._dump(dp)
        flows, rev = self.engine.desired_flows(dpid, self._ifaces(dpid))
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
        if self.reinject.get(dpid):
            self._reinject(dp)

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
