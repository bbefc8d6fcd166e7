"""Flows (vgw_ryu.pipeline.flows) as OpenFlow 1.3/1.4 bytes, without Ryu.

Programming a switch sends tens of thousands of flow mods; building Ryu message objects
for each costs several times what OVS needs to install them. Here a flow mod is packed
straight from the Flow data, and each Flow keeps its packed body: a flow sent again
(another switch, a reconnect) costs a header.

A *body* is a flow mod without its 8-byte ``ofp_header``: the OpenFlow 1.3 and 1.4
bodies are the same bytes (1.4's ``importance`` fills 1.3's padding and is 0), so the
version byte and the xid are added when the message is framed (``frames``).

The encodings mirror Ryu's own (vgw_ryu.ryuapp.ofencode builds the same messages as Ryu
objects): OXM fields sorted as Ryu sorts them, masked values ANDed with their mask,
NXAST_REG_LOAD for loads, OFPCML_MAX for NORMAL's max_len. tests/unit/test_wire.py
requires byte equality with Ryu for every flow kind the compiler emits.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
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

OFP13, OFP14 = 0x04, 0x05
OFPT_FLOW_MOD = 14
OFPT_BUNDLE_ADD_MESSAGE = 34          # OpenFlow 1.4
OFPFC_ADD, OFPFC_DELETE_STRICT = 0, 4
OFP_NO_BUFFER = 0xFFFFFFFF
OFPP_ANY = OFPG_ANY = 0xFFFFFFFF
OFPP_NORMAL, OFPP_CONTROLLER = 0xFFFFFFFA, 0xFFFFFFFD
OFPCML_MAX = 0xFFE5                   # Ryu's default max_len for an output action
OFPMT_OXM = 1
OFPIT_GOTO_TABLE, OFPIT_APPLY_ACTIONS, OFPIT_METER = 1, 4, 6
OFPAT_OUTPUT, OFPAT_SET_FIELD, OFPAT_EXPERIMENTER = 0, 25, 0xFFFF
ALL_COOKIE_BITS = 0xFFFFFFFFFFFFFFFF
MAX_XID = 0xFFFFFFFF

NX_VENDOR_ID = 0x00002320
NXAST_REG_MOVE, NXAST_REG_LOAD = 6, 7
NXAST_RESUBMIT_TABLE, NXAST_OUTPUT_REG = 14, 15
NXAST_CONJUNCTION, NXAST_CT, NXAST_CT_CLEAR = 34, 35, 43
NX_CT_F_COMMIT = 1
NX_CT_RECIRC_NONE = 0xFF
OFPP_IN_PORT = 0xFFF8                 # NXAST_RESUBMIT_TABLE's "in_port unchanged"

OXM_OPENFLOW_BASIC, NXM_1 = 0x8000, 0x0001
FLOW_MOD_FIXED = struct.Struct("!QQBBHHHIIIH2x")  # ofp_flow_mod after the header
OFP_HEADER = struct.Struct("!BBHI")
# ofp_header + ofp_bundle_add_msg fields + the inner message's ofp_header
BUNDLE_ADD_HEAD = struct.Struct("!BBHIIxxHBBHI")
DEFAULT_CHUNK = 256 * 1024            # bytes per socket write when framing many messages


@dataclass(frozen=True)
class OxmField:
    """One match field: OXM class, field number, value size and value kind."""
    oxm_class: int
    field: int
    size: int
    kind: str = "int"   # int, mac, ipv4 or ipv6

    @property
    def order(self) -> int:
        """Ryu's sort key for a match (class and field, as in the OXM type)."""
        return (self.oxm_class << 7) | self.field

    def header(self, masked: bool = False) -> int:
        size = self.size * 2 if masked else self.size
        return (self.oxm_class << 16) | (self.field << 9) | (int(masked) << 8) | size


def _basic(field: int, size: int, kind: str = "int") -> OxmField:
    return OxmField(OXM_OPENFLOW_BASIC, field, size, kind)


# Every field the encoder knows (the pipeline uses a subset: flows.FIELD_ORDER), by its
# Ryu/OXM name. Registers and conntrack fields are Nicira's NXM_NX_* (class 1).
FIELDS: dict[str, OxmField] = {
    "in_port": _basic(0, 4), "in_phy_port": _basic(1, 4), "metadata": _basic(2, 8),
    "eth_dst": _basic(3, 6, "mac"), "eth_src": _basic(4, 6, "mac"), "eth_type": _basic(5, 2),
    "vlan_vid": _basic(6, 2), "vlan_pcp": _basic(7, 1), "ip_dscp": _basic(8, 1),
    "ip_ecn": _basic(9, 1), "ip_proto": _basic(10, 1),
    "ipv4_src": _basic(11, 4, "ipv4"), "ipv4_dst": _basic(12, 4, "ipv4"),
    "tcp_src": _basic(13, 2), "tcp_dst": _basic(14, 2),
    "udp_src": _basic(15, 2), "udp_dst": _basic(16, 2),
    "sctp_src": _basic(17, 2), "sctp_dst": _basic(18, 2),
    "icmpv4_type": _basic(19, 1), "icmpv4_code": _basic(20, 1), "arp_op": _basic(21, 2),
    "arp_spa": _basic(22, 4, "ipv4"), "arp_tpa": _basic(23, 4, "ipv4"),
    "arp_sha": _basic(24, 6, "mac"), "arp_tha": _basic(25, 6, "mac"),
    "ipv6_src": _basic(26, 16, "ipv6"), "ipv6_dst": _basic(27, 16, "ipv6"),
    "ipv6_flabel": _basic(28, 4), "icmpv6_type": _basic(29, 1), "icmpv6_code": _basic(30, 1),
    "ipv6_nd_target": _basic(31, 16, "ipv6"),
    "ipv6_nd_sll": _basic(32, 6, "mac"), "ipv6_nd_tll": _basic(33, 6, "mac"),
    **{f"reg{i}": OxmField(NXM_1, i, 4) for i in range(16)},
    "conj_id": OxmField(NXM_1, 37, 4),
    "ct_state": OxmField(NXM_1, 105, 4), "ct_zone": OxmField(NXM_1, 106, 2),
    "ct_mark": OxmField(NXM_1, 107, 4), "ct_label": OxmField(NXM_1, 108, 16),
}


class Encoded(NamedTuple):
    """A flow's OFPFC_ADD body and, as its own object, the OXM match inside it."""
    add: bytes
    match: bytes


# --- match -------------------------------------------------------------------------

def _address(kind: str, v: int | str) -> bytes:
    if isinstance(v, int):
        return v.to_bytes({"ipv4": 4, "ipv6": 16, "mac": 6}[kind], "big")
    if kind == "mac":
        parts = v.split(":")
        if len(parts) != 6:
            raise ValueError(f"not a MAC address: {v!r}")
        return bytes(int(x, 16) for x in parts)   # also 2:0:0:0:0:1, as Ryu reads it
    return socket.inet_pton(socket.AF_INET if kind == "ipv4" else socket.AF_INET6, v)


def _value(f: OxmField, v: int | str) -> bytes:
    if f.kind == "int":
        if not isinstance(v, int):
            raise TypeError(f"integer expected, got {v!r}")
        return v.to_bytes(f.size, "big")
    return _address(f.kind, v)


def _split(f: OxmField, v: MatchValue) -> tuple[Any, Any]:
    """(value, mask or None); an address may also be written as a prefix 'a/len'."""
    if isinstance(v, tuple):
        return v
    if isinstance(v, str) and "/" in v and f.kind in ("ipv4", "ipv6"):
        net = ipaddress.ip_network(v, strict=False)
        return str(net.network_address), str(net.netmask)
    return v, None


def oxm(name: str, v: MatchValue) -> bytes:
    """One OXM TLV; a masked value is sent ANDed with its mask (as Ryu sends it)."""
    try:
        f = FIELDS[name]
    except KeyError:
        raise KeyError(f"no OXM encoding for match field {name!r}") from None
    value, mask = _split(f, v)
    raw = _value(f, value)
    if mask is None:
        return struct.pack("!I", f.header()) + raw
    m = _value(f, mask)
    raw = (int.from_bytes(raw, "big") & int.from_bytes(m, "big")).to_bytes(f.size, "big")
    return struct.pack("!I", f.header(masked=True)) + raw + m


def _pad8(n: int) -> bytes:
    return bytes(-n % 8)


class Memo:
    """Encodings shared within one batch of flows: thousands of flows repeat the same
    match fields (a VM's port and MAC, eth_type) and instructions (a rule's conjunction).
    Kept per batch, so nothing grows across revisions."""

    def __init__(self) -> None:
        # Keyed by the flow's own (name, value) items, so a hit builds no key.
        self.tlvs: dict[tuple[str, MatchValue], bytes] = {}
        self.actions: dict[Action, bytes] = {}
        self.instructions: dict[tuple, bytes] = {}

    def tlv(self, kv: tuple[str, MatchValue]) -> bytes:
        """The OXM TLV of one (name, value) match entry."""
        got = self.tlvs.get(kv)
        if got is None:
            got = self.tlvs[kv] = oxm(*kv)
        return got

    def action(self, a: Action) -> bytes:
        got = self.actions.get(a)
        if got is None:
            got = self.actions[a] = action_bytes(a)
        return got

    def size(self) -> int:
        return len(self.tlvs) + len(self.actions) + len(self.instructions)

    def clear(self) -> None:
        self.tlvs.clear()
        self.actions.clear()
        self.instructions.clear()


# The wire order (Ryu's: by OXM class and field) of each list of field names met, as
# positions in it: a pipeline has a few dozen, and a sort per flow cost more than the
# rest of its match's encoding.
_WIRE_ORDER: dict[tuple[str, ...], tuple[int, ...]] = {}


def wire_order(names: tuple[str, ...]) -> tuple[int, ...]:
    """Positions of ``names`` in the order their TLVs go on the wire."""
    got = _WIRE_ORDER.get(names)
    if got is None:
        got = _WIRE_ORDER[names] = tuple(sorted(range(len(names)),
                                                key=lambda i: _order(names[i])))
    return got


def match_bytes(match: Iterable[tuple[str, MatchValue]], memo: Memo | None = None,
                order: tuple[int, ...] | None = None) -> bytes:
    """An ``ofp_match`` of type OXM with its padding, fields in Ryu's order.

    ``order`` is wire_order() of the match's names, when the caller has it already.
    """
    items = match if isinstance(match, tuple) else tuple(match)
    if order is None:
        order = wire_order(tuple([k for k, _ in items]))
    memo = memo or Memo()
    tlvs = memo.tlvs
    tlv = memo.tlv
    body = b"".join([tlvs.get(kv) or tlv(kv) for kv in [items[i] for i in order]])
    length = 4 + len(body)
    return _MATCH_HEAD.pack(OFPMT_OXM, length) + body + _PADS[length % 8]


_MATCH_HEAD = struct.Struct("!HH")
_PADS = tuple(bytes(-n % 8) for n in range(8))


def _order(name: str) -> int:
    f = FIELDS.get(name)
    if f is None:
        raise KeyError(f"no OXM encoding for match field {name!r}")
    return f.order


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
    memo = memo or Memo()
    key = (flow.meter, flow.actions, flow.goto)
    got = memo.instructions.get(key)
    if got is not None:
        return got
    out = b""
    if flow.meter is not None:
        out += struct.pack("!HHI", OFPIT_METER, 8, flow.meter)
    if flow.actions:
        action = memo.action
        acts = b"".join([action(a) for a in flow.actions])
        out += struct.pack("!HH4x", OFPIT_APPLY_ACTIONS, 8 + len(acts)) + acts
    if flow.goto is not None:
        out += struct.pack("!HHB3x", OFPIT_GOTO_TABLE, 8, flow.goto)
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
    return match_bytes(flow.match, _SHARED, order), instructions(flow, _SHARED)


def encode(flow: Flow, memo: Memo | None = None) -> Encoded:
    """A flow's OFPFC_ADD body and match, computed once per Flow object and kept on it."""
    if flow._wire is not None:
        return flow._wire
    got = flow._parts
    if got is None:
        memo = memo or Memo()
        got = (match_bytes(flow.match, memo), instructions(flow, memo))
    m, ins = got
    fixed = FLOW_MOD_FIXED.pack(flow.cookie, 0, flow.table, OFPFC_ADD, 0, 0, flow.priority,
                                OFP_NO_BUFFER, 0, 0, 0)
    enc = Encoded(fixed + m + ins, m)
    # Flow is frozen; the caches are not part of its identity (like its _body text).
    object.__setattr__(flow, "_wire", enc)
    object.__setattr__(flow, "_parts", None)
    return enc


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


# --- framing -----------------------------------------------------------------------

def flow_mod(version: int, body: bytes, xid: int) -> bytes:
    """A complete OFPT_FLOW_MOD message."""
    return OFP_HEADER.pack(version, OFPT_FLOW_MOD, 8 + len(body), xid) + body


def bundle_add(body: bytes, xid: int, bundle_id: int, flags: int) -> bytes:
    """An OpenFlow 1.4 OFPT_BUNDLE_ADD_MESSAGE carrying one flow mod (same xid inside)."""
    inner = 8 + len(body)
    return BUNDLE_ADD_HEAD.pack(OFP14, OFPT_BUNDLE_ADD_MESSAGE, 16 + inner, xid, bundle_id,
                                flags, OFP14, OFPT_FLOW_MOD, inner, xid) + body


def frames(bodies: Sequence[bytes], version: int, first_xid: int,
           bundle: tuple[int, int] | None = None,
           chunk: int = DEFAULT_CHUNK) -> Iterator[bytes]:
    """Flow mod bodies as whole messages, joined into writes of about ``chunk`` bytes.

    Message i gets xid ``first_xid + i``. With ``bundle`` (bundle id, flags) each is
    wrapped in an OpenFlow 1.4 bundle add message; without, each is a plain flow mod.
    """
    parts: list[bytes] = []
    size = 0
    head = BUNDLE_ADD_HEAD.pack if bundle is not None else OFP_HEADER.pack
    bid, flags = bundle if bundle is not None else (0, 0)
    for i, body in enumerate(bodies):
        xid = (first_xid + i) & MAX_XID
        n = 8 + len(body)
        if bundle is not None:
            parts.append(head(OFP14, OFPT_BUNDLE_ADD_MESSAGE, 16 + n, xid, bid, flags,
                              OFP14, OFPT_FLOW_MOD, n, xid))
            size += 16 + n
        else:
            parts.append(head(version, OFPT_FLOW_MOD, n, xid))
            size += n
        parts.append(body)
        if size >= chunk:
            yield b"".join(parts)
            parts, size = [], 0
    if parts:
        yield b"".join(parts)
