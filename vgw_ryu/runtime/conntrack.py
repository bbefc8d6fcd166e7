"""Connection-table hygiene: which conntrack entries a state change makes stale.

Each protected VM has its own conntrack zone. When a VM is deleted or stops being
protected its zone holds entries nobody owns; when an address leaves a VM (VM deleted,
IP removed, VM unprotected) the *peers'* zones still hold entries for it, and a new
owner of that address could answer on them as if it were the old one. ``plan`` lists
the flushes a change needs; ``flush_zone_body`` and ``flush_tuple_body`` encode them as
the Nicira OpenFlow messages OVS 3.1 understands (NXT_CT_FLUSH_ZONE, NXT_CT_FLUSH), so
any OpenFlow channel can send them. No Ryu here.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from vgw_ryu.policy.model import IpAddr, State

NX_VENDOR_ID = 0x00002320
NXT_CT_FLUSH_ZONE = 29
NXT_CT_FLUSH = 32
# NXT_CT_FLUSH properties (outer), then the nested tuple fields of a direction.
_CT_ORIG_DIRECTION, _CT_ZONE_ID = 0, 2
_CT_SRC, _CT_DST = 0, 1


@dataclass(frozen=True)
class ZoneFlush:
    """Flush a whole zone: its VM is gone or no longer protected."""
    zone: int
    vm: str
    reason: str


@dataclass(frozen=True)
class AddressFlush:
    """Flush every entry with ``addr`` as original source or destination, in every zone."""
    addr: IpAddr
    vm: str
    reason: str


@dataclass
class FlushPlan:
    zones: list[ZoneFlush]
    addresses: list[AddressFlush]

    def __bool__(self) -> bool:
        return bool(self.zones or self.addresses)


def plan(old: State, new: State, old_zones: dict[str, int]) -> FlushPlan:
    """The flushes that make ``new`` safe after ``old`` (zones as allocated for ``old``)."""
    zones: list[ZoneFlush] = []
    addrs: list[AddressFlush] = []
    if new.vms is old.vms:
        return FlushPlan(zones, addrs)   # a group's or policy's write: no VM changed
    for name, vm in sorted(old.vms.items()):
        after = new.vms.get(name)
        if after is vm:
            continue   # the very same object: nothing about it changed
        if vm.protected and name in old_zones:
            if after is None:
                zones.append(ZoneFlush(old_zones[name], name, "vm deleted"))
            elif not after.protected:
                zones.append(ZoneFlush(old_zones[name], name, "vm unprotected"))
        if after is None:
            gone, why = set(vm.ips), "vm deleted"
        elif vm.protected and not after.protected:
            gone, why = set(vm.ips), "vm unprotected"
        else:
            gone, why = set(vm.ips) - set(after.ips), "address removed"
        addrs += [AddressFlush(ip, name, why) for ip in sorted(gone, key=_ip_key)]
    return FlushPlan(zones, addrs)


def _ip_key(ip: IpAddr) -> tuple[int, int]:
    return (ip.version, int(ip))


def _prop(kind: int, value: bytes) -> bytes:
    """An OpenFlow property: type, length (without padding), value, padded to 8."""
    length = 4 + len(value)
    return struct.pack("!HH", kind, length) + value + b"\0" * (-length % 8)


def _nested(kind: int, inner: bytes) -> bytes:
    # Nested properties start 8-aligned: the 4-byte header is followed by 4 bytes of pad.
    return struct.pack("!HH4x", kind, 8 + len(inner)) + inner


def _addr128(addr: IpAddr) -> bytes:
    if addr.version == 4:
        return ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + addr.packed).packed
    return addr.packed


def flush_zone_body(zone: int) -> bytes:
    """Body of NXT_CT_FLUSH_ZONE: six zero bytes and the zone."""
    return b"\0" * 6 + struct.pack("!H", zone)


def flush_tuple_body(zone: int, src: IpAddr | None = None, dst: IpAddr | None = None) -> bytes:
    """Body of NXT_CT_FLUSH: entries of ``zone`` whose original tuple has src/dst.

    A partial tuple matches every entry with those fields (OVS 3.1 and later).
    """
    fields = b""
    if src is not None:
        fields += _prop(_CT_SRC, _addr128(src))
    if dst is not None:
        fields += _prop(_CT_DST, _addr128(dst))
    head = struct.pack("!BB6x", 0, 0)  # ip_proto, family: any
    body = head + (_nested(_CT_ORIG_DIRECTION, fields) if fields else b"")
    # OpenFlow gives 16-bit property values a length of 8: two bytes of pad inside.
    return body + _prop(_CT_ZONE_ID, struct.pack("!H2x", zone))


def iter_messages(flush: FlushPlan, all_zones: set[int]) -> Iterator[tuple[int, bytes]]:
    """(Nicira subtype, body) of every message the plan needs on a switch, made as they
    are sent: an address flush runs in every zone, so deleting hundreds of VMs among
    thousands of zones is millions of messages, never to be held at once."""
    whole = {z.zone for z in flush.zones}
    for z in flush.zones:
        yield NXT_CT_FLUSH_ZONE, flush_zone_body(z.zone)
    zones = sorted(all_zones - whole)
    for a in flush.addresses:
        for zone in zones:
            yield NXT_CT_FLUSH, flush_tuple_body(zone, src=a.addr)
            yield NXT_CT_FLUSH, flush_tuple_body(zone, dst=a.addr)


_ENTRY = re.compile(r"orig=\(src=([^,)]+),dst=([^,)]+)[^)]*\)(?:.*?,zone=(\d+))?")


def held_addresses(dump: str) -> Iterator[tuple[int, str, str]]:
    """(zone, original source, original destination) of each entry of a
    ``dpctl/dump-conntrack`` answer (zone 0 is not printed)."""
    for m in _ENTRY.finditer(dump):
        yield int(m.group(3) or 0), m.group(1), m.group(2)


def targeted_messages(flush: FlushPlan, all_zones: set[int], dump: str
                      ) -> list[tuple[int, bytes]]:
    """The plan's messages for the entries ``dump`` (the connection table read just
    now) holds: each zone flushed whole as always, each address only in the zones
    that hold an entry from or to it, in that direction. What ``iter_messages`` does,
    sized by the table instead of addresses x zones."""
    whole = {z.zone for z in flush.zones}
    zones = all_zones - whole
    wanted = {str(a.addr): a.addr for a in flush.addresses}
    # Texts OVS may print differently from Python (IPv6) are compared as addresses.
    v6 = {a.addr for a in flush.addresses if a.addr.version == 6}
    src: set[tuple[int, IpAddr]] = set()
    dst: set[tuple[int, IpAddr]] = set()
    for zone, s, d in held_addresses(dump):
        if zone not in zones:
            continue
        for text, out in ((s, src), (d, dst)):
            addr = wanted.get(text)
            if addr is None and v6 and ":" in text:
                addr = _v6(text, v6)
            if addr is not None:
                out.add((zone, addr))
    out = [(NXT_CT_FLUSH_ZONE, flush_zone_body(z.zone)) for z in flush.zones]
    out += [(NXT_CT_FLUSH, flush_tuple_body(z, src=a)) for z, a in sorted(src, key=_pair_key)]
    out += [(NXT_CT_FLUSH, flush_tuple_body(z, dst=a)) for z, a in sorted(dst, key=_pair_key)]
    return out


def _v6(text: str, wanted: set[IpAddr]) -> IpAddr | None:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    return addr if addr in wanted else None


def _pair_key(pair: tuple[int, IpAddr]) -> tuple[int, int, int]:
    return (pair[0], *_ip_key(pair[1]))


def one_per_datapath(dpids: list[int], types: dict[int, str]) -> list[int]:
    """The switches a flush goes to: one per datapath type (``types``: dpid -> type),
    since the bridges of one type share one datapath and its connection table; a switch
    of unknown type goes on its own. In the order given."""
    out, seen = [], set()
    for dpid in dpids:
        kind = types.get(dpid)
        if kind is None or kind not in seen:
            out.append(dpid)
            if kind is not None:
                seen.add(kind)
    return out


def message_count(flush: FlushPlan, all_zones: set[int]) -> int:
    """How many messages ``iter_messages`` makes for the plan."""
    return len(flush.zones) + 2 * len(flush.addresses) * len(
        all_zones - {z.zone for z in flush.zones})
