"""Conntrack state flags, declared once: their bits, their OVS spelling, and matches on them.

Matches are written the way ``ovs-ofctl`` prints them (``"+est+rpl-inv+trk"``), so a
flow in the compiler reads like the flow in flows/examples.
"""

from __future__ import annotations

# (OVS name, bit) in the order OVS prints them.
CT_FLAGS: tuple[tuple[str, int], ...] = (
    ("new", 0x01), ("est", 0x02), ("rel", 0x04), ("rpl", 0x08), ("inv", 0x10), ("trk", 0x20),
)
CT_BIT = dict(CT_FLAGS)

CT_NEW, CT_EST, CT_REL, CT_RPL, CT_INV, CT_TRK = (bit for _, bit in CT_FLAGS)


def ct_state_text(value: int, mask: int) -> str:
    """ct_state as OVS flags, e.g. (0x22, 0x32) -> '+est-inv+trk'."""
    return "".join(("+" if value & bit else "-") + name for name, bit in CT_FLAGS
                   if mask & bit)


def parse_ct_state(text: str) -> tuple[int, int]:
    """(value, mask) of OVS flag text: '+est-inv+trk' -> (0x22, 0x32)."""
    value = mask = 0
    rest = text
    while rest:
        sign, rest = rest[0], rest[1:]
        if sign not in "+-":
            raise ValueError(f"ct_state {text!r}: expected + or - before a flag")
        name = rest[:3]
        if name not in CT_BIT:
            raise ValueError(f"ct_state {text!r}: unknown flag {name!r}")
        rest = rest[3:]
        bit = CT_BIT[name]
        if mask & bit:
            raise ValueError(f"ct_state {text!r}: flag {name!r} twice")
        mask |= bit
        if sign == "+":
            value |= bit
    return value, mask


def ct_state(text: str) -> tuple[str, tuple[int, int]]:
    """A ct_state match entry for a Flow match dict: ``dict([ct_state('+new+trk')])``."""
    return "ct_state", parse_ct_state(text)
