"""Packets the controller receives: decode them, and build the answers to rejects.

Thin Ryu layer (ryu.lib.packet): the packet is parsed here; what the punt table and
registers mean is decoded by vgw_ryu.runtime.puntregs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ryu.lib.packet import ethernet, icmp, icmpv6, ipv4, ipv6, packet, tcp, udp

from vgw_ryu.policy.model import PROTO_NAME
from vgw_ryu.runtime.puntregs import PuntRegs, decode_registers

__all__ = ["Punt", "decode", "reject_answer"]


@dataclass
class Punt:
    """What a packet-in says, decoded: its registers and the parsed packet."""
    regs: PuntRegs
    pkt: Any
    eth: Any
    l3: Any
    l4: Any
    length: int

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
        out: dict[str, Any] = {"src_mac": self.eth.src, "dst_mac": self.eth.dst}
        if self.l3 is not None:
            out["src"], out["dst"] = self.l3.src, self.l3.dst
            number = self.l3.proto if isinstance(self.l3, ipv4.ipv4) else self.l3.nxt
            out["protocol"] = PROTO_NAME.get(number, str(number))
        if isinstance(self.l4, (tcp.tcp, udp.udp)):
            out["sport"], out["dport"] = self.l4.src_port, self.l4.dst_port
        elif isinstance(self.l4, (icmp.icmp, icmpv6.icmpv6)):
            out["icmp_type"], out["icmp_code"] = _icmp_type(self.l4), self.l4.code
        return out


def _icmp_type(l4: Any) -> int:
    # Ryu names the field ``type`` on ICMPv4 headers and ``type_`` on ICMPv6 ones.
    return l4.type_ if isinstance(l4, icmpv6.icmpv6) else l4.type


def _fields(match: Any) -> dict[str, Any]:
    """An OFPMatch (or a plain mapping) as {field: value or (value, mask)}."""
    return dict(match.items())


def decode(msg: Any) -> Punt | None:
    """A packet-in from one of the punt tables, or None for anything else."""
    regs = decode_registers(msg.table_id, _fields(msg.match))
    if regs is None:
        return None
    pkt = packet.Packet(msg.data)
    eth = pkt.get_protocol(ethernet.ethernet)
    if eth is None:
        return None
    l3 = pkt.get_protocol(ipv4.ipv4) or pkt.get_protocol(ipv6.ipv6)
    l4 = (pkt.get_protocol(tcp.tcp) or pkt.get_protocol(udp.udp) or pkt.get_protocol(icmp.icmp)
          or pkt.get_protocol(icmpv6.icmpv6))
    return Punt(regs, pkt, eth, l3, l4, msg.total_len or len(msg.data))


def reject_answer(p: Punt) -> bytes | None:
    """TCP RST for TCP, ICMP(v6) unreachable otherwise; None if there is nothing to answer."""
    if p.l3 is None:
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

