"""Flows (vgw_ryu.pipeline.flows) as OpenFlow 1.3/1.4 bytes, without Ryu.

Programming a switch sends tens of thousands of flow mods; building Ryu message objects
for each costs several times what OVS needs to install them. Here a flow mod is packed
straight from the Flow data, and each Flow keeps its packed body: a flow sent again
(another switch, a reconnect) costs a header.

A *body* is a flow mod without its 8-byte ``ofp_header``: the OpenFlow 1.3 and 1.4
bodies are the same bytes (1.4's ``importance`` fills 1.3's padding and is 0), so the
version byte and the xid are added when the message is framed (``frames``, in
vgw_ryu.pipeline.framing with the meter mods; importable from here too).

The encodings mirror Ryu's own (vgw_ryu.ryuapp.ofencode builds the same messages as Ryu
objects): matches as vgw_ryu.pipeline.oxm encodes them, NXAST_REG_LOAD for loads,
OFPCML_MAX for NORMAL's max_len. tests/unit/test_wire.py requires byte equality with Ryu
for every flow kind the compiler emits.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from vgw_ryu.pipeline.flows import (
    Action,
    Conjunction,
    Controller,
    Ct,
    CtClear,
    Flow,
    Load,
    MatchValue,
    Move,
    Normal,
    OutputReg,
    Resubmit,
)
from vgw_ryu.pipeline.framing import (  # noqa: F401 - re-exported: framing was here
    BUNDLE_ADD_HEAD,
    DEFAULT_CHUNK,
    MAX_XID,
    OFP14,
    OFP_HEADER,
    OFPT_BUNDLE_ADD_MESSAGE,
    OFPT_FLOW_MOD,
    OFPT_METER_MOD,
    bundle_add,
    flow_mod,
    frames,
    meter_mod,
)
from vgw_ryu.pipeline.oxm import (  # noqa: F401 - FIELDS, OxmField re-exported
    FIELDS,
    OxmField,
    TlvCache,
    match_bytes,
    oxm,
    wire_order,
)

OFP13 = 0x04
OFPFC_ADD, OFPFC_DELETE_STRICT = 0, 4
OFP_NO_BUFFER = 0xFFFFFFFF
OFPP_ANY = OFPG_ANY = 0xFFFFFFFF
OFPP_NORMAL, OFPP_CONTROLLER = 0xFFFFFFFA, 0xFFFFFFFD
OFPCML_MAX = 0xFFE5                   # Ryu's default max_len for an output action
OFPIT_GOTO_TABLE, OFPIT_APPLY_ACTIONS, OFPIT_METER = 1, 4, 6
OFPAT_OUTPUT, OFPAT_SET_FIELD, OFPAT_EXPERIMENTER = 0, 25, 0xFFFF
ALL_COOKIE_BITS = 0xFFFFFFFFFFFFFFFF

NX_VENDOR_ID = 0x00002320
NXAST_REG_MOVE, NXAST_REG_LOAD = 6, 7
NXAST_RESUBMIT_TABLE, NXAST_OUTPUT_REG = 14, 15
NXAST_CONJUNCTION, NXAST_CT, NXAST_CT_CLEAR = 34, 35, 43
NX_CT_F_COMMIT = 1
NX_CT_RECIRC_NONE = 0xFF
OFPP_IN_PORT = 0xFFF8                 # NXAST_RESUBMIT_TABLE's "in_port unchanged"

FLOW_MOD_FIXED = struct.Struct("!QQBBHHHIIIH2x")  # ofp_flow_mod after the header


class Encoded(NamedTuple):
    """A flow's OFPFC_ADD body and, as its own object, the OXM match inside it."""
    add: bytes
    match: bytes


class Memo:
    """Encodings shared within one batch of flows: thousands of flows repeat the same
    match fields (a VM's port and MAC, eth_type) and instructions (a rule's conjunction).
    Kept per batch, so nothing grows across revisions."""

    def __init__(self) -> None:
        # Keyed by the flow's own (name, value) items, so a hit builds no key.
        self.tlvs = TlvCache()
        self.actions: dict[Action, bytes] = {}
        self.instructions: dict[tuple, bytes] = {}
        # Whole matches: the rules' clause flows repeat one VM's zone match at each
        # rule's priority (20 flows of 25 per VM at 1,000 VMs x 20 rules).
        self.matches: dict[tuple, bytes] = {}

    def action(self, a: Action) -> bytes:
        """One action's bytes."""
        got = self.actions.get(a)
        if got is None:
            got = self.actions[a] = action_bytes(a)
        return got

    def size(self) -> int:
        """Encodings held."""
        return len(self.tlvs) + len(self.actions) + len(self.instructions) + \
            len(self.matches)

    def clear(self) -> None:
        """Forget every encoding held."""
        self.tlvs.clear()
        self.actions.clear()
        self.instructions.clear()
        self.matches.clear()


def _pad8(n: int) -> bytes:
    return bytes(-n % 8)


# --- actions -----------------------------------------------------------------------

def _field_header(name: str) -> int:
    """The NXM/OXM header naming a whole field, as register actions name it."""
    try:
        return FIELDS[name].header()
    except KeyError:
        raise KeyError(f"no OXM encoding for field {name!r}") from None


def ofs_nbits(ofs: int, nbits: int) -> int:
    """Nicira's packed bit range: offset in the upper 10 bits, n_bits - 1 in the lower 6."""
    return (ofs << 6) | (nbits - 1)


def _nx(subtype: int, body: bytes) -> bytes:
    """A Nicira vendor action, padded to 8 bytes."""
    length = 10 + len(body)
    pad = _pad8(length)
    return struct.pack("!HHIH", OFPAT_EXPERIMENTER, length + len(pad), NX_VENDOR_ID,
                       subtype) + body + pad


def _output(port: int, max_len: int) -> bytes:
    return struct.pack("!HHIH6x", OFPAT_OUTPUT, 16, port, max_len)


def _reg_load(dst: str, value: int, ofs: int, nbits: int) -> bytes:
    return _nx(NXAST_REG_LOAD, struct.pack("!HIQ", ofs_nbits(ofs, nbits), _field_header(dst),
                                           value))


def _reg_move(src: str, dst: str, n_bits: int = 32) -> bytes:
    return _nx(NXAST_REG_MOVE, struct.pack("!HHHII", n_bits, 0, 0, _field_header(src),
                                           _field_header(dst)))


def _set_field(name: str, value: int) -> bytes:
    tlv = oxm(name, value)
    length = 4 + len(tlv)
    return struct.pack("!HH", OFPAT_SET_FIELD, length + -length % 8) + tlv + _pad8(length)


def _resubmit(a: Resubmit) -> bytes:
    return _nx(NXAST_RESUBMIT_TABLE, struct.pack("!HB3x", OFPP_IN_PORT, a.table))


def _load(a: Load) -> bytes:
    return _reg_load(a.dst, a.value, a.ofs, a.nbits)


def _move(a: Move) -> bytes:
    return _reg_move(a.src, a.dst)


def _ct(a: Ct) -> bytes:
    inner = b""
    if a.mark is not None:
        inner += _set_field("ct_mark", a.mark)
    if a.label_reg is not None:
        # The admitting rule in ct_label[0..31], and bit 32 saying it is there.
        inner += _reg_move(a.label_reg, "ct_label") + _reg_load("ct_label", 1, 32, 1)
    recirc = NX_CT_RECIRC_NONE if a.table is None else a.table
    return _nx(NXAST_CT, struct.pack("!HIHB3xH", NX_CT_F_COMMIT if a.commit else 0,
                                     _field_header(a.zone_reg), ofs_nbits(0, 16), recirc, 0)
               + inner)


def _ct_clear(_: CtClear) -> bytes:
    return _nx(NXAST_CT_CLEAR, bytes(6))


def _conjunction(a: Conjunction) -> bytes:
    # On the wire the clause is 0-based; flows (and ovs-ofctl) write it 1-based.
    return _nx(NXAST_CONJUNCTION, struct.pack("!BBI", a.clause - 1, a.n_clauses, a.id))


def _output_reg(a: OutputReg) -> bytes:
    return _nx(NXAST_OUTPUT_REG, struct.pack("!HIH6x", ofs_nbits(0, 32),
                                             _field_header(a.reg), 0))


def _normal(_: Normal) -> bytes:
    return _output(OFPP_NORMAL, OFPCML_MAX)


def _controller(a: Controller) -> bytes:
    return _output(OFPP_CONTROLLER, a.max_len)


# One encoder per flows.Action class; test_wire fails if an Action has none.
ACTIONS: dict[type, Callable[[Any], bytes]] = {
    Resubmit: _resubmit, Load: _load, Move: _move, Ct: _ct, CtClear: _ct_clear,
    Conjunction: _conjunction, OutputReg: _output_reg, Normal: _normal,
    Controller: _controller,
}


def action_bytes(a: Action) -> bytes:
    """One action as OpenFlow bytes."""
    enc = ACTIONS.get(type(a))
    if enc is None:
        raise TypeError(f"no OpenFlow encoding for {a!r}")
    return enc(a)


def instructions(flow: Flow, memo: Memo | None = None) -> bytes:
    """Meter, apply-actions and goto-table instructions, in the order OVS requires."""
    return instructions_of(flow.meter, flow.actions, flow.goto, memo or Memo())


def instructions_of(meter: int | None, actions: tuple[Action, ...], goto: int | None,
                    memo: Memo) -> bytes:
    """instructions() of a flow with this meter, actions and goto."""
    key = (meter, actions, goto)
    got = memo.instructions.get(key)
    if got is not None:
        return got
    out = b""
    if meter is not None:
        out += struct.pack("!HHI", OFPIT_METER, 8, meter)
    if actions:
        action = memo.action
        acts = b"".join([action(a) for a in actions])
        out += struct.pack("!HH4x", OFPIT_APPLY_ACTIONS, 8 + len(acts)) + acts
    if goto is not None:
        out += struct.pack("!HHB3x", OFPIT_GOTO_TABLE, 8, goto)
    memo.instructions[key] = out
    return out


# --- flow mods ---------------------------------------------------------------------

# The encodings every flow of every switch shares (match fields, actions), kept across
# flows so Flow.make's parts cost a lookup for what repeats; emptied when large.
_SHARED = Memo()
_SHARED_MAX = 200_000


def parts(flow: Flow, order: tuple[int, ...] | None = None) -> tuple[bytes, bytes]:
    """A flow's ``ofp_match`` and instructions bytes (what its cookie digests);
    ``order`` as for match_bytes."""
    if _SHARED.size() > _SHARED_MAX:
        _SHARED.clear()
    m = _SHARED.matches.get(flow.match)
    if m is None:
        m = _SHARED.matches[flow.match] = match_bytes(flow.match, _SHARED.tlvs, order)
    return m, instructions(flow, _SHARED)


def shared_tlvs() -> TlvCache:
    """The TLV encodings all flows share, by (field, value) item (for many lookups)."""
    if _SHARED.size() > _SHARED_MAX:
        _SHARED.clear()
    return _SHARED.tlvs


def shared_tlv(item: tuple[str, MatchValue]) -> bytes:
    """One (field, value) match item's OXM TLV, from the encodings all flows share."""
    if _SHARED.size() > _SHARED_MAX:
        _SHARED.clear()
    return _SHARED.tlvs[item]


def shared_instructions(meter: int | None, actions: tuple[Action, ...],
                        goto: int | None) -> bytes:
    """instructions_of() from the encodings all flows share."""
    return instructions_of(meter, actions, goto, _SHARED)


def encode(flow: Flow, memo: Memo | None = None) -> Encoded:
    """A flow's OFPFC_ADD body and match, computed once per Flow object and kept on it."""
    if flow._wire is not None:
        return flow._wire
    got = flow._parts
    if got is None:
        memo = memo or Memo()
        got = (match_bytes(flow.match, memo.tlvs), instructions(flow, memo))
    m, ins = got
    fixed = FLOW_MOD_FIXED.pack(flow.cookie, 0, flow.table, OFPFC_ADD, 0, 0, flow.priority,
                                OFP_NO_BUFFER, 0, 0, 0)
    enc = Encoded(fixed + m + ins, m)
    # Flow is frozen; the caches are not part of its identity (like its _body text).
    # (Written to its __dict__: object.__setattr__ twice was a fifth of the encoding.)
    d = flow.__dict__
    d["_wire"], d["_parts"] = enc, None
    return enc


def add_tail(table: int, priority: int) -> bytes:
    """An OFPFC_ADD body's fixed part after its cookie (for flows that differ only in
    cookie, match and instructions: a VM template's)."""
    return FLOW_MOD_FIXED.pack(0, 0, table, OFPFC_ADD, 0, 0, priority, OFP_NO_BUFFER, 0, 0,
                               0)[8:]


def add(flow: Flow) -> bytes:
    """OFPFC_ADD body: replaces a flow with the same table, priority and match."""
    return encode(flow).add


def encode_all(flows: Iterable[Flow]) -> list[Encoded]:
    """encode() of many flows, sharing the encodings of their repeated parts."""
    memo = Memo()
    return [encode(f, memo) for f in flows]


def match_of(flow: Flow) -> bytes:
    """The flow's ``ofp_match`` bytes (what a later delete_strict needs)."""
    return encode(flow).match


def delete_strict(table: int, priority: int, match: bytes, cookie: int) -> bytes:
    """OFPFC_DELETE_STRICT body for exactly one flow, only while it still has ``cookie``.

    ``match`` is ``ofp_match`` bytes (match_of, or a dumped match re-serialised).
    """
    return FLOW_MOD_FIXED.pack(cookie, ALL_COOKIE_BITS, table, OFPFC_DELETE_STRICT, 0, 0,
                               priority, OFP_NO_BUFFER, OFPP_ANY, OFPG_ANY, 0) + match
