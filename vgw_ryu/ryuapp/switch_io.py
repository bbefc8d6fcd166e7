"""OpenFlow requests to one switch, answered as plain Python values.

Flow dump, port description, atomic flow changes (OpenFlow 1.4 bundle, else messages
and a barrier; the flow mods come as bytes from vgw_ryu.pipeline.wire), meter
configuration and meter/flow statistics. The decisions about what the answers mean live
in vgw_ryu.runtime (syncdiff, stats).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from ryu.app.ofctl import api as ofctl_api
from ryu.app.ofctl.exception import InvalidDatapath
from ryu.ofproto import ofproto_v1_4

from vgw_ryu.pipeline import framing
from vgw_ryu.pipeline import priorities as prio
from vgw_ryu.pipeline import tables as pl
from vgw_ryu.pipeline.cookies import KIND_VM, kind_mask, owner_bits, split_cookie
from vgw_ryu.pipeline.ctstate import CT_NEW
from vgw_ryu.runtime import syncdiff
from vgw_ryu.runtime.ports import Iface
from vgw_ryu.runtime.puntregs import reg_value
from vgw_ryu.runtime.stats import FlowSample, MeterSample


class SwitchIO:
    """Request/reply exchanges with switches on behalf of a Ryu app."""

    def __init__(self, app: Any):
        self.app = app   # ofctl's send_msg needs the requesting RyuApp
        self.bundle_ids = itertools.count(1)

    def _ask(self, req: Any, reply_cls: Any, multi: bool = True) -> Any:
        """The replies (a list when ``multi``), waiting for them."""
        got = ofctl_api.send_msg(self.app, req, reply_cls=reply_cls, reply_multi=multi)
        return (got or []) if multi else got

    def _flow_stats(self, dp: Any, table: int) -> list:
        p = dp.ofproto_parser
        ofp = dp.ofproto
        req = p.OFPFlowStatsRequest(dp, 0, table, ofp.OFPP_ANY, ofp.OFPG_ANY, 0, 0,
                                    p.OFPMatch())
        return [s for reply in self._ask(req, p.OFPFlowStatsReply) for s in reply.body]

    def dump(self, dp: Any) -> syncdiff.Installed:
        """The switch's flows in the pipeline tables, indexed by (table, cookie)."""
        return syncdiff.index_installed(
            (s.table_id, s.cookie, s.priority, s.match)
            for s in self._flow_stats(dp, dp.ofproto.OFPTT_ALL))

    def rule_flow_stats(self, dp: Any) -> list[FlowSample]:
        """(cookie, reg0, packets, bytes, +new) of every flow in the rules tables (tiers)."""
        out = []
        stats = [s for name in pl.RULE_TABLES for s in self._flow_stats(dp, pl.T[name])]
        for s in stats:
            match = dict(s.match.items())
            out.append((s.cookie, reg_value(match, "reg0"), s.packet_count, s.byte_count,
                        bool(reg_value(match, "ct_state") & CT_NEW)))
        return out

    def invalid_drops(self, dp: Any) -> dict[int, int]:
        """zone -> packets dropped as conntrack-invalid by the VMs' own +inv flows."""
        out: dict[int, int] = {}
        for table in ("egress_state", "ingress_state"):
            for s in self._flow_stats(dp, pl.T[table]):
                owner = split_cookie(s.cookie)
                if s.priority == prio.STATE_INVALID_VM and owner and owner[0] == KIND_VM:
                    out[owner[1]] = out.get(owner[1], 0) + s.packet_count
        return out

    def invalid_drop_total(self, dp: Any) -> tuple[int, int]:
        """(packets, flows) of the VMs' own flows in the state tables, summed by the switch:
        a reply of one entry per table where invalid_drops gets one per VM (which Ryu
        parses at tens of microseconds each, every few seconds, on the controller's one
        core)."""
        p = dp.ofproto_parser
        ofp = dp.ofproto
        packets = flows = 0
        for table in ("egress_state", "ingress_state"):
            req = p.OFPAggregateStatsRequest(dp, 0, pl.T[table], ofp.OFPP_ANY, ofp.OFPG_ANY,
                                             owner_bits(KIND_VM, 0), kind_mask(), p.OFPMatch())
            for reply in self._ask(req, p.OFPAggregateStatsReply):
                packets += reply.body.packet_count
                flows += reply.body.flow_count
        return packets, flows

    def meter_drops(self, dp: Any) -> list[MeterSample]:
        """(meter id, packets dropped by its first band) of every meter with a band."""
        p = dp.ofproto_parser
        req = p.OFPMeterStatsRequest(dp, 0, dp.ofproto.OFPM_ALL)
        return [(ms.meter_id, ms.band_stats[0].packet_band_count)
                for reply in self._ask(req, p.OFPMeterStatsReply) for ms in reply.body
                if ms.band_stats]

    def port_desc(self, dp: Any) -> list[Iface]:
        """Ports as OpenFlow sees them: the fallback when OVSDB has no such bridge."""
        p = dp.ofproto_parser
        out = []
        for reply in self._ask(p.OFPPortDescStatsRequest(dp, 0), p.OFPPortDescStatsReply):
            for port in reply.body:
                if port.port_no < dp.ofproto.OFPP_MAX:
                    name = port.name.decode() if isinstance(port.name, bytes) else port.name
                    out.append(Iface(name, port.port_no, "", {}))
        return sorted(out, key=lambda i: i.ofport)

    def meters(self, dp: Any) -> dict[int, int | None]:
        """meter id -> rate (packets/s) of the meters the switch has."""
        p = dp.ofproto_parser
        have: dict[int, int | None] = {}
        req = p.OFPMeterConfigStatsRequest(dp, 0, dp.ofproto.OFPM_ALL)
        for reply in self._ask(req, p.OFPMeterConfigStatsReply):
            for cfg in reply.body:
                have[cfg.meter_id] = cfg.bands[0].rate if cfg.bands else None
        return have

    def set_meters(self, dp: Any, have: dict[int, int | None], want: dict[int, int]) -> None:
        """Add or modify meters so each wanted one has its rate; ``have`` is updated."""
        bodies = []
        for meter_id, pps in sorted(want.items()):
            if meter_id not in have:
                bodies.append(framing.meter_mod(meter_id, pps, "add"))
            elif have[meter_id] != pps:
                bodies.append(framing.meter_mod(meter_id, pps, "modify"))
            have[meter_id] = pps
        self._send_meter_mods(dp, bodies)

    def delete_meters(self, dp: Any, have: dict[int, int | None], ids: set[int]) -> None:
        """Delete meters (no flow may use them any more); ``have`` is updated."""
        self._send_meter_mods(dp, [framing.meter_mod(meter_id, 0, "delete")
                                   for meter_id in sorted(ids)])
        for meter_id in ids:
            have.pop(meter_id, None)

    def _send_meter_mods(self, dp: Any, bodies: list[bytes]) -> None:
        # As bytes, many per socket write: a VM's log meter each, 1,000 Ryu messages
        # through the datapath's 16-deep send queue switched green threads 1,000 times.
        if bodies:
            self._write(dp, framing.frames(bodies, dp.ofproto.OFP_VERSION,
                                        self._take_xids(dp, len(bodies)),
                                        msg_type=framing.OFPT_METER_MOD))

    def send_atomically(self, dp: Any, bodies: Sequence[bytes]) -> None:
        """Apply flow mods all at once (1.4 bundle) or at least completely (barrier).

        ``bodies`` are flow mod bodies from vgw_ryu.pipeline.wire: they are framed here
        (version, xid, bundle) and written many messages per socket write, without a
        Ryu object per flow. The bundle control and barrier exchanges stay Ryu's.
        """
        if self.has_bundles(dp):
            bundle = self.open_bundle(dp)
            self.bundle_add(dp, bundle, bodies)
            self.commit_bundle(dp, bundle)
        else:
            self._write(dp, framing.frames(bodies, dp.ofproto.OFP_VERSION,
                                        self._take_xids(dp, len(bodies))))
            p = dp.ofproto_parser
            self._ask(p.OFPBarrierRequest(dp), p.OFPBarrierReply, multi=False)

    @staticmethod
    def has_bundles(dp: Any) -> bool:
        """Whether the connection speaks OpenFlow 1.4 or later (bundles)."""
        return dp.ofproto.OFP_VERSION >= ofproto_v1_4.OFP_VERSION

    def open_bundle(self, dp: Any) -> tuple[int, int]:
        """Open an atomic, ordered bundle; its (id, flags)."""
        ofp = dp.ofproto
        bundle = (next(self.bundle_ids), ofp.OFPBF_ATOMIC | ofp.OFPBF_ORDERED)
        self._bundle_ctrl(dp, bundle, ofp.OFPBCT_OPEN_REQUEST)
        return bundle

    def bundle_add(self, dp: Any, bundle: tuple[int, int], bodies: Sequence[bytes]) -> None:
        """Queue flow mod bodies into an open bundle (nothing waits for the switch)."""
        if bodies:
            self._write(dp, framing.frames(bodies, dp.ofproto.OFP_VERSION,
                                        self._take_xids(dp, len(bodies)), bundle))

    def commit_bundle(self, dp: Any, bundle: tuple[int, int]) -> None:
        """Commit an open bundle, waiting for the switch's reply."""
        self._bundle_ctrl(dp, bundle, dp.ofproto.OFPBCT_COMMIT_REQUEST)

    def discard_bundle(self, dp: Any, bundle: tuple[int, int]) -> None:
        """Throw an open bundle away: none of its flow mods take effect."""
        self._bundle_ctrl(dp, bundle, dp.ofproto.OFPBCT_DISCARD_REQUEST)

    def _bundle_ctrl(self, dp: Any, bundle: tuple[int, int], what: int) -> None:
        p = dp.ofproto_parser
        self._ask(p.OFPBundleCtrlMsg(dp, bundle[0], what, bundle[1], []),
                  p.OFPBundleCtrlMsg, multi=False)

    @staticmethod
    def _take_xids(dp: Any, n: int) -> int:
        """Reserve n consecutive xids from the datapath's own counter (the one Ryu and
        the ofctl service number their requests with, so replies never mix); the first."""
        first = (dp.xid + 1) & framing.MAX_XID
        dp.xid = (dp.xid + n) & framing.MAX_XID
        return first

    @staticmethod
    def _write(dp: Any, chunks: Iterable[bytes]) -> None:
        """Queue pre-framed messages on the switch connection, in order."""
        for chunk in chunks:
            if not dp.send(chunk):
                raise InvalidDatapath(result=dp.id)

    def send_and_confirm(self, dp: Any, msgs: list) -> None:
        """Send messages in order and wait until the switch has processed them."""
        for m in msgs:
            dp.send_msg(m)
        p = dp.ofproto_parser
        self._ask(p.OFPBarrierRequest(dp), p.OFPBarrierReply, multi=False)

    @staticmethod
    def packet_out(dp: Any, data: bytes, from_port: int, out_port: int) -> None:
        parser = dp.ofproto_parser
        dp.send_msg(parser.OFPPacketOut(dp, buffer_id=dp.ofproto.OFP_NO_BUFFER,
                                        in_port=from_port,
                                        actions=[parser.OFPActionOutput(out_port)], data=data))
