"""Every register bit the pipeline uses, declared once as a typed field.

A field knows its register, offset and width, so the compiler writes
``VERDICT.match(VERDICT_ALLOW)`` and ``RULE.load(n)`` instead of hand-shifted values and
masks on ``"reg0"``; flows/PIPELINE.md's register table is generated from ``FIELDS``.
"""

from __future__ import annotations

from dataclasses import dataclass

from vgw_ryu.pipeline.flows import Load, MatchValue, Move

REG_WIDTH = 32  # NXM registers reg0..reg15 and ct_mark are 32 bits wide


@dataclass(frozen=True)
class Field:
    """Bits ``ofs..ofs+nbits-1`` of a register (or ct_mark) with one meaning."""
    name: str
    reg: str
    ofs: int
    nbits: int
    meaning: str

    def __post_init__(self) -> None:
        if self.nbits < 1 or self.ofs < 0 or self.ofs + self.nbits > REG_WIDTH:
            raise ValueError(f"{self.name}: bits {self.ofs}+{self.nbits} outside the register")

    @property
    def whole(self) -> bool:
        """Whether the field is the whole register (matched and loaded without a mask)."""
        return self.ofs == 0 and self.nbits == REG_WIDTH

    @property
    def mask(self) -> int:
        """The field's bits in place in the register."""
        return ((1 << self.nbits) - 1) << self.ofs

    @property
    def bits(self) -> str:
        """The field in NXM slice notation: ``reg0[0..1]``, ``reg0[3]``, ``reg6``."""
        if self.whole:
            return self.reg
        if self.nbits == 1:
            return f"{self.reg}[{self.ofs}]"
        return f"{self.reg}[{self.ofs}..{self.ofs + self.nbits - 1}]"

    def _check(self, value: int) -> None:
        if not 0 <= value < 1 << self.nbits:
            raise ValueError(f"{self.name}: {value} does not fit in {self.nbits} bits")

    def match(self, value: int) -> tuple[str, MatchValue]:
        """The (register, value or (value, mask)) entry of a Flow match dict."""
        self._check(value)
        if self.whole:
            return self.reg, value
        return self.reg, (value << self.ofs, self.mask)

    def load(self, value: int) -> Load:
        """The action that writes ``value`` into the field."""
        self._check(value)
        return Load(self.reg, value, self.ofs, self.nbits)


VERDICT = Field("verdict", "reg0", 0, 2, "verdict from table 60: 1 allow, 2 deny, 3 reject")
LOG = Field("log", "reg0", 2, 1, "log this verdict")
DIRECTION = Field("direction", "reg0", 3, 1,
                  "stage being judged: 0 egress rules, 1 ingress rules")
REVOKE = Field("revoke", "reg0", 4, 1, "a policy change just cut this established "
               "connection: its punt is the revocation record")
INVALID = Field("invalid", "reg0", 5, 1, "conntrack found the packet invalid (over the VM's "
                "connection limit, or broken): the punt is a log record of the drop")
RULE = Field("rule", "reg3", 0, 32, "number of the deciding rule (0: a default); "
             "packet-ins carry it")
PUNT_ZONE = Field("punt_zone", "reg4", 0, 32,
                  "zone of the VM whose policy decided; set just before a punt, so the punt "
                  "knows the VM even after table 40 reloaded reg6 for the destination")
OUT_PORT = Field("out_port", "reg5", 0, 32,
                 "OpenFlow port of the destination VM (ingress output)")
ZONE = Field("zone", "reg6", 0, 32, "conntrack zone of the VM the current stage works for "
             "(`ct` reads bits 0..15)")
BLOCKED = Field("blocked", "ct_mark", 31, 1, "the connection is blocked: a changed policy "
                "denied its original direction, so its replies are dropped too")

FIELDS: tuple[Field, ...] = (VERDICT, LOG, DIRECTION, REVOKE, INVALID, RULE, PUNT_ZONE,
                             OUT_PORT, ZONE, BLOCKED)
BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}

VERDICT_ALLOW, VERDICT_DENY, VERDICT_REJECT = 1, 2, 3
VERDICTS: dict[str, int] = {"allow": VERDICT_ALLOW, "deny": VERDICT_DENY,
                            "reject": VERDICT_REJECT}
VERDICT_NAMES: dict[int, str] = {v: k for k, v in VERDICTS.items()}
DIR_EGRESS, DIR_INGRESS = 0, 1


def match(*entries: tuple[str, MatchValue]) -> dict[str, MatchValue]:
    """A match dict from field entries; masked entries on one register are merged."""
    out: dict[str, MatchValue] = {}
    for reg, v in entries:
        if reg in out:
            old = out[reg]
            if not (isinstance(old, tuple) and isinstance(v, tuple)
                    and isinstance(old[0], int) and isinstance(v[0], int)):
                raise ValueError(f"{reg} matched twice and not as disjoint masked fields")
            if old[1] & v[1]:
                raise ValueError(f"{reg}: overlapping masks {old[1]:#x} and {v[1]:#x}")
            v = (old[0] | v[0], old[1] | v[1])
        out[reg] = v
    return out


def load(*assignments: tuple[Field, int]) -> Load:
    """One Load writing adjacent fields of one register together, lowest field first."""
    parts = sorted(assignments, key=lambda fv: fv[0].ofs)
    first = parts[0][0]
    value, end = 0, first.ofs
    for f, v in parts:
        if f.reg != first.reg or f.ofs != end:
            raise ValueError(f"{f.name} does not follow on from the fields before it")
        f._check(v)
        value |= v << (f.ofs - first.ofs)
        end = f.ofs + f.nbits
    return Load(first.reg, value, first.ofs, end - first.ofs)


def copy(src: Field, dst: Field) -> Move:
    """Copy one whole-register field into another."""
    if not (src.whole and dst.whole):
        raise ValueError("only whole registers are copied")
    return Move(src.reg, dst.reg)
