"""The log path's header reader against Ryu's full parser, on many packets.

The reference is the summary the punt path built with ryu.lib.packet before issue #15
(kept as the baseline of vgw_lab.bench.puntrate): for every packet here, whole or cut
to the 128 bytes a log punt carries, both must give the same record fields. Where they
differ on purpose (IPv6 extension headers, IPv4 fragments, an ICMP header whose body
is cut) the tests below say what the record should hold. Nothing may raise.
"""

from __future__ import annotations

import random
import struct

import pytest
from ryu.lib.packet import (
    arp,
    ethernet,
    icmp,
    icmpv6,
    ipv4,
    ipv6,
    packet,
    packet_utils,
    tcp,
    udp,
    vlan,
)

from vgw_lab.bench.puntrate import LOG_MAX_LEN, baseline_summary
from vgw_ryu.runtime import pktfields

MACS = ("02:00:00:00:01:01", "02:00:00:00:ee:01", "fa:16:3e:aa:bb:cc")
V4 = ("10.0.0.11", "198.51.100.7", "255.255.255.255", "0.0.0.1")
V6 = ("fd00::11", "2001:db8::7", "fe80::1", "::ffff:10.0.0.1", "2001:db8:0:0:1:0:0:1",
      "64:ff9b::a00:1")
ETH_TYPE = {ipv4.ipv4: 0x0800, ipv6.ipv6: 0x86DD, arp.arp: 0x0806}


def frame(l3, l4=None, payload=b"", tags=(), rng: random.Random | None = None) -> bytes:
    """An Ethernet frame, VLAN-tagged by ``tags`` ((tpid, vid) outermost first)."""
    rng = rng or random.Random(0)
    inner = ETH_TYPE.get(type(l3), 0x88B5)
    p = packet.Packet()
    p.add_protocol(ethernet.ethernet(dst=rng.choice(MACS), src=rng.choice(MACS),
                                     ethertype=tags[0][0] if tags else inner))
    for i, (_tpid, vid) in enumerate(tags):
        nxt = tags[i + 1][0] if i + 1 < len(tags) else inner
        cls = vlan.svlan if _tpid == 0x88A8 else vlan.vlan
        p.add_protocol(cls(vid=vid, ethertype=nxt))
    for proto in (l3, l4, payload):
        if proto is not None and proto != b"":
            p.add_protocol(proto)
    p.serialize()
    return bytes(p.data)


def tcp_options(rng: random.Random) -> list:
    return rng.choice([[], [tcp.TCPOptionMaximumSegmentSize(max_seg_size=1460)],
                       [tcp.TCPOptionMaximumSegmentSize(max_seg_size=1460),
                        tcp.TCPOptionSACKPermitted(),
                        tcp.TCPOptionTimestamps(ts_val=rng.randrange(1 << 32), ts_ecr=0),
                        tcp.TCPOptionNoOperation(), tcp.TCPOptionWindowScale(shift_cnt=7)]])


def l4_for(proto: int, rng: random.Random, v6: bool):
    port = lambda: rng.randrange(1, 65536)  # noqa: E731 - 0 reads as padding to Ryu
    if proto == 6:
        return tcp.tcp(src_port=port(), dst_port=port(), seq=rng.randrange(1 << 32),
                       bits=rng.choice([tcp.TCP_SYN, tcp.TCP_ACK, tcp.TCP_SYN | tcp.TCP_ACK,
                                        tcp.TCP_RST, tcp.TCP_FIN | tcp.TCP_ACK]),
                       window_size=64240, option=tcp_options(rng))
    if proto == 17:
        return udp.udp(src_port=port(), dst_port=port())
    if proto == 1:
        return icmp.icmp(type_=8, code=0, data=icmp.echo(id_=rng.randrange(1, 65536), seq=1))
    if proto == 58:
        return icmpv6.icmpv6(type_=rng.choice([128, 129]),
                             data=icmpv6.echo(id_=rng.randrange(1, 65536), seq=1))
    return None


def corpus(n: int = 400, seed: int = 15) -> list[tuple[str, bytes]]:
    """Varied frames: IPv4/IPv6 x TCP/UDP/ICMP/other, options, VLAN tags, payloads."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        v6 = rng.random() < 0.4
        proto = rng.choice([6, 6, 17, 17, 58 if v6 else 1, 47, 132, 50])
        if v6:
            l3 = ipv6.ipv6(src=rng.choice(V6), dst=rng.choice(V6), nxt=proto,
                           hop_limit=rng.randrange(1, 256))
        else:
            opts = rng.choice([None, b"\x01\x01\x01\x00", b"\x94\x04\x00\x00" * 2])
            l3 = ipv4.ipv4(src=rng.choice(V4), dst=rng.choice(V4), proto=proto,
                           ttl=rng.randrange(1, 256), option=opts,
                           header_length=5 + (len(opts) // 4 if opts else 0))
        tags = rng.choice([(), ((0x8100, rng.randrange(1, 4095)),),
                           ((0x88A8, 100), (0x8100, rng.randrange(1, 4095)))])
        payload = bytes(rng.randrange(1, 256) for _ in range(rng.choice([0, 1, 8, 60, 400])))
        l4 = l4_for(proto, rng, v6)
        if l4 is None and not payload:
            payload = b"\x01" * 8
        out.append((f"{i}:v{6 if v6 else 4}/{proto}/{len(tags)} tags",
                    frame(l3, l4, payload, tags, rng)))
    a = arp.arp(src_mac=MACS[0], src_ip=V4[0], dst_mac="00:00:00:00:00:00", dst_ip=V4[1])
    out.append(("arp", frame(a)))
    out.append(("arp-vlan", frame(a, tags=((0x8100, 7),))))
    out.append(("lldp-ish", frame(b"\x02\x07\x04" + b"\x01" * 40)))
    return out


CORPUS = corpus()


def mine(data: bytes) -> dict | None:
    h = pktfields.decode(data)
    return None if h is None else h.summary()


@pytest.mark.parametrize("name,data", CORPUS, ids=[c[0] for c in CORPUS])
def test_same_record_fields_as_ryu_whole_and_cut_to_the_punt_length(name, data):
    assert mine(data) == baseline_summary(data)
    assert mine(data[:LOG_MAX_LEN]) == baseline_summary(data[:LOG_MAX_LEN])


def test_the_corpus_covers_what_records_show():
    seen = [mine(d) for _, d in CORPUS]
    protocols = {s.get("protocol") for s in seen}
    assert {"tcp", "udp", "icmp", "icmpv6", "gre", "sctp", "esp", None} <= protocols
    assert sum("sport" in s for s in seen) > 100 and sum("icmp_type" in s for s in seen) > 20
    tagged = [pktfields.decode(d) for n, d in CORPUS if "1 tags" in n or "2 tags" in n]
    assert tagged and all(h.vlan is not None and h.src is not None for h in tagged)


@pytest.mark.parametrize("name,data", CORPUS[::7], ids=[c[0] for c in CORPUS[::7]])
def test_every_cut_of_a_frame_reads_like_ryu(name, data):
    for n in range(len(data) + 1):
        got, want = mine(data[:n]), baseline_summary(data[:n])
        if got != want and want is not None and want.get("protocol") in ("icmp", "icmpv6"):
            # Ryu drops an ICMP header whose echo body is cut; its type and code are
            # there all the same, and the record keeps them.
            assert {k: v for k, v in got.items() if not k.startswith("icmp_")} == want
            continue
        assert got == want, n


def test_short_frames_are_none_and_non_ip_has_only_macs():
    assert pktfields.decode(b"") is None
    assert pktfields.decode(b"\x00" * 13) is None
    h = pktfields.decode(bytes.fromhex("0200000000010200000000020806") + b"\x00" * 28)
    assert h.summary() == {"src_mac": "02:00:00:00:00:02", "dst_mac": "02:00:00:00:00:01"}
    assert h.ethertype == 0x0806 and h.src is None


def test_vlan_id_is_the_outermost_tag_and_the_ip_behind_the_tags_is_read():
    rng = random.Random(1)
    data = frame(ipv4.ipv4(src=V4[0], dst=V4[1], proto=17), udp.udp(src_port=7, dst_port=9),
                 b"x", ((0x88A8, 300), (0x8100, 42)), rng)
    h = pktfields.decode(data)
    assert (h.vlan, h.ethertype, h.src, h.sport, h.dport) == (300, 0x0800, V4[0], 7, 9)
    assert pktfields.decode(data[:16]).src is None       # a tag cut short


def _v6_with(ext: bytes, first: int, l4: bytes) -> bytes:
    """An IPv6 frame with raw extension headers ``ext`` (next header ``first``)."""
    body = ext + l4
    hdr = struct.pack("!IHBB16s16s", 6 << 28, len(body), first, 64, bytes(15) + b"\x01",
                      bytes(15) + b"\x02")
    return bytes.fromhex("020000000001020000000002 86dd".replace(" ", "")) + hdr + body


def test_ipv6_extension_headers_are_walked_to_the_transport_protocol():
    # Hop-by-hop (router alert), then ICMPv6 MLD report: Ryu's record said protocol
    # "0" (the first next-header); OVS, and now the record, see ICMPv6 type 143.
    hbh = bytes([58, 0, 5, 2, 0, 0, 1, 0])
    h = pktfields.decode(_v6_with(hbh, 0, bytes([143, 0, 0, 0]) + bytes(20)))
    assert (h.proto, h.icmp_type, h.icmp_code) == (58, 143, 0)
    assert h.summary()["protocol"] == "icmpv6"
    # Destination options (16 bytes) then a routing header, then UDP.
    dst = bytes([43, 1]) + bytes(14)
    rth = bytes([17, 0, 0, 0]) + bytes(4)
    h = pktfields.decode(_v6_with(dst + rth, 60, struct.pack("!HHHH", 1000, 53, 8, 0)))
    assert (h.proto, h.sport, h.dport) == (17, 1000, 53)
    # AH (length in 4-byte units + 2) then TCP.
    ah = bytes([6, 1]) + bytes(10)
    h = pktfields.decode(_v6_with(ah, 51, struct.pack("!HH", 4000, 22) + bytes(16)))
    assert (h.proto, h.sport, h.dport) == (6, 4000, 22)


def test_ipv6_fragments_first_has_ports_later_ones_not():
    udp_hdr = struct.pack("!HHHH", 1000, 53, 8, 0)
    first = bytes([17, 0, 0, 1]) + b"\x00\x00\x00\x07"          # offset 0, more fragments
    later = bytes([17, 0, 0x05, 0x28]) + b"\x00\x00\x00\x07"    # offset 165 * 8
    assert pktfields.decode(_v6_with(first, 44, udp_hdr)).dport == 53
    h = pktfields.decode(_v6_with(later, 44, udp_hdr))
    assert (h.proto, h.sport, h.dport) == (17, None, None)


def test_ipv6_chain_cut_short_keeps_addresses():
    hbh = bytes([6, 3]) + bytes(30)     # claims 32 bytes, the frame ends first
    h = pktfields.decode(_v6_with(hbh[:12], 0, b""))
    assert h.src == "::1" and h.dst == "::2" and h.sport is None


def test_ipv4_later_fragment_has_no_ports():
    rng = random.Random(2)
    data = bytearray(frame(ipv4.ipv4(src=V4[0], dst=V4[1], proto=17),
                           udp.udp(src_port=7, dst_port=9), b"x" * 20, rng=rng))
    assert pktfields.decode(bytes(data)).dport == 9
    struct.pack_into("!H", data, 14 + 6, 0x2000 | 185)   # MF, offset 185 * 8
    h = pktfields.decode(bytes(data))
    assert (h.src, h.proto, h.sport) == (V4[0], 17, None)
    struct.pack_into("!H", data, 14 + 6, 0x4000)          # DF only: a whole packet
    assert pktfields.decode(bytes(data)).dport == 9


def test_ip_length_fields_bound_the_transport_header():
    rng = random.Random(3)
    data = bytearray(frame(ipv4.ipv4(src=V4[0], dst=V4[1], proto=6),
                           tcp.tcp(src_port=7, dst_port=9, bits=2), b"", rng=rng))
    struct.pack_into("!H", data, 14 + 2, 30)   # total length: 10 bytes of TCP header only
    h = pktfields.decode(bytes(data))
    assert h.proto == 6 and h.sport is None
    assert baseline_summary(bytes(data)).get("sport") is None


def test_bad_ip_headers_give_no_addresses():
    rng = random.Random(4)
    data = bytearray(frame(ipv4.ipv4(src=V4[0], dst=V4[1], proto=6),
                           tcp.tcp(src_port=7, dst_port=9, bits=2), b"", rng=rng))
    for first in (0x45 & 0x0F | 0x60, 0x44, 0x40):     # version 6 in a v4 frame, IHL < 5
        data[14] = first
        h = pktfields.decode(bytes(data))
        assert h.src is None and h.summary().keys() == {"src_mac", "dst_mac"}


def test_icmp_cut_inside_its_body_keeps_type_and_code():
    rng = random.Random(5)
    data = frame(ipv4.ipv4(src=V4[0], dst=V4[1], proto=1),
                 icmp.icmp(type_=3, code=13, data=icmp.dest_unreach(data=b"q" * 28)), rng=rng)
    assert packet_utils.checksum(data[34:]) == 0
    h = pktfields.decode(data[:14 + 20 + 4])
    assert (h.icmp_type, h.icmp_code) == (3, 13)
    assert pktfields.decode(data[:14 + 20 + 3]).icmp_type is None


def test_garbage_never_raises():
    rng = random.Random(6)
    for _ in range(5000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 160)))
        h = pktfields.decode(data)
        assert (h is None) == (len(data) < 14)
        if h is not None:
            h.summary()


def test_damaged_frames_never_raise():
    rng = random.Random(7)
    for _, good in CORPUS:
        for _ in range(20):
            data = bytearray(good[:LOG_MAX_LEN])
            for _ in range(rng.randrange(1, 6)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            h = pktfields.decode(bytes(data))
            assert h is not None
            h.summary()


def test_addresses_are_text_like_ryus():
    rng = random.Random(8)
    for a in V6:
        data = frame(ipv6.ipv6(src=a, dst=V6[0], nxt=17), udp.udp(src_port=1, dst_port=2),
                     rng=rng)
        assert pktfields.decode(data).src == baseline_summary(data)["src"] == \
            packet.Packet(data).get_protocol(ipv6.ipv6).src
