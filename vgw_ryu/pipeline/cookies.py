"""The cookie layout: who owns a flow and a digest of its text, in 64 bits.

```
 63      56 55  52 51            32 31                      0
+----------+------+----------------+-------------------------+
|  magic   | kind |   owner id     |  content hash (crc32)   |
+----------+------+----------------+-------------------------+
```

The magic byte tells our flows from anyone else's. Kind and owner let one cookie-masked
delete remove everything a VM, rule or port owns. The content hash covers everything
the switch gets of the flow (table, priority, and the match and instructions as
OpenFlow bytes), so an unchanged cookie means an unchanged flow and the app can diff
switch and desired flows by (table, cookie) without parsing matches back.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

COOKIE_MAGIC = 0x76  # 'v'
MAGIC_SHIFT = 56
KIND_SHIFT, KIND_BITS = 52, 4
OWNER_SHIFT, OWNER_BITS = 32, 20
HASH_BITS = 32
OWNER_MASK = 0xFFFFFFFF00000000  # magic, kind and owner: the part a delete selects on


@dataclass(frozen=True)
class Kind:
    """An owner kind: what the owner id of a cookie of this kind names."""
    value: int
    name: str
    owner: str
    meaning: str


KINDS: tuple[Kind, ...] = (
    Kind(1, "infra", "0", "the fixed flows every bridge has"),
    Kind(2, "vm", "zone", "a VM's classify, anti-spoofing, ingress classify and the rule "
         "clauses naming it"),
    Kind(3, "rule", "rule number", "the `conj_id` flow of a rule"),
    Kind(4, "peer", "0", "clause flows shared by rules (peers, protocols/ports)"),
    Kind(5, "port", "ofport", "uplinks, unprotected VMs and silent unknown ports"),
    Kind(6, "default", "0", "the defaults of the rules table, from settings"),
)
KIND_INFRA, KIND_VM, KIND_RULE, KIND_PEER, KIND_PORT, KIND_DEFAULT = (k.value for k in KINDS)
KIND_NAMES: dict[int, str] = {k.value: k.name for k in KINDS}
KIND_BY_NAME: dict[str, int] = {k.name: k.value for k in KINDS}

_KIND_MAX = (1 << KIND_BITS) - 1
_OWNER_MAX = (1 << OWNER_BITS) - 1
_HASH_MAX = (1 << HASH_BITS) - 1


def owner_bits(kind: int, owner: int) -> int:
    """Cookie bits 63..32: magic byte, 4-bit owner kind, 20-bit owner id."""
    return ((COOKIE_MAGIC << MAGIC_SHIFT) | ((kind & _KIND_MAX) << KIND_SHIFT)
            | ((owner & _OWNER_MAX) << OWNER_SHIFT))


def content_hash(table: int, priority: int, match: bytes, instructions: bytes) -> int:
    """The low 32 bits of a cookie: crc32 of the flow as the switch gets it (the bytes
    are computed for the flow mod anyway; a 32-bit digest of them needs no more)."""
    return zlib.crc32(instructions, zlib.crc32(match, (table << 16) | priority))


def make_cookie(kind: int, owner: int, table: int, priority: int, match: bytes,
                instructions: bytes) -> int:
    """The cookie of a flow with this owner, table, priority and OpenFlow match and
    instructions bytes."""
    return owner_bits(kind, owner) | content_hash(table, priority, match, instructions)


def kind_mask() -> int:
    """Cookie mask selecting the magic byte and the owner kind (a flow stats request
    with ``owner_bits(kind, 0)`` and this mask matches every flow of that kind)."""
    return (0xFF << MAGIC_SHIFT) | (_KIND_MAX << KIND_SHIFT)


def split_cookie(cookie: int) -> tuple[int, int, int] | None:
    """(kind, owner, content hash) of a vgw cookie, or None for a foreign one."""
    if cookie >> MAGIC_SHIFT != COOKIE_MAGIC:
        return None
    return ((cookie >> KIND_SHIFT) & _KIND_MAX, (cookie >> OWNER_SHIFT) & _OWNER_MAX,
            cookie & _HASH_MAX)


def owner_match(kind: int, owner: int) -> tuple[int, int]:
    """(cookie, mask) selecting every flow of one owner, e.g. for a masked delete."""
    return owner_bits(kind, owner), OWNER_MASK
