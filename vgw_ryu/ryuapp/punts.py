"""Packets the controller receives: decode them, and build the answers to rejects.

Thin Ryu layer: a packet-in's registers are decoded by vgw_ryu.runtime.puntregs and the
header fields a log record needs are read by vgw_ryu.runtime.pktfields (plain
``struct``, the hot path). Ryu's full parser (ryu.lib.packet) runs only when something
needs whole packets: the answer to a reject.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from ryu.lib.packet import ethernet, icmp, icmpv6, ipv4, ipv6, packet, tcp, udp

from vgw_ryu.runtime import pktfields
from vgw_ryu.runtime.puntregs import PuntRegs, decode_registers

__all__ = ["Punt", "decode", "reject_answer"]


class Punt:
    """What a packet-in says, decoded: its registers and the header fields.

    ``pkt``, ``eth``, ``l3`` and ``l4`` are Ryu's parsed layers, made on first use only
    (a reject answer needs them; a log record does not).
    """

    def __init__(self, regs: PuntRegs, headers: pktfields.Headers, data: bytes,
                 length: int):
        self.regs = regs
        self.headers = headers
        self.data = data
        self.length = length

    # The registers' fields, read as the punt's own.
    purpose = property(lambda self: self.regs.purpose)
    in_port = property(lambda self: self.regs.in_port)
    verdict = property(lambda self: self.regs.verdict)
    direction = property(lambda self: self.regs.direction)
    rule = property(lambda self: self.regs.rule)
    zone = property(lambda self: self.regs.zone)
    log = property(lambda self: self.regs.log)

    def summary(self) -> dict[str, Any]:
        """Protocol, addresses and ports for a log record."""
        return self.headers.summary()

    @cached_property
    def pkt(self) -> Any:
        return packet.Packet(self.data)

    @cached_property
    def eth(self) -> Any:
        return self.pkt.get_protocol(ethernet.ethernet)

    @cached_property
    def l3(self) -> Any:
        return self.pkt.get_protocol(ipv4.ipv4) or self.pkt.get_protocol(ipv6.ipv6)

    @cached_property
    def l4(self) -> Any:
        get = self.pkt.get_protocol
        return get(tcp.tcp) or get(udp.udp) or get(icmp.icmp) or get(icmpv6.icmpv6)


# Decoded registers by (table, match fields): a punt's registers are those of the flow
# that sent it, so a few combinations repeat; decoding them each time costs more than
# reading the packet's headers. PuntRegs is frozen, so sharing one is safe.
_REGS: dict[tuple, PuntRegs | None] = {}
REGS_KEPT = 4096


def _registers(table_id: int, match: Any) -> PuntRegs | None:
    items = tuple(match.items())    # an OFPMatch, or a plain mapping in tests
    key = (table_id, items)
    try:
        return _REGS[key]
    except KeyError:
        pass
    except TypeError:               # an unhashable value: decode without remembering
        return decode_registers(table_id, dict(items))
    if len(_REGS) >= REGS_KEPT:
        _REGS.clear()
    regs = _REGS[key] = decode_registers(table_id, dict(items))
    return regs


def decode(msg: Any) -> Punt | None:
    """A packet-in from one of the punt tables, or None for anything else."""
    regs = _registers(msg.table_id, msg.match)
    if regs is None:
        return None
    headers = pktfields.decode(msg.data)
    if headers is None:
        return None
    return Punt(regs, headers, msg.data, msg.total_len or len(msg.data))


def reject_answer(p: Punt) -> bytes | None:
    """TCP RST for TCP, ICMP(v6) unreachable otherwise; None if there is nothing to answer."""
    if p.eth is None or p.l3 is None:
        return None
    eth = ethernet.ethernet(dst=p.eth.src, src=p.eth.dst, ethertype=p.eth.ethertype)
    v4 = isinstance(p.l3, ipv4.ipv4)
    if isinstance(p.l4, tcp.tcp):
        t = p.l4
        if t.bits & tcp.TCP_RST:
            return None
        payload_len = len(p.pkt.protocols[-1]) if isinstance(p.pkt.protocols[-1], bytes) else 0
        if t.bits & tcp.TCP_ACK:
            rst = tcp.tcp(src_port=t.dst_port, dst_port=t.src_port, seq=t.ack, ack=0,
                          bits=tcp.TCP_RST, window_size=0)
        else:
            syn_fin = (1 if t.bits & tcp.TCP_SYN else 0) + (1 if t.bits & tcp.TCP_FIN else 0)
            rst = tcp.tcp(src_port=t.dst_port, dst_port=t.src_port, seq=0,
                          ack=(t.seq + payload_len + syn_fin) & 0xFFFFFFFF,
                          bits=tcp.TCP_RST | tcp.TCP_ACK, window_size=0)
        if v4:
            l3 = ipv4.ipv4(src=p.l3.dst, dst=p.l3.src, proto=6, ttl=64)
        else:
            l3 = ipv6.ipv6(src=p.l3.dst, dst=p.l3.src, nxt=6, hop_limit=64)
        out = packet.Packet()
        for proto in (eth, l3, rst):
            out.add_protocol(proto)
        out.serialize()
        return bytes(out.data)
    # Quote the offending IP packet (header + start of payload) as ICMP requires.
    raw = bytes(p.pkt.data)[14:]
    is_udp = isinstance(p.l4, udp.udp)
    if v4:
        quoted = raw[:p.l3.header_length * 4 + 8]
        body = icmp.icmp(type_=icmp.ICMP_DEST_UNREACH,
                         code=icmp.ICMP_PORT_UNREACH_CODE if is_udp else 13,
                         data=icmp.dest_unreach(data=quoted))
        l3 = ipv4.ipv4(src=p.l3.dst, dst=p.l3.src, proto=1, ttl=64)
    else:
        if isinstance(p.l4, icmpv6.icmpv6) and p.l4.type_ < 128:
            return None  # never answer an ICMPv6 error with another
        quoted = raw[:1280 - 48]
        # Ryu has no class for this type: the body is 4 unused bytes and the quote.
        body = icmpv6.icmpv6(type_=icmpv6.ICMPV6_DST_UNREACH, code=4 if is_udp else 1,
                             data=b"\x00\x00\x00\x00" + quoted)
        l3 = ipv6.ipv6(src=p.l3.dst, dst=p.l3.src, nxt=58, hop_limit=64)
    if v4 and isinstance(p.l4, icmp.icmp) and p.l4.type not in (0, 8, 13, 15, 17):
        return None  # never answer an ICMP error with another
    out = packet.Packet()
    for proto in (eth, l3, body):
        out.add_protocol(proto)
    out.serialize()
    return bytes(out.data)

