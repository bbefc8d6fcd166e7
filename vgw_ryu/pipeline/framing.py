"""OpenFlow messages around flow mod bodies: framing many into few socket writes, bundle
adds, and meter mods; without Ryu. A body is what vgw_ryu.pipeline.wire packs: the
version byte and the xid are added here.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence

OFP14 = 0x05
OFPT_FLOW_MOD = 14
OFPT_METER_MOD = 29
OFPT_BUNDLE_ADD_MESSAGE = 34          # OpenFlow 1.4
MAX_XID = 0xFFFFFFFF
OFP_HEADER = struct.Struct("!BBHI")
# ofp_header + ofp_bundle_add_msg fields + the inner message's ofp_header
BUNDLE_ADD_HEAD = struct.Struct("!BBHIIxxHBBHI")
DEFAULT_CHUNK = 256 * 1024            # bytes per socket write when framing many messages


# --- meter mods --------------------------------------------------------------------

METER_COMMANDS = {"add": 0, "modify": 1, "delete": 2}        # OFPMC_*
OFPMF_PKTPS, OFPMF_BURST, OFPMF_STATS = 2, 4, 8
OFPMBT_DROP = 1
METER_MOD_FIXED = struct.Struct("!HHI")        # command, flags, meter id
METER_BAND_DROP = struct.Struct("!HHII4x")     # type, length, rate, burst size


def meter_mod(meter_id: int, pps: int, command: str = "add") -> bytes:
    """OFPT_METER_MOD body: a packets-per-second drop meter with a burst of a quarter
    second (Neutron's logging default: 100 pps, burst 25); a delete has no band."""
    cmd = METER_COMMANDS[command]
    if command == "delete":
        return METER_MOD_FIXED.pack(cmd, 0, meter_id)
    return (METER_MOD_FIXED.pack(cmd, OFPMF_PKTPS | OFPMF_BURST | OFPMF_STATS, meter_id)
            + METER_BAND_DROP.pack(OFPMBT_DROP, METER_BAND_DROP.size, pps, max(pps // 4, 1)))


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
           chunk: int = DEFAULT_CHUNK, msg_type: int = OFPT_FLOW_MOD) -> Iterator[bytes]:
    """Flow mod bodies as whole messages, joined into writes of about ``chunk`` bytes.

    Message i gets xid ``first_xid + i``. With ``bundle`` (bundle id, flags) each is
    wrapped in an OpenFlow 1.4 bundle add message; without, each is a plain flow mod
    (or, with ``msg_type``, another message: OFPT_METER_MOD for meter_mod bodies).
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
            parts.append(head(version, msg_type, n, xid))
            size += n
        parts.append(body)
        if size >= chunk:
            yield b"".join(parts)
            parts, size = [], 0
    if parts:
        yield b"".join(parts)
