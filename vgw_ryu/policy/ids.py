"""Stable numbers: a conntrack zone per VM and a number per rule.

A VM keeps its zone for as long as it exists (across recompiles, controller restarts
and moves between switches); a rule keeps its number (its conjunction id and cookie
owner). New names get the lowest free number, in sorted order, so the same history
gives the same numbers. Rule numbers live in the policy database; zones are per
hypervisor, in its zone file. No Ryu here.
"""

from __future__ import annotations

from typing import Any

from vgw_ryu.policy.model import State

ZONE_MAX = 65535       # ct zones are 16 bits; zone 0 is the default zone, never used
ZONE_RANGE = (1, ZONE_MAX)
RULE_MAX = 0xFFFFF     # rule numbers fit the 20-bit cookie owner field


class OutOfNumbersError(ValueError):
    """Every number of the range is taken (or waits for its flush)."""


def parse_zone_range(text: str) -> tuple[int, int]:
    """``"LO-HI"`` (1 <= LO <= HI <= 65535) as a pair; ValueError says what is wrong."""
    lo, sep, hi = text.strip().partition("-")
    if not sep or not all(x.strip().isascii() and x.strip().isdecimal() for x in (lo, hi)):
        raise ValueError(f"zone range {text!r} is not LO-HI (e.g. 1-65535)")
    first, last = int(lo), int(hi)
    if not 1 <= first <= last <= ZONE_MAX:
        raise ValueError(f"zone range {text!r}: need 1 <= LO <= HI <= {ZONE_MAX} "
                         "(zone 0 is the datapath's default zone)")
    return first, last


class _Numbering:
    def __init__(self, limit: int, seed: dict[str, int] | None = None,
                 held: set[int] | None = None, first: int = 1,
                 hold_released: bool = False):
        self.first, self.limit = first, limit
        self.by_key: dict[str, int] = dict(seed or {})
        self.held: set[int] = set(held or ())   # released, not yet reusable
        self.hold_released = hold_released
        # Numbers outside the range (it was moved): their keys get new ones at the next
        # sync, and the old numbers are released like any other.
        for k in [k for k, n in self.by_key.items() if not first <= n <= limit]:
            if hold_released:
                self.held.add(self.by_key[k])
            del self.by_key[k]

    def sync(self, keys: list[str], strict: bool = True) -> bool:
        """Number every key, drop the ones gone; True if anything changed. When the
        range is full: OutOfNumbersError, or (not ``strict``) the keys left without a
        number are in ``left_out``."""
        self.left_out: list[str] = []
        wanted = set(keys)
        changed = False
        for k in [k for k in self.by_key if k not in wanted]:
            if self.hold_released:
                self.held.add(self.by_key[k])
            del self.by_key[k]
            changed = True
        used = set(self.by_key.values()) | self.held
        n = self.first
        for k in sorted(wanted - set(self.by_key)):
            while n in used:
                n += 1
            if n > self.limit:
                if not strict:
                    self.left_out.append(k)
                    continue
                raise OutOfNumbersError(f"out of numbers: {self.first}-{self.limit} all "
                                        f"taken (limit {self.limit}) for {k!r}")
            self.by_key[k] = n
            used.add(n)
            changed = True
        return changed


def rule_key(policy: str, rule_id: str) -> str:
    return f"{policy}/{rule_id}"


class Ids:
    """Zones for protected VMs and numbers for rules, allocated stably."""

    def __init__(self, zones: dict[str, int] | None = None,
                 rules: dict[str, int] | None = None, flushing: list[int] | None = None,
                 with_zones: bool = True, zone_range: tuple[int, int] = ZONE_RANGE):
        # An API server programs no switch: it numbers rules only (zone() is None).
        self.with_zones = with_zones
        self.zone_range = zone_range
        # A freed zone may still hold connection entries: it is reused only once the
        # runtime reports it flushed on every switch (``zones_flushed``).
        self._zones = _Numbering(zone_range[1], zones, set(flushing or ()),
                                 first=zone_range[0], hold_released=True)
        self._rules = _Numbering(RULE_MAX, rules)
        self.unnumbered: set[str] = set()   # protected here, no zone free (see sync)

    def sync(self, state: State, local: set[str] | None = None) -> bool:
        """Allocate for everything in ``state`` and release what is gone.

        ``local``: number only the protected VMs seen on this hypervisor (and keep the
        zones already given), as a fleet agent does; None numbers every protected VM.
        A full zone range raises OutOfNumbersError, except with ``local``: the VMs
        left without a zone are in ``unnumbered`` (their ports are blocked).
        """
        wanted = [n for n, vm in state.vms.items() if vm.protected] \
            if self.with_zones else []
        if local is not None:
            wanted = [n for n in wanted if n in local or n in self._zones.by_key]
        a = self._zones.sync(wanted, strict=local is None)
        self.unnumbered = set(self._zones.left_out)
        b = self._rules.sync([rule_key(p, r.id) for p, pol in state.policies.items()
                              for r in pol.rules])
        return a or b

    def zone(self, vm: str) -> int | None:
        """The VM's zone; None if it has none here (not protected, or never seen on
        this hypervisor by an agent that numbers only its own VMs)."""
        return self._zones.by_key.get(vm)

    def zones(self) -> dict[str, int]:
        return dict(self._zones.by_key)

    def release(self, vms: list[str]) -> dict[str, int]:
        """Take the zones of ``vms`` back (held until flushed): {vm: zone} released."""
        out = {}
        for vm in vms:
            zone = self._zones.by_key.pop(vm, None)
            if zone is not None:
                self._zones.held.add(zone)
                out[vm] = zone
        return out

    def copy(self) -> Ids:
        """An independent copy (what a change is computed on before it is adopted)."""
        out = Ids.from_doc(self.to_doc())
        out.unnumbered = set(self.unnumbered)
        return out

    def rule(self, policy: str, rule_id: str) -> int:
        return self._rules.by_key[rule_key(policy, rule_id)]

    def rule_owner(self, number: int) -> tuple[str, str] | None:
        """(policy, rule id) of a rule number, e.g. from a packet-in's register."""
        for k, v in self._rules.by_key.items():
            if v == number:
                p, _, r = k.partition("/")
                return p, r
        return None

    def vm_of_zone(self, zone: int) -> str | None:
        for k, v in self._zones.by_key.items():
            if v == zone:
                return k
        return None

    def flushing(self) -> set[int]:
        """Zones released by deleted or unprotected VMs, waiting for their flush."""
        return set(self._zones.held)

    def zones_flushed(self, zones: set[int]) -> bool:
        """Make flushed zones reusable; True if anything changed."""
        before = len(self._zones.held)
        self._zones.held -= zones
        return len(self._zones.held) != before

    def rule_numbers(self) -> dict[str, int]:
        """"policy/rule id" -> number (what the shared database keeps)."""
        return dict(self._rules.by_key)

    def zone_doc(self) -> dict[str, Any]:
        """The zones and the zones waiting for a flush (what a hypervisor keeps)."""
        doc: dict[str, Any] = {"zones": self.zones()}
        if self._zones.held:
            doc["flushing"] = sorted(self._zones.held)
        return doc

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"zones": self.zones(), "rules": dict(self._rules.by_key)}
        if not self.with_zones:
            doc["with_zones"] = False
        if self.zone_range != ZONE_RANGE:
            doc["zone_range"] = list(self.zone_range)
        if self._zones.held:
            doc["flushing"] = sorted(self._zones.held)
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any] | None) -> Ids:
        doc = doc or {}
        return cls(doc.get("zones"), doc.get("rules"), doc.get("flushing"),
                   doc.get("with_zones", True), tuple(doc.get("zone_range", ZONE_RANGE)))
