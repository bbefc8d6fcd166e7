"""Flows as plain data: match, actions, owner; rendered as ``ovs-ofctl`` text.

The text form is what ``flows/`` documents and what the sandbox tests load with
``ovs-ofctl add-flows``; the OpenFlow bytes (vgw_ryu.pipeline.wire) are what the
switch gets and what the cookie's content hash covers. No Ryu here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from vgw_ryu.pipeline.cookies import (  # noqa: F401 - re-exported: callers import them here
    COOKIE_MAGIC,
    KIND_INFRA,
    OWNER_MASK,
    OWNER_SHIFT,
    make_cookie,
    owner_bits,
    split_cookie,
)
from vgw_ryu.pipeline.ctstate import CT_FLAGS, ct_state_text  # noqa: F401 - re-exported

# Render matches in one order, prerequisites first, so the text is stable and readable.
FIELD_ORDER = (
    "in_port", "reg6", "reg0", "reg4", "reg5", "conj_id", "eth_src", "eth_dst", "eth_type",
    "ct_state", "ct_mark", "ip_proto", "ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst",
    "arp_spa", "arp_sha", "tcp_src", "tcp_dst", "udp_src", "udp_dst", "icmpv4_type",
    "icmpv4_code", "icmpv6_type", "icmpv6_code", "ipv6_nd_target",
)
_ORDER = {f: i for i, f in enumerate(FIELD_ORDER)}

HEX_FIELDS = {"reg0", "reg4", "reg5", "reg6", "ct_mark", "eth_type", "conj_id", "tcp_dst",
              "udp_dst"}

# Ryu/OXM field names are used everywhere; ovs-ofctl spells these differently.
OFCTL_NAME = {"ipv4_src": "nw_src", "ipv4_dst": "nw_dst", "ipv6_nd_target": "nd_target",
              "icmpv4_type": "icmp_type", "icmpv4_code": "icmp_code"}

MatchValue = int | str | tuple[int, int] | tuple[str, str]


def _nxm(reg: str) -> str:
    return f"NXM_NX_{reg.upper()}"


def _bits(ofs: int, nbits: int) -> str:
    if ofs == 0 and nbits == 32:
        return "[]"
    if nbits == 1:
        return f"[{ofs}]"
    return f"[{ofs}..{ofs + nbits - 1}]"


@dataclass(frozen=True)
class Resubmit:
    table: int

    def text(self) -> str:
        return f"resubmit(,{self.table})"


@dataclass(frozen=True)
class Load:
    """Load an immediate value into bits ``ofs..ofs+nbits-1`` of a register."""
    dst: str
    value: int
    ofs: int = 0
    nbits: int = 32

    def text(self) -> str:
        return f"load:{self.value:#x}->{_nxm(self.dst)}{_bits(self.ofs, self.nbits)}"


@dataclass(frozen=True)
class Move:
    src: str
    dst: str

    def text(self) -> str:
        return f"move:{_nxm(self.src)}[]->{_nxm(self.dst)}[]"


@dataclass(frozen=True)
class Ct:
    """Conntrack in the zone held by ``zone_reg[0..15]``; commit may set ct_mark and
    keep a register (the admitting rule) in ct_label[0..31], marked by ct_label[32]."""
    commit: bool = False
    table: int | None = None
    zone_reg: str = "reg6"
    mark: int | None = None
    label_reg: str | None = None

    def text(self) -> str:
        parts = []
        if self.commit:
            parts.append("commit")
        if self.table is not None:
            parts.append(f"table={self.table}")
        parts.append(f"zone={_nxm(self.zone_reg)}[0..15]")
        inner = []
        if self.mark is not None:
            inner.append(f"set_field:{self.mark:#x}->ct_mark")
        if self.label_reg is not None:
            inner += [f"move:{_nxm(self.label_reg)}[]->NXM_NX_CT_LABEL[0..31]",
                      "load:0x1->NXM_NX_CT_LABEL[32]"]
        if inner:
            parts.append(f"exec({','.join(inner)})")
        return f"ct({','.join(parts)})"


@dataclass(frozen=True)
class CtClear:
    def text(self) -> str:
        return "ct_clear"


@dataclass(frozen=True)
class Conjunction:
    id: int
    clause: int
    n_clauses: int

    def text(self) -> str:
        return f"conjunction({self.id},{self.clause}/{self.n_clauses})"


@functools.lru_cache(maxsize=1 << 17)
def conjunction(id: int, clause: int, n_clauses: int) -> Conjunction:
    """A shared Conjunction action: a switch's clause flows name each (rule, clause) many
    times, and one object renders its text once."""
    return Conjunction(id, clause, n_clauses)


@dataclass(frozen=True)
class OutputReg:
    reg: str

    def text(self) -> str:
        return f"output:{_nxm(self.reg)}[]"


CT_CLEAR = CtClear()


@dataclass(frozen=True)
class Normal:
    def text(self) -> str:
        return "NORMAL"


@dataclass(frozen=True)
class Controller:
    max_len: int = 65535

    def text(self) -> str:
        return f"CONTROLLER:{self.max_len}"


Action = Resubmit | Load | Move | Ct | CtClear | Conjunction | OutputReg | Normal | Controller

def _value_text(name: str, v: MatchValue) -> str:
    if name == "ct_state" and isinstance(v, tuple):
        return ct_state_text(*v)
    if isinstance(v, tuple):
        a, m = v
        if isinstance(a, int):
            return f"{a:#x}/{m:#x}"
        return f"{a}/{m}"
    if isinstance(v, int):
        return f"{v:#x}" if name in HEX_FIELDS else str(v)
    return v


# A switch's flows repeat a few thousand match items and actions many times over: each
# is rendered once (the text is a pure function of the frozen value).
_TEXTS: dict[Any, str] = {}
_TEXTS_MAX = 200_000


def _item_text(kv: tuple[str, MatchValue]) -> str:
    text = _TEXTS.get(kv)
    if text is None:
        k, v = kv
        text = f"{OFCTL_NAME.get(k, k)}={_value_text(k, v)}"
        _remember(kv, text)
    return text


def _action_text(a: Action) -> str:
    # Kept on the (frozen) action itself: hashing a dataclass costs more than a lookup.
    text = a.__dict__.get("_text")
    if text is None:
        text = a.text()
        object.__setattr__(a, "_text", text)
    return text


def _remember(key: Any, text: str) -> None:
    if len(_TEXTS) >= _TEXTS_MAX:
        _TEXTS.clear()
    _TEXTS[key] = text


_WIRE: Any = None


def _wire() -> Any:
    """vgw_ryu.pipeline.wire (imported on first use: wire imports this module)."""
    global _WIRE
    if _WIRE is None:
        from vgw_ryu.pipeline import wire
        _WIRE = wire
    return _WIRE


# Per list of match names as a caller wrote them: the names in text order, and the
# positions of those in wire order. A pipeline writes a few dozen such lists, so two
# sorts per flow become one lookup.
_PLANS: dict[tuple[str, ...], tuple[tuple[str, ...], tuple[int, ...]]] = {}


def _plan(names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    text = tuple(sorted(names, key=_ORDER.__getitem__))
    plan = _PLANS[names] = (text, _wire().wire_order(text))
    return plan


@dataclass(frozen=True)
class Flow:
    """One OpenFlow flow: table, priority, match, actions and its owner for the cookie."""
    table: int
    priority: int
    match: tuple[tuple[str, MatchValue], ...]
    actions: tuple[Action, ...] = ()
    goto: int | None = None
    meter: int | None = None
    kind: int = KIND_INFRA
    owner: int = 0
    _body: str = field(default="", compare=False, repr=False)
    _cookie: int = field(default=0, compare=False, repr=False)
    # Its OpenFlow bytes, encoded once by vgw_ryu.pipeline.wire (not part of identity):
    # the match and instructions made with the flow (the cookie is their digest), then
    # the whole flow mod.
    _parts: Any = field(default=None, compare=False, repr=False)
    _wire: Any = field(default=None, compare=False, repr=False)

    @staticmethod
    def make(table: int, priority: int, match: dict[str, MatchValue],
             actions: list[Action] | tuple[Action, ...] = (), *, goto: int | None = None,
             meter: int | None = None, kind: int = KIND_INFRA, owner: int = 0) -> Flow:
        plan = _PLANS.get(names := tuple(match)) or _plan(names)
        m = tuple([(k, match[k]) for k in plan[0]])
        # Filled in one step: the frozen dataclass's __init__ sets each field through
        # object.__setattr__, a tenth of a compile at 25,000 flows. (Every field is set
        # here: tests/unit/test_pipeline.py compares with the dataclass's own fields.)
        f = object.__new__(Flow)
        d = f.__dict__
        d.update(table=table, priority=priority, match=m, actions=tuple(actions), goto=goto,
                 meter=meter, kind=kind, owner=owner, _body="", _wire=None)
        # The cookie digests the OpenFlow bytes the flow mod needs anyway (rendering
        # the text to digest it cost as much again); the text is made when asked for.
        parts = d["_parts"] = _wire().parts(f, plan[1])
        d["_cookie"] = make_cookie(kind, owner, table, priority, *parts)
        return f

    @staticmethod
    def from_fields(fields: dict[str, Any]) -> Flow:
        """A flow from another flow's ``__dict__`` with some values changed: the caller
        keeps its cookie and OpenFlow parts (``_cookie``, ``_parts``) true."""
        f = object.__new__(Flow)
        object.__setattr__(f, "__dict__", fields)
        return f

    def _render(self) -> str:
        acts = []
        if self.meter is not None:
            acts.append(f"meter:{self.meter}")
        acts += [_action_text(a) for a in self.actions]
        if self.goto is not None:
            acts.append(f"goto_table:{self.goto}")
        match = ",".join([_item_text(kv) for kv in self.match])
        head = f"table={self.table},priority={self.priority}"
        return f"{head},{match} actions={','.join(acts) or 'drop'}" if match else \
            f"{head} actions={','.join(acts) or 'drop'}"

    @property
    def body(self) -> str:
        """ovs-ofctl text without the cookie."""
        return self._body or self._render()

    @property
    def key(self) -> tuple[int, int, tuple]:
        """Identity in the switch: two flows with the same key replace each other."""
        return (self.table, self.priority, self.match)

    @property
    def cookie(self) -> int:
        """Owner bits and a digest of the flow text: same cookie, same flow."""
        return self._cookie

    def ofctl(self) -> str:
        """The flow as one ``ovs-ofctl add-flow`` line."""
        return f"cookie={self.cookie:#018x},{self.body}"

    def targets(self) -> set[int]:
        """Tables this flow continues in (goto, resubmit, ct recirculation)."""
        t = {a.table for a in self.actions if isinstance(a, Resubmit)}
        t |= {a.table for a in self.actions if isinstance(a, Ct) and a.table is not None}
        if self.goto is not None:
            t.add(self.goto)
        return t
