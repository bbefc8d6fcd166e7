"""Flows (vgw_ryu.pipeline.flows) as Ryu OpenFlow 1.3/1.4 messages.

Every builder mirrors one ovs-ofctl text form; tests/sandbox/test_app_sync.py installs
the same flows both ways and requires OVS to show identical tables. Flow mods are sent
as bytes from vgw_ryu.pipeline.wire (much faster for many flows); ``add`` and
``delete_strict`` here are its reference (tests/unit/test_wire.py compares the bytes),
and so is ``meter_mod`` for meter mods. Conntrack flushes and packet-outs are built here.
"""

from __future__ import annotations

from typing import Any

from ryu.ofproto import nicira_ext

from vgw_ryu.pipeline.flows import (
    Action,
    Conjunction,
    Controller,
    Ct,
    CtClear,
    Flow,
    Load,
    Move,
    Normal,
    OutputReg,
    Resubmit,
)

NX_CT_RECIRC_NONE = 0xFF
ALL_COOKIE_BITS = 0xFFFFFFFFFFFFFFFF


def action(dp: Any, a: Action) -> Any:
    """One Ryu action object for one flows.Action."""
    p = dp.ofproto_parser
    ofp = dp.ofproto
    if isinstance(a, Resubmit):
        return p.NXActionResubmitTable(table_id=a.table)
    if isinstance(a, Load):
        return p.NXActionRegLoad(ofs_nbits=nicira_ext.ofs_nbits(a.ofs, a.ofs + a.nbits - 1),
                                 dst=a.dst, value=a.value)
    if isinstance(a, Move):
        return p.NXActionRegMove(src_field=a.src, dst_field=a.dst, n_bits=32)
    if isinstance(a, Ct):
        inner = [p.OFPActionSetField(ct_mark=a.mark)] if a.mark is not None else []
        if a.label_reg is not None:
            inner += [p.NXActionRegMove(src_field=a.label_reg, dst_field="ct_label",
                                        n_bits=32, src_ofs=0, dst_ofs=0),
                      p.NXActionRegLoad(ofs_nbits=nicira_ext.ofs_nbits(32, 32),
                                        dst="ct_label", value=1)]
        return p.NXActionCT(flags=1 if a.commit else 0, zone_src=a.zone_reg,
                            zone_ofs_nbits=nicira_ext.ofs_nbits(0, 15),
                            recirc_table=NX_CT_RECIRC_NONE if a.table is None else a.table,
                            alg=0, actions=inner)
    if isinstance(a, CtClear):
        return p.NXActionCTClear()
    if isinstance(a, Conjunction):
        # On the wire the clause is 0-based; ovs-ofctl prints it 1-based.
        return p.NXActionConjunction(clause=a.clause - 1, n_clauses=a.n_clauses, id_=a.id)
    if isinstance(a, OutputReg):
        return p.NXActionOutputReg(ofs_nbits=nicira_ext.ofs_nbits(0, 31), src=a.reg,
                                   max_len=0)
    if isinstance(a, Normal):
        return p.OFPActionOutput(ofp.OFPP_NORMAL)
    if isinstance(a, Controller):
        return p.OFPActionOutput(ofp.OFPP_CONTROLLER, a.max_len)
    raise TypeError(f"no OpenFlow encoding for {a!r}")


def match(dp: Any, flow: Flow) -> Any:
    return dp.ofproto_parser.OFPMatch(**dict(flow.match))


def match_bytes(ofmatch: Any) -> bytes:
    """A Ryu OFPMatch (e.g. from a flow dump) as ``ofp_match`` bytes with padding, the
    form vgw_ryu.pipeline.wire.delete_strict takes."""
    buf = bytearray()
    ofmatch.serialize(buf, 0)
    return bytes(buf)


def instructions(dp: Any, flow: Flow) -> list[Any]:
    p = dp.ofproto_parser
    ofp = dp.ofproto
    out = []
    if flow.meter is not None:
        out.append(p.OFPInstructionMeter(flow.meter, ofp.OFPIT_METER))
    if flow.actions:
        out.append(p.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS,
                                           [action(dp, a) for a in flow.actions]))
    if flow.goto is not None:
        out.append(p.OFPInstructionGotoTable(flow.goto))
    return out


def add(dp: Any, flow: Flow) -> Any:
    """OFPFC_ADD for a flow (replaces a flow with the same table/priority/match)."""
    p = dp.ofproto_parser
    return p.OFPFlowMod(dp, cookie=flow.cookie, table_id=flow.table,
                        command=dp.ofproto.OFPFC_ADD, priority=flow.priority,
                        match=match(dp, flow), instructions=instructions(dp, flow))


def delete_strict(dp: Any, table: int, priority: int, ofmatch: Any, cookie: int) -> Any:
    """Delete exactly one flow, and only while it still carries ``cookie``.

    The cookie condition makes deletes safe after adds in the same batch: a flow that an
    add just replaced has a new cookie and is left alone.
    """
    p = dp.ofproto_parser
    ofp = dp.ofproto
    return p.OFPFlowMod(dp, cookie=cookie, cookie_mask=ALL_COOKIE_BITS, table_id=table,
                        command=ofp.OFPFC_DELETE_STRICT, priority=priority, match=ofmatch,
                        out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY)


def nicira(dp: Any, subtype: int, body: bytes) -> Any:
    """A Nicira extension message Ryu has no class for (e.g. NXT_CT_FLUSH)."""
    return dp.ofproto_parser.OFPExperimenter(dp, experimenter=0x00002320, exp_type=subtype,
                                             data=body)


def meter_mod(dp: Any, meter_id: int, pps: int, command: str = "add") -> Any:
    """A packets-per-second drop meter with a burst of a quarter of a second."""
    p = dp.ofproto_parser
    ofp = dp.ofproto
    cmd = {"add": ofp.OFPMC_ADD, "modify": ofp.OFPMC_MODIFY, "delete": ofp.OFPMC_DELETE}[command]
    if command == "delete":
        return p.OFPMeterMod(dp, command=cmd, flags=0, meter_id=meter_id, bands=[])
    burst = max(pps // 4, 1)   # Neutron's logging default: 100 pps, burst 25
    return p.OFPMeterMod(dp, command=cmd,
                         flags=ofp.OFPMF_PKTPS | ofp.OFPMF_BURST | ofp.OFPMF_STATS,
                         meter_id=meter_id,
                         bands=[p.OFPMeterBandDrop(rate=pps, burst_size=burst)])
