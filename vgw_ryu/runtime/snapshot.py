"""A consistent, read-only view of the engine at one moment: what readers get.

The REST API, the stats, the trace and the punt log read the state, its revision, the
ids and the switch facts through a Snapshot instead of taking the engine's lock; the
engine replaces (never mutates) state, ids and effective rules, so a snapshot stays
valid after later writes. No Ryu here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from vgw_ryu.compiler import PortFacts, SwitchFacts
from vgw_ryu.policy.ids import Ids
from vgw_ryu.policy.model import State, state_doc
from vgw_ryu.policy.ruleset import EffectiveRule


@dataclass(frozen=True)
class SwitchInfo:
    """One connected switch as the engine last saw it."""
    dpid: int
    facts: SwitchFacts
    applied_revision: int | None
    flow_count: int
    of_version: int
    bridge: str | None = None
    external_ids: Mapping[int, Mapping[str, str]] = field(
        default_factory=lambda: MappingProxyType({}))   # ofport -> OVSDB external_ids
    port_problems: Mapping[int, list[dict[str, Any]]] = field(
        default_factory=lambda: MappingProxyType({}))   # ofport -> problems found

    def ports(self, kind: str | None = None) -> tuple[PortFacts, ...]:
        return tuple(p for p in self.facts.ports if kind is None or p.kind == kind)


@dataclass(frozen=True)
class Snapshot:
    """State, revision, ids, effective rules and switches, all from one moment."""
    state: State
    revision: int
    ids: Ids
    effective: Mapping[str, list[EffectiveRule]]
    switches: Mapping[int, SwitchInfo]

    def document(self) -> dict[str, Any]:
        """The state document with its revision (GET /v1/state)."""
        return {**state_doc(self.state), "revision": self.revision}

    def switch(self, dpid: int) -> SwitchInfo | None:
        return self.switches.get(dpid)

    def vm_locations(self) -> dict[str, list[dict[str, Any]]]:
        """Where each VM was seen: switch, OpenFlow port, port name and zone."""
        where: dict[str, list[dict[str, Any]]] = {}
        for dpid, sw in sorted(self.switches.items()):
            for p in sw.facts.ports:
                if p.kind == "vm" and p.vm:
                    vm = self.state.vms.get(p.vm)
                    zone = self.ids.zone(p.vm) if vm and vm.protected else None
                    where.setdefault(p.vm, []).append(
                        {"switch": f"{dpid:016x}", "ofport": p.ofport, "port": p.name,
                         "zone": zone})
        return where

    def switches_view(self) -> list[dict[str, Any]]:
        """The switches as GET /v1/switches shows them.

        ``bridge`` is the OVSDB bridge name (None until known); an unknown port shows
        the ``vm_id`` its external_ids carry (vm-id, else iface-id) when it has one,
        so a typo or an undeclared VM is visible; a port with problems (e.g. traffic
        dropped as conntrack-invalid) lists them under ``problems``. The port lists
        are shared between calls while a switch's ports are unchanged: read-only.
        """
        return [{"dpid": f"{dpid:016x}", "bridge": sw.bridge, "of_version": sw.of_version,
                 "applied_revision": sw.applied_revision, "flows": sw.flow_count,
                 **_port_lists(sw)}
                for dpid, sw in sorted(self.switches.items())]


# GET /v1/switches is what a client polls while it waits for a revision: rebuilding
# 5,000 ports' entries for each poll took CPU from the sync being waited for. Each
# switch's lists are kept while its ports, their external_ids and problems are the same.
_PORT_LISTS: dict[int, tuple[tuple, dict[str, list[dict[str, Any]]]]] = {}
_LIST_OF = {"vm": "vm_ports", "uplink": "uplinks", "unknown": "unknown_ports"}


def _port_lists(sw: SwitchInfo) -> dict[str, list[dict[str, Any]]]:
    problems = dict(sw.port_problems)
    had = _PORT_LISTS.get(sw.dpid)
    if had is not None:
        facts, eids, probs = had[0]
        if facts is sw.facts and eids is sw.external_ids and probs == problems:
            return had[1]
    lists: dict[str, list[dict[str, Any]]] = {name: [] for name in _LIST_OF.values()}
    for p in sw.facts.ports:
        port = {"ofport": p.ofport, "name": p.name, "kind": p.kind, "vm": p.vm}
        if p.kind == "unknown":
            eid = sw.external_ids.get(p.ofport, {})
            vm_id = eid.get("vm-id") or eid.get("iface-id")
            if vm_id:
                port["vm_id"] = vm_id
        if problems.get(p.ofport):
            port["problems"] = list(problems[p.ofport])
        if p.kind in _LIST_OF:
            lists[_LIST_OF[p.kind]].append(port)
    _PORT_LISTS[sw.dpid] = ((sw.facts, sw.external_ids, problems), lists)
    return lists
