"""OpenFlow OXM match encoding without Ryu: the fields the pipeline matches on, one
TLV per (name, value), and a whole ``ofp_match`` in Ryu's field order.

A masked value is sent ANDed with its mask and the fields are sorted by OXM class and
field number, as Ryu does, so the bytes equal Ryu's (tests/unit/test_wire.py).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from vgw_ryu.pipeline.flows import MatchValue

OXM_OPENFLOW_BASIC, NXM_1 = 0x8000, 0x0001
OFPMT_OXM = 1


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


# --- one field -------------------------------------------------------------------------

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


class TlvCache(dict):
    """TLVs by (name, value): a flow's own match items are the keys, so a hit builds
    nothing and costs one C-level lookup; a miss encodes the entry."""

    def __missing__(self, kv: tuple[str, MatchValue]) -> bytes:
        got = self[kv] = oxm(*kv)
        return got


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


def match_bytes(match: Iterable[tuple[str, MatchValue]], tlvs: TlvCache | None = None,
                order: tuple[int, ...] | None = None) -> bytes:
    """An ``ofp_match`` of type OXM with its padding, fields in Ryu's order.

    ``tlvs`` shares encodings between matches; ``order`` is wire_order() of the match's
    names, when the caller has it already.
    """
    items = match if isinstance(match, tuple) else tuple(match)
    if order is None:
        order = wire_order(tuple([k for k, _ in items]))
    tlvs = TlvCache() if tlvs is None else tlvs
    head, pad = match_frame(len(body := b"".join([tlvs[items[i]] for i in order])))
    return head + body + pad


def match_frame(body_len: int) -> tuple[bytes, bytes]:
    """The ``ofp_match`` header and padding around TLVs of ``body_len`` bytes."""
    length = 4 + body_len
    return _MATCH_HEAD.pack(OFPMT_OXM, length), _PADS[length % 8]


_MATCH_HEAD = struct.Struct("!HH")
_PADS = tuple(bytes(-n % 8) for n in range(8))


def _order(name: str) -> int:
    f = FIELDS.get(name)
    if f is None:
        raise KeyError(f"no OXM encoding for match field {name!r}")
    return f.order
