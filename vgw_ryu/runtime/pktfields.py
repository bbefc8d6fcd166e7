"""The header fields a firewall log record uses, read from a frame's bytes. No Ryu here.

Every logged packet-in needs only addresses, protocol, ports or ICMP type and code, so
the punt path reads exactly those with ``struct`` instead of building Ryu's full packet
objects (an order of magnitude slower, and most of the cost of a packet-in). Reading
follows what OVS itself extracts, which is what the flows matched on:

* 802.1Q / 802.1ad tags are skipped (the outermost VLAN id is kept);
* IPv4 needs version 4 and a header of at least 20 bytes; a later fragment
  (offset > 0) has no ports, it carries no transport header;
* IPv6 extension headers (hop-by-hop, routing, fragment, destination options, AH) are
  walked, so ``proto`` is the transport protocol behind them; a later fragment has no
  ports;
* ports need the whole fixed TCP (20 bytes) or UDP (8) header, ICMP(v6) type and code
  its 4-byte header, inside both the captured bytes and the IP length fields.

Anything shorter or malformed yields fewer fields, never an exception: a frame under
14 bytes is ``None``, a non-IP frame only its MAC addresses.
"""

from __future__ import annotations

import socket
import struct
from typing import Any, NamedTuple

from vgw_ryu.policy.model import PROTO_NAME

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
VLAN_TPIDS = frozenset((0x8100, 0x88A8))   # the tags OVS reads through
TCP, UDP, ICMP, ICMPV6 = 6, 17, 1, 58
FRAGMENT, AH = 44, 51
# IPv6 extension headers whose length byte counts 8-octet units beyond the first 8.
OPT_HEADERS = frozenset((0, 43, 60))
MAX_EXT_HEADERS = 8    # a longer chain is not a packet anyone sends; stop reading
_L4_MIN = {TCP: 20, UDP: 8}

_ETH = struct.Struct("!6s6sH")
# IPv4: version/IHL, total length, flags/fragment offset, protocol, source, destination.
_IPV4 = struct.Struct("!BxHxxHxB2x4s4s")
# IPv6: version (first byte), payload length, next header, source, destination.
_IPV6 = struct.Struct("!B3xHBx16s16s")
_PORTS = struct.Struct("!HH")

# Text of addresses seen before: a punt's addresses repeat (the same VMs, the same
# flood), and formatting them costs more than the rest of the decoding.
_TEXT: dict[bytes, str] = {}
TEXT_KEPT = 4096


def _text(raw: bytes) -> str:
    """MAC (6 bytes), IPv4 (4) or IPv6 (16) address as text."""
    if len(_TEXT) >= TEXT_KEPT:
        _TEXT.clear()
    n = len(raw)
    text = raw.hex(":") if n == 6 else socket.inet_ntoa(raw) if n == 4 \
        else socket.inet_ntop(socket.AF_INET6, raw)
    _TEXT[raw] = text
    return text


class Headers(NamedTuple):
    """What a frame says, as far as a log record needs it; absent fields are None."""
    src_mac: str
    dst_mac: str
    ethertype: int               # after any VLAN tags
    vlan: int | None = None      # the outermost tag's VLAN id
    src: str | None = None       # IPv4 or IPv6 source, text
    dst: str | None = None
    proto: int | None = None     # IP protocol (IPv6: behind the extension headers)
    sport: int | None = None     # TCP and UDP only
    dport: int | None = None
    icmp_type: int | None = None  # ICMP over IPv4, ICMPv6 over IPv6
    icmp_code: int | None = None

    def summary(self) -> dict[str, Any]:
        """Protocol, addresses and ports for a log record (the keys it has, only)."""
        out: dict[str, Any] = {"src_mac": self.src_mac, "dst_mac": self.dst_mac}
        if self.src is not None:
            out["src"], out["dst"] = self.src, self.dst
            out["protocol"] = PROTO_NAME.get(self.proto, str(self.proto))
            if self.sport is not None:
                out["sport"], out["dport"] = self.sport, self.dport
            elif self.icmp_type is not None:
                out["icmp_type"], out["icmp_code"] = self.icmp_type, self.icmp_code
        return out


def decode(data: bytes) -> Headers | None:
    """The fields of an Ethernet frame (possibly cut short); None under 14 bytes."""
    n = len(data)
    if n < 14:
        return None
    dst, src, etype = _ETH.unpack_from(data)
    dst_mac = _TEXT.get(dst) or _text(dst)
    src_mac = _TEXT.get(src) or _text(src)
    off, vlan = 14, None
    while etype in VLAN_TPIDS:
        if off + 4 > n:   # a tag cut short: nothing beyond it can be read
            return Headers(src_mac, dst_mac, etype, vlan)
        if vlan is None:
            vlan = (data[off] << 8 | data[off + 1]) & 0x0FFF
        etype = data[off + 2] << 8 | data[off + 3]
        off += 4
    if etype == ETH_IPV4:
        return _ipv4(data, off, n, src_mac, dst_mac, vlan)
    if etype == ETH_IPV6:
        return _ipv6(data, off, n, src_mac, dst_mac, vlan)
    return Headers(src_mac, dst_mac, etype, vlan)


def _ipv4(data: bytes, off: int, n: int, src_mac: str, dst_mac: str,
          vlan: int | None) -> Headers:
    if off + 20 > n:
        return Headers(src_mac, dst_mac, ETH_IPV4, vlan)
    vihl, total, frag, proto, s, d = _IPV4.unpack_from(data, off)
    ihl = (vihl & 0x0F) * 4
    if vihl >> 4 != 4 or ihl < 20:
        return Headers(src_mac, dst_mac, ETH_IPV4, vlan)
    src, dst = _TEXT.get(s) or _text(s), _TEXT.get(d) or _text(d)
    if frag & 0x1FFF:   # a later fragment: no transport header in it
        return Headers(src_mac, dst_mac, ETH_IPV4, vlan, src, dst, proto)
    # The transport header must lie inside both the capture and the IP total length.
    return _l4(data, off + ihl, min(n, off + total), ICMP, src_mac, dst_mac, ETH_IPV4, vlan,
               src, dst, proto)


def _ipv6(data: bytes, off: int, n: int, src_mac: str, dst_mac: str,
          vlan: int | None) -> Headers:
    if off + 40 > n:
        return Headers(src_mac, dst_mac, ETH_IPV6, vlan)
    version, plen, nxt, s, d = _IPV6.unpack_from(data, off)
    if version >> 4 != 6:
        return Headers(src_mac, dst_mac, ETH_IPV6, vlan)
    src, dst = _TEXT.get(s) or _text(s), _TEXT.get(d) or _text(d)
    end = min(n, off + 40 + plen)
    at = off + 40
    for _ in range(MAX_EXT_HEADERS):
        if nxt in OPT_HEADERS:
            size = (data[at + 1] + 1) * 8 if at + 2 <= end else 0
        elif nxt == FRAGMENT:
            size = 8
            if at + 4 <= end and (data[at + 2] << 8 | data[at + 3]) & 0xFFF8:
                # A later fragment: its protocol is known, its ports are not.
                return Headers(src_mac, dst_mac, ETH_IPV6, vlan, src, dst, data[at])
        elif nxt == AH:
            size = (data[at + 1] + 2) * 4 if at + 2 <= end else 0
        else:
            break
        if not size or at + size > end:   # the chain runs past the captured bytes
            return Headers(src_mac, dst_mac, ETH_IPV6, vlan, src, dst, nxt)
        nxt, at = data[at], at + size
    else:
        return Headers(src_mac, dst_mac, ETH_IPV6, vlan, src, dst, nxt)
    return _l4(data, at, end, ICMPV6, src_mac, dst_mac, ETH_IPV6, vlan, src, dst, nxt)


def _l4(data: bytes, at: int, end: int, icmp: int, src_mac: str, dst_mac: str, etype: int,
        vlan: int | None, src: str, dst: str, proto: int) -> Headers:
    """Ports (TCP, UDP) or type and code (this IP version's ICMP) at ``at``."""
    need = _L4_MIN.get(proto)
    if need is not None and at + need <= end:
        sport, dport = _PORTS.unpack_from(data, at)
        return Headers(src_mac, dst_mac, etype, vlan, src, dst, proto, sport, dport)
    if proto == icmp and at + 4 <= end:
        return Headers(src_mac, dst_mac, etype, vlan, src, dst, proto, None, None,
                       data[at], data[at + 1])
    return Headers(src_mac, dst_mac, etype, vlan, src, dst, proto)
