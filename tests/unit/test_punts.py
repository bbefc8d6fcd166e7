"""Packet-ins decoded and reject answers built, on packets made with ryu.lib.packet."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import pytest
from ryu.lib.packet import arp, ethernet, icmp, icmpv6, ipv4, ipv6, packet, packet_utils, tcp, udp

from vgw_ryu.pipeline import tables as pl
from vgw_ryu.ryuapp.punts import decode, reject_answer

VM_MAC, PEER_MAC = "02:00:00:00:01:01", "02:00:00:00:ee:01"
VM4, PEER4 = "10.0.0.11", "198.51.100.7"
VM6, PEER6 = "fd00::11", "2001:db8::7"
REJECT_REGS = {"in_port": 9, "reg0": (pl.VERDICT_REJECT | pl.DIR_BIT, 0xFFFFFFFF),
               "reg3": 7, "reg4": 3}


def frame(l3: Any, l4: Any = None, payload: bytes = b"") -> bytes:
    """An Ethernet frame from the peer to the VM."""
    ethertype = {ipv4.ipv4: 0x0800, ipv6.ipv6: 0x86DD, arp.arp: 0x0806}[type(l3)]
    p = packet.Packet()
    p.add_protocol(ethernet.ethernet(dst=VM_MAC, src=PEER_MAC, ethertype=ethertype))
    p.add_protocol(l3)
    if l4 is not None:
        p.add_protocol(l4)
    if payload:
        p.add_protocol(payload)
    p.serialize()
    return bytes(p.data)


def icmp4(type_: int, body: bytes) -> bytes:
    """Raw ICMPv4 bytes (Ryu insists on a payload class for the types it knows)."""
    hdr = struct.pack("!BBH", type_, 0, 0) + body
    return hdr[:2] + struct.pack("!H", packet_utils.checksum(hdr)) + hdr[4:]


def v4(proto: int) -> ipv4.ipv4:
    return ipv4.ipv4(src=PEER4, dst=VM4, proto=proto, ttl=60)


def v6(nxt: int) -> ipv6.ipv6:
    return ipv6.ipv6(src=PEER6, dst=VM6, nxt=nxt, hop_limit=60)


def syn(seq: int = 1000, bits: int = tcp.TCP_SYN, ack: int = 0) -> tcp.tcp:
    return tcp.tcp(src_port=40000, dst_port=22, seq=seq, ack=ack, bits=bits,
                   window_size=64240)


@dataclass
class Msg:
    """The parts of an OFPPacketIn that decode() reads."""
    data: bytes
    table_id: int = pl.T["punt_reject"]
    match: dict[str, Any] = field(default_factory=lambda: dict(REJECT_REGS))
    total_len: int = 0


def punt(data: bytes):
    p = decode(Msg(data))
    assert p is not None
    return p


def answer(data: bytes) -> packet.Packet | None:
    out = reject_answer(punt(data))
    return None if out is None else packet.Packet(out)


def check_addresses(ans: packet.Packet, v6_: bool = False) -> None:
    eth = ans.get_protocol(ethernet.ethernet)
    assert (eth.src, eth.dst) == (VM_MAC, PEER_MAC)
    l3 = ans.get_protocol(ipv6.ipv6 if v6_ else ipv4.ipv4)
    assert (l3.src, l3.dst) == ((VM6, PEER6) if v6_ else (VM4, PEER4))
    if not v6_:
        assert packet_utils.checksum(bytes(ans.data)[14:14 + l3.header_length * 4]) == 0


# --- decode ------------------------------------------------------------------------------
def test_decode_reject_punt_registers_and_layers():
    data = frame(v4(6), syn())
    p = decode(Msg(data, total_len=len(data)))
    assert (p.purpose, p.in_port, p.verdict, p.direction, p.rule, p.zone, p.log) == \
        ("reject", 9, "reject", "ingress", 7, 3, False)
    assert isinstance(p.l3, ipv4.ipv4) and isinstance(p.l4, tcp.tcp)
    assert p.length == len(data)


@pytest.mark.parametrize("table,reg0,want", [
    ("punt_log", pl.VERDICT_ALLOW | pl.LOG_BIT, ("log", "allow", "egress", True)),
    ("punt_log", pl.VERDICT_DENY | pl.LOG_BIT | pl.DIR_BIT, ("log", "deny", "ingress", True)),
    ("punt_reject", pl.VERDICT_REJECT, ("reject", "reject", "egress", False)),
    ("punt_unknown", 0, ("unknown", None, None, False)),
])
def test_decode_purpose_verdict_direction_log(table, reg0, want):
    p = decode(Msg(frame(v4(17), udp.udp(src_port=5, dst_port=53)), table_id=pl.T[table],
                   match={"in_port": 4, "reg0": reg0}))
    assert (p.purpose, p.verdict, p.direction, p.log) == want
    assert (p.in_port, p.rule, p.zone) == (4, 0, 0)     # absent registers read as 0


def test_decode_ignores_other_tables():
    assert decode(Msg(frame(v4(6), syn()), table_id=pl.T["forward"])) is None
    assert decode(Msg(frame(v4(6), syn()), table_id=0)) is None


def test_decode_of_a_truncated_packet_in_keeps_total_len():
    data = frame(v4(17), udp.udp(src_port=5, dst_port=53), b"x" * 1000)
    p = decode(Msg(data[:256], total_len=len(data)))
    assert p.length == len(data) and isinstance(p.l3, ipv4.ipv4)


def test_decode_of_junk_is_none():
    assert decode(Msg(b"\x00" * 5)) is None


def test_summary_tcp_udp_icmp():
    s = punt(frame(v4(6), syn())).summary()
    assert s == {"src_mac": PEER_MAC, "dst_mac": VM_MAC, "src": PEER4, "dst": VM4,
                 "protocol": "tcp", "sport": 40000, "dport": 22}
    s = punt(frame(v6(17), udp.udp(src_port=5353, dst_port=53))).summary()
    assert (s["src"], s["protocol"], s["sport"], s["dport"]) == (PEER6, "udp", 5353, 53)
    s = punt(frame(v6(58), icmpv6.icmpv6(type_=128, data=icmpv6.echo(id_=1, seq=1)))).summary()
    assert (s["protocol"], s["icmp_type"]) == ("icmpv6", 128)
    s = punt(frame(v4(47), None, b"\x00" * 8)).summary()
    assert s["protocol"] == "gre" and "sport" not in s


def test_summary_icmp_v4():
    s = punt(frame(v4(1), icmp.icmp(type_=8, code=0, data=icmp.echo(id_=1, seq=1)))).summary()
    assert (s["protocol"], s["icmp_type"], s["icmp_code"]) == ("icmp", 8, 0)


def test_summary_without_ip():
    a = arp.arp(src_mac=PEER_MAC, src_ip=PEER4, dst_mac="00:00:00:00:00:00", dst_ip=VM4)
    s = punt(frame(a)).summary()
    assert s == {"src_mac": PEER_MAC, "dst_mac": VM_MAC}


# --- reject answers ---------------------------------------------------------------------
def test_tcp_syn_gets_rst_ack_for_seq_plus_one():
    ans = answer(frame(v4(6), syn(seq=1000)))
    check_addresses(ans)
    assert ans.get_protocol(ipv4.ipv4).proto == 6
    t = ans.get_protocol(tcp.tcp)
    assert (t.src_port, t.dst_port) == (22, 40000)
    assert t.bits == tcp.TCP_RST | tcp.TCP_ACK
    assert (t.seq, t.ack) == (0, 1001)


def test_tcp_syn_with_payload_acks_the_payload_too():
    t = answer(frame(v4(6), syn(seq=5000), b"hello")).get_protocol(tcp.tcp)
    assert t.ack == 5000 + 5 + 1


def test_tcp_seq_wraps():
    t = answer(frame(v4(6), syn(seq=0xFFFFFFFF))).get_protocol(tcp.tcp)
    assert t.ack == 0


def test_tcp_fin_without_ack_counts_the_fin():
    t = answer(frame(v4(6), syn(seq=10, bits=tcp.TCP_FIN))).get_protocol(tcp.tcp)
    assert (t.bits, t.ack) == (tcp.TCP_RST | tcp.TCP_ACK, 11)


@pytest.mark.parametrize("bits", [tcp.TCP_ACK, tcp.TCP_ACK | tcp.TCP_PSH,
                                  tcp.TCP_SYN | tcp.TCP_ACK, tcp.TCP_FIN | tcp.TCP_ACK])
def test_tcp_with_ack_gets_rst_with_seq_of_the_ack(bits):
    ans = answer(frame(v4(6), syn(seq=77, bits=bits, ack=123456), b"data"))
    check_addresses(ans)
    t = ans.get_protocol(tcp.tcp)
    assert t.bits == tcp.TCP_RST
    assert (t.seq, t.ack) == (123456, 0)


@pytest.mark.parametrize("bits", [tcp.TCP_RST, tcp.TCP_RST | tcp.TCP_ACK])
def test_tcp_rst_gets_no_answer(bits):
    assert answer(frame(v4(6), syn(bits=bits, ack=5))) is None


def test_tcp_v6_syn_gets_rst_ack():
    ans = answer(frame(v6(6), syn(seq=41)))
    check_addresses(ans, v6_=True)
    assert ans.get_protocol(ipv6.ipv6).nxt == 6
    t = ans.get_protocol(tcp.tcp)
    assert (t.bits, t.seq, t.ack, t.dst_port) == (tcp.TCP_RST | tcp.TCP_ACK, 0, 42, 40000)


def test_udp_v4_gets_port_unreachable_quoting_the_header():
    data = frame(v4(17), udp.udp(src_port=5353, dst_port=53), b"q" * 40)
    ans = answer(data)
    check_addresses(ans)
    assert ans.get_protocol(ipv4.ipv4).proto == 1
    ic = ans.get_protocol(icmp.icmp)
    assert (ic.type, ic.code) == (icmp.ICMP_DEST_UNREACH, icmp.ICMP_PORT_UNREACH_CODE)
    assert ic.data.data == data[14:14 + 20 + 8]    # IP header + first 8 payload bytes
    assert packet_utils.checksum(bytes(ans.data)[34:]) == 0


def test_other_v4_protocol_gets_admin_prohibited():
    ans = answer(frame(v4(47), None, b"\x00" * 8))
    check_addresses(ans)
    ic = ans.get_protocol(icmp.icmp)
    assert (ic.type, ic.code) == (icmp.ICMP_DEST_UNREACH, 13)


@pytest.mark.parametrize("type_", [8, 13])
def test_icmp_request_gets_admin_prohibited(type_):
    ans = answer(frame(v4(1), None, icmp4(type_, b"\x00" * 16)))
    ic = ans.get_protocol(icmp.icmp)
    assert (ic.type, ic.code) == (icmp.ICMP_DEST_UNREACH, 13)


@pytest.mark.parametrize("type_", [3, 5, 11, 12])
def test_icmp_error_gets_no_answer(type_):
    quoted = frame(v4(17), udp.udp(src_port=1, dst_port=2))[14:]
    assert answer(frame(v4(1), None, icmp4(type_, b"\x00" * 4 + quoted))) is None


def test_udp_v6_gets_icmpv6_port_unreachable():
    data = frame(v6(17), udp.udp(src_port=5353, dst_port=53), b"q" * 40)
    ans = answer(data)
    check_addresses(ans, v6_=True)
    assert ans.get_protocol(ipv6.ipv6).nxt == 58
    ic = ans.get_protocol(icmpv6.icmpv6)
    assert (ic.type_, ic.code) == (icmpv6.ICMPV6_DST_UNREACH, 4)
    raw = bytes(ans.data)[14 + 40:]
    assert raw[4:8] == b"\x00" * 4 and raw[8:] == data[14:]    # unused word, then the quote


def test_icmpv6_answer_fits_the_minimum_mtu():
    data = frame(v6(17), udp.udp(src_port=5353, dst_port=53), b"q" * 3000)
    ans = reject_answer(punt(data))
    assert len(ans) - 14 <= 1280
    assert ans[14 + 40 + 8:] == data[14:14 + 1280 - 48]


def test_other_v6_protocol_gets_admin_prohibited():
    ans = answer(frame(v6(58), icmpv6.icmpv6(type_=128, data=icmpv6.echo(id_=1, seq=1))))
    ic = ans.get_protocol(icmpv6.icmpv6)
    assert (ic.type_, ic.code) == (icmpv6.ICMPV6_DST_UNREACH, 1)


@pytest.mark.parametrize("type_", [1, 2, 3, 4])
def test_icmpv6_error_gets_no_answer(type_):
    body = icmpv6.icmpv6(type_=type_, code=0, data=b"\x00" * 4 + b"\x60" + b"\x00" * 39)
    assert answer(frame(v6(58), body)) is None


def test_non_ip_gets_no_answer():
    a = arp.arp(src_mac=PEER_MAC, src_ip=PEER4, dst_mac="00:00:00:00:00:00", dst_ip=VM4)
    assert answer(frame(a)) is None
