"""The controller's brain without Ryu: desired state, port identity, desired flows.

The Ryu app feeds it switch facts (OVSDB interfaces, MACs seen in punts) and asks it
for each switch's desired flows; the REST API reads and writes the state through it.
Every write is validated first and committed to the store before it takes effect.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from vgw_ryu.compiler import PortFacts, SwitchFacts, compile_switch, is_uplink_name
from vgw_ryu.pipeline.flows import Flow
from vgw_ryu.policy.ids import Ids
from vgw_ryu.policy.model import State, ValidationError, parse_state, state_doc
from vgw_ryu.policy.ruleset import EffectiveRule, effective_rules
from vgw_ryu.runtime.ports import Iface
from vgw_ryu.runtime.store import Store

LOG = logging.getLogger("vgw_ryu.runtime.engine")
TUNNEL_TYPES = {"patch", "vxlan", "geneve", "gre", "stt", "lisp", "erspan", "ip6gre",
                "ip6erspan", "gtpu", "bareudp"}
LOCAL_PORT = 0xFFFFFFFE  # OFPP_LOCAL


@dataclass
class SwitchView:
    """What the controller knows about one connected switch."""
    dpid: int
    ifaces: list[Iface] = field(default_factory=list)
    facts: SwitchFacts = field(default_factory=SwitchFacts)
    applied_revision: int | None = None
    flow_count: int = 0
    of_version: int = 0


def classify_port(state: State, iface: Iface, learned_mac: str | None) -> PortFacts:
    """Decide what a port is: a VM (which), an uplink, or unknown. See DESIGN.md."""
    eid = iface.external_ids
    attached = (eid.get("attached-mac") or "").lower() or None
    if eid.get("vgw-role") == "uplink":
        return PortFacts(iface.ofport, iface.name, "uplink")
    for key in ("vm-id", "iface-id"):
        name = eid.get(key)
        if name and name in state.vms:
            return PortFacts(iface.ofport, iface.name, "vm", name,
                             state.vms[name].mac or attached)
    if iface.type in TUNNEL_TYPES or is_uplink_name(iface.name, state.settings.uplinks):
        return PortFacts(iface.ofport, iface.name, "uplink")
    for mac in (attached, learned_mac):
        if mac:
            for name, vm in state.vms.items():
                if vm.mac == mac:
                    return PortFacts(iface.ofport, iface.name, "vm", name, mac)
    return PortFacts(iface.ofport, iface.name, "unknown", None, attached or learned_mac)


class Engine:
    """Desired state, ids and per-switch facts; thread-safe for REST + app."""

    def __init__(self, store: Store):
        self.store = store
        self.lock = threading.RLock()
        doc, self.revision, ids_doc = store.load()
        try:
            self.state = parse_state(doc)
        except ValidationError as e:
            raise RuntimeError(f"stored state in {store.path} is invalid: {e}") from e
        self.ids = Ids.from_doc(ids_doc)
        if self.ids.sync(self.state):
            store.write_ids(self.ids.to_doc())
        self.effective: dict[str, list[EffectiveRule]] = effective_rules(self.state)
        self.switches: dict[int, SwitchView] = {}
        self.learned: dict[tuple[int, int], str] = {}   # (dpid, ofport) -> MAC from punts
        self.listeners: list = []
        self.vm_flow_cache: dict = {}

    # --- state -----------------------------------------------------------------
    def state_document(self) -> dict[str, Any]:
        with self.lock:
            return {**state_doc(self.state), "revision": self.revision}

    def replace_state(self, new: State, if_match: int | None = None,
                      extra: dict[str, str] | None = None) -> int:
        """Commit a validated state; returns the new revision (after COMMIT)."""
        with self.lock:
            ids = Ids.from_doc(self.ids.to_doc())
            ids.sync(new)
            rev = self.store.write(state_doc(new), ids.to_doc(), if_match, extra)
            self.state, self.ids, self.revision = new, ids, rev
            self.effective = effective_rules(new)
        LOG.info("state revision %d: %d VMs, %d groups, %d policies", rev, len(new.vms),
                 len(new.groups), len(new.policies))
        for cb in list(self.listeners):
            cb()
        return rev

    def apply_document(self, doc: Any, if_match: int | None = None,
                       extra: dict[str, str] | None = None) -> int:
        """Validate and commit a whole state document."""
        return self.replace_state(parse_state(doc), if_match, extra)

    def seed_from_file(self, text: str, parsed: Any) -> int | None:
        """Apply a seed file if its content differs from the last one applied."""
        digest = hashlib.sha256(text.encode()).hexdigest()
        if self.store.meta("seed-sha256") == digest:
            return None
        return self.apply_document(parsed, extra={"seed-sha256": digest})

    # --- switches ----------------------------------------------------------------
    def switch(self, dpid: int) -> SwitchView:
        with self.lock:
            return self.switches.setdefault(dpid, SwitchView(dpid))

    def forget_switch(self, dpid: int) -> None:
        with self.lock:
            self.switches.pop(dpid, None)
            for key in [k for k in self.learned if k[0] == dpid]:
                del self.learned[key]

    def refresh_facts(self, dpid: int, ifaces: list[Iface]) -> SwitchFacts:
        """Classify a switch's ports against the current state."""
        with self.lock:
            sw = self.switch(dpid)
            sw.ifaces = ifaces
            ports = []
            for iface in ifaces:
                if iface.ofport in (LOCAL_PORT, 65534):
                    continue
                ports.append(classify_port(self.state, iface,
                                           self.learned.get((dpid, iface.ofport))))
            sw.facts = SwitchFacts(tuple(ports))
            return sw.facts

    def desired_flows(self, dpid: int, ifaces: list[Iface]) -> tuple[list[Flow], int]:
        """(desired flows, revision they come from) for one switch and its interfaces.

        Ports are classified here, under the lock, against the state being compiled.
        """
        with self.lock:
            facts = self.refresh_facts(dpid, ifaces)
            if len(self.vm_flow_cache) > 4 * len(self.state.vms) + 64:
                self.vm_flow_cache.clear()  # old VM versions: let them go
            flows = compile_switch(self.state, facts, self.ids, self.effective,
                                   self.vm_flow_cache)
            return flows, self.revision

    def learn_mac(self, dpid: int, ofport: int, mac: str) -> bool:
        """Remember a MAC seen on an unknown port; True if it identifies a VM."""
        with self.lock:
            self.learned[(dpid, ofport)] = mac.lower()
            return any(vm.mac == mac.lower() for vm in self.state.vms.values())

    # --- views for the REST API ---------------------------------------------------
    def vm_locations(self) -> dict[str, list[dict[str, Any]]]:
        with self.lock:
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
        with self.lock:
            out = []
            for dpid, sw in sorted(self.switches.items()):
                ports = [{"ofport": p.ofport, "name": p.name, "kind": p.kind, "vm": p.vm}
                         for p in sw.facts.ports]
                out.append({
                    "dpid": f"{dpid:016x}",
                    "of_version": sw.of_version,
                    "applied_revision": sw.applied_revision,
                    "flows": sw.flow_count,
                    "vm_ports": [p for p in ports if p["kind"] == "vm"],
                    "uplinks": [p for p in ports if p["kind"] == "uplink"],
                    "unknown_ports": [p for p in ports if p["kind"] == "unknown"],
                })
            return out

