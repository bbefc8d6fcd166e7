"""The controller's brain without Ryu: desired state, port identity, desired flows.

The Ryu app feeds it switch facts (OVSDB interfaces, MACs seen in punts) and asks it
for each switch's desired flows; the REST API reads and writes the state through it.
Every write is validated first and committed to the policy database before it takes
effect; writes by other processes (API servers, other controllers) arrive through the
database replica and are adopted by ``refresh()``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

from vgw_ryu.compiler import SwitchCompiler, SwitchFacts
from vgw_ryu.compiler.owned import STREAM_CHUNK
from vgw_ryu.pipeline.flows import Flow
from vgw_ryu.policy.ids import ZONE_RANGE, Ids, OutOfNumbersError
from vgw_ryu.policy.model import State, ValidationError, objects_doc, parse_state, state_doc
from vgw_ryu.policy.parse import resolve_protection
from vgw_ryu.policy.rebase import DocCache, rebase
from vgw_ryu.policy.ruleset import EffectiveRule, effective_rules
from vgw_ryu.runtime import conntrack
from vgw_ryu.runtime.enginezones import UNCAPPED, EngineZones  # noqa: F401 - re-exported
from vgw_ryu.runtime.localzones import LocalZones
from vgw_ryu.runtime.portclass import SwitchPorts, classify_port  # noqa: F401 - re-exported
from vgw_ryu.runtime.ports import Iface
from vgw_ryu.runtime.snapshot import Snapshot, SwitchInfo
from vgw_ryu.runtime.switchview import SwitchView
from vgw_ryu.store.zonefile import ZoneFile

LOG = logging.getLogger("vgw_ryu.runtime.engine")


class Engine(EngineZones):
    """Desired state, ids and per-switch facts; thread-safe for REST + app.

    Readers take a ``snapshot()``; writers call the methods below, which hold the lock.
    """

    def __init__(self, store: Any, zones: ZoneFile | None = None,
                 lock: Callable[[], Any] = threading.RLock, with_zones: bool = True,
                 local_zones: bool = False, initial: Any = None,
                 zone_range: tuple[int, int] = ZONE_RANGE):
        self.store = store
        self.zone_file = zones if zones is not None else ZoneFile(None)
        self._lock = lock()
        # initial: what to enforce until the database answers (an agent's policy cache).
        loaded = initial if initial is not None else store.load()
        self.revision = loaded.revision
        try:
            self.state = parse_state(loaded.doc)
        except ValidationError as e:
            raise RuntimeError(f"stored state in {store.path} is invalid: {e}") from e
        zdoc = self.zone_file.load()
        # local_zones (a fleet agent): zones only for the VMs seen on this hypervisor.
        self._here = LocalZones(set(zdoc.get("zones") or {}), time.monotonic()) \
            if local_zones else None
        self._local: set[str] | None = self._here.local if self._here else None
        self._docs = DocCache()   # each object's document, for refresh()
        self.ids = Ids(zdoc.get("zones"), loaded.rules, zdoc.get("flushing"), with_zones,
                       zone_range)
        try:
            self.ids.sync(self.state, self._local)
        except OutOfNumbersError as e:
            raise RuntimeError(f"the zone range {zone_range[0]}-{zone_range[1]} holds "
                               f"too few zones for the protected VMs ({e}); widen "
                               "--vgw-zone-range") from e
        for vm, zone in (zdoc.get("zones") or {}).items():
            if self.ids.zone(vm) not in (None, zone):
                LOG.warning("vm %s: zone %d is outside the zone range %d-%d: it now has "
                            "zone %d, and zone %d is flushed", vm, zone, *zone_range,
                            self.ids.zone(vm), zone)
        self.zone_file.save(self.ids.zone_doc())
        self.effective: dict[str, list[EffectiveRule]] = effective_rules(self.state)
        self.switches: dict[int, SwitchView] = {}
        self._learned: dict[tuple[int, int], str] = {}  # (dpid, ofport) -> MAC from punts
        self._learned_seq = 0   # changes of _learned, so classifications know they are old
        self._ports: dict[int, SwitchPorts] = {}   # dpid -> its port classification
        self.listeners: list = []
        # dpid -> that switch's compiled flows, kept per owner between compiles.
        self.compilers: dict[int, SwitchCompiler] = {}
        # Connection-table flushes owed to the switches, oldest first: (plan, zones in
        # use when it was made). Zones held after a restart are flushed again.
        self._flushes: list[tuple[conntrack.FlushPlan, set[int]]] = []
        held = self.ids.flushing()
        if held:
            owner = {z: vm for vm, z in (zdoc.get("zones") or {}).items()}
            self._flushes.append((conntrack.FlushPlan(
                [conntrack.ZoneFlush(z, owner.get(z, "?"), "outside --vgw-zone-range"
                                     if z in owner else "released before a restart")
                 for z in sorted(held)], []), set()))

    # --- state -----------------------------------------------------------------
    def state_document(self) -> dict[str, Any]:
        with self._lock:
            return {**state_doc(self.state), "revision": self.revision}

    def replace_state(self, new: State, if_match: int | None = None,
                      extra: dict[str, str] | None = None,
                      request_id: str | None = None,
                      touched: dict[str, set[str]] | None = None) -> int:
        """Commit a validated state; returns the new revision (after the commit).

        ``touched``: the only objects that differ from the state held, by section (a
        one-object write stores those rows alone); None stores the whole state.
        Raises the store's StaleError when the database moved past the state this
        engine holds (another writer): ``refresh()`` and compute the write again.
        """
        with self._lock:
            new = self._locate(new)
            ids = self.ids.copy()
            ids.sync(new, self._local)
            self._left_out(ids)
            # Zones first: a zone must be durable before any flow or row uses it.
            self.zone_file.save(ids.zone_doc())
            doc = state_doc(new) if touched is None else objects_doc(new, touched)
            rev = self.store.write(doc, ids.rule_numbers(), self.revision, if_match, extra,
                                   request_id, touched=touched)
            if rev == self.revision:
                return rev
            self._adopt(new, ids, rev)
        self._announce(new, rev)
        return rev

    def _adopt(self, new: State, ids: Ids, rev: int) -> None:
        flush = conntrack.plan(self.state, new, self.ids.zones())
        if flush:
            in_use = set(self.ids.zones().values()) | set(ids.zones().values())
            self._flushes.append((flush, in_use))
        self.state, self.ids, self.revision = new, ids, rev
        self.effective = effective_rules(new)

    def _announce(self, new: State, rev: int) -> None:
        LOG.info("state revision %d: %d VMs, %d groups, %d policies", rev, len(new.vms),
                 len(new.groups), len(new.policies))
        for cb in list(self.listeners):
            cb()

    def refresh(self) -> bool:
        """Adopt what other writers committed (the replica is ahead); True if it was.

        A state in the database that this version cannot parse is logged and not
        adopted: the switches keep enforcing the last good one.
        """
        with self._lock:
            self.store.poll()
            # A replica that never received the database is empty, not a new state.
            if not self.store.synced():
                return False
            if self.store.revision() == self.revision:
                return False
            loaded = self.store.load()
            if loaded.revision == self.revision:
                return False
            # Usually another writer changed an object or two: those alone are applied
            # to the state held (validated as a whole parse would), the rest is shared.
            new = rebase(self.state, loaded.doc, self._docs)
            if new is None:
                try:
                    new = parse_state(loaded.doc)
                except ValidationError as e:
                    LOG.error("revision %d in the policy database is invalid, keeping "
                              "revision %d: %s", loaded.revision, self.revision, e)
                    return False
            new = self._locate(new)
            ids = Ids(self.ids.zones(), loaded.rules, sorted(self.ids.flushing()),
                      self.ids.with_zones, self.ids.zone_range)
            ids.sync(new, self._local)
            self._left_out(ids)
            self.zone_file.save(ids.zone_doc())
            self._adopt(new, ids, loaded.revision)
        self._announce(new, loaded.revision)
        return True

    def apply_document(self, doc: Any, if_match: int | None = None,
                       extra: dict[str, str] | None = None) -> int:
        """Validate and commit a whole state document."""
        return self.replace_state(parse_state(doc), if_match, extra)

    def apply_if_changed(self, doc: Any) -> int | None:
        """Make the state equal to ``doc`` (a state file); None when it already is.

        Compares with the running state, not with the last file read, so re-applying
        an unchanged file restores whatever drifted since.
        """
        new = parse_state(doc)
        with self._lock:
            if state_doc(new) == state_doc(self.state):
                return None
            return self.replace_state(new, extra={"source": "state-file"})

    # --- switches ----------------------------------------------------------------
    def switch(self, dpid: int) -> SwitchView:
        with self._lock:
            return self.switches.setdefault(dpid, SwitchView(dpid))

    def forget_switch(self, dpid: int) -> None:
        with self._lock:
            self.switches.pop(dpid, None)
            self._ports.pop(dpid, None)
            for key in [k for k in self._learned if k[0] == dpid]:
                del self._learned[key]
                self._learned_seq += 1

    def refresh_facts(self, dpid: int, ifaces: list[Iface]) -> SwitchFacts:
        """Classify a switch's ports against the current state."""
        with self._lock:
            sw = self.switch(dpid)
            ports = self._ports.setdefault(dpid, SwitchPorts())
            learned = self._learned
            facts = ports.classify(self.state, ifaces,
                                   lambda ofport: learned.get((dpid, ofport)),
                                   self._learned_seq)
            sw.ifaces = ifaces
            if facts is sw.facts:
                return facts   # nothing a port's classification reads has changed
            sw.facts = facts
            if self._here is not None:
                self._number_local()
            self._relocate()
            return sw.facts

    def _vm_ports(self) -> dict[str, set[tuple[str | None, int | None]]]:
        """VM -> {(bridge, VLAN tag)} of every local port it is seen on."""
        out: dict[str, set[tuple[str | None, int | None]]] = {}
        for sw in self.switches.values():
            by_port = {i.ofport: i for i in sw.ifaces}
            for p in sw.facts.ports:
                if p.kind == "vm" and p.vm:
                    iface = by_port.get(p.ofport)
                    out.setdefault(p.vm, set()).add(
                        ((iface.bridge if iface else None) or sw.bridge,
                         iface.tag if iface else None))
        return out

    def _locate(self, state: State) -> State:
        """The state with protection by portgroup resolved for where the VMs are."""
        if not state.settings.portgroups:
            return state
        return resolve_protection(state, self._vm_ports())

    def _relocate(self) -> None:
        """Ports moved in or out of a portgroup: adopt the protection that follows."""
        if not self.state.settings.portgroups:
            return
        new = self._locate(self.state)
        if all((v.protected, v.protected_by) == (new.vms[n].protected, new.vms[n].protected_by)
               for n, v in self.state.vms.items()):
            return
        ids = self.ids.copy()
        ids.sync(new, self._local)
        self._left_out(ids)
        self.zone_file.save(ids.zone_doc())
        self._adopt(new, ids, self.revision)
        LOG.info("protection by portgroup changed with the ports: %d protected VMs",
                 sum(v.protected for v in new.vms.values()))
        for cb in list(self.listeners):
            cb()

    def desired_flows(self, dpid: int, ifaces: list[Iface],
                      stream: Callable[[list[Flow]], None] | None = None,
                      holds: int | None = None, chunk: int = STREAM_CHUNK
                      ) -> tuple[list[Flow], int]:
        """(desired flows, revision they come from) for one switch and its interfaces.

        Ports are classified here, under the lock, against the state being compiled.
        The flows come from the switch's SwitchCompiler, which recomputes only what
        changed since its last call (a FlowList: it also says what changed), and hands
        ``stream`` new flows as it goes (``chunk`` at a time) if the switch ``holds``
        its last result.
        """
        with self._lock:
            facts = self.refresh_facts(dpid, ifaces)
            for gone in self.compilers.keys() - self.switches.keys():
                del self.compilers[gone]   # a switch that went away: its memo too
            compiler = self.compilers.setdefault(dpid, SwitchCompiler())
            flows = compiler.compile(self.state, facts, self.ids, self.effective,
                                     stream, holds, chunk)
            return flows, self.revision

    def learn_mac(self, dpid: int, ofport: int, mac: str) -> bool:
        """Remember a MAC seen on an unknown port; True if it identifies a VM."""
        with self._lock:
            self._learned[(dpid, ofport)] = mac.lower()
            self._learned_seq += 1
            return any(vm.mac == mac.lower() for vm in self.state.vms.values())

    def learned_mac(self, dpid: int, ofport: int) -> str | None:
        """The MAC last learned from punts on a port, if any."""
        with self._lock:
            return self._learned.get((dpid, ofport))

    def learn_new_mac(self, dpid: int, ofport: int, mac: str) -> bool | None:
        """learn_mac, or None (and nothing changes) if the port already has this MAC."""
        with self._lock:
            if self._learned.get((dpid, ofport)) == mac.lower():
                return None
            return self.learn_mac(dpid, ofport, mac)

    @property
    def learned(self) -> dict[tuple[int, int], str]:
        """A copy of every learned (dpid, ofport) -> MAC."""
        with self._lock:
            return dict(self._learned)

    def update_ifaces(self, dpid: int, ifaces: list[Iface]) -> bool:
        """Reclassify a switch's ports if its interfaces changed; True if they did."""
        with self._lock:
            if ifaces == self.switch(dpid).ifaces:
                return False
            self.refresh_facts(dpid, ifaces)
            return True

    def set_of_version(self, dpid: int, version: int) -> None:
        with self._lock:
            self.switch(dpid).of_version = version

    def set_bridge(self, dpid: int, name: str | None) -> None:
        """The switch's bridge name, when OVSDB knows it."""
        with self._lock:
            self.switch(dpid).bridge = name

    def set_port_problems(self, dpid: int, problems: dict[int, list[dict[str, Any]]]
                          ) -> None:
        """ofport -> problems the app found on a switch's ports (shown per port)."""
        with self._lock:
            if dpid in self.switches:
                self.switches[dpid].port_problems = problems

    def mark_applied(self, dpid: int, revision: int, flow_count: int) -> None:
        """Record what a switch now runs: the revision and how many flows."""
        with self._lock:
            sw = self.switch(dpid)
            sw.applied_revision = revision
            sw.flow_count = flow_count

    def applied(self, revision: int) -> tuple[bool, int]:
        """(every switch runs ``revision`` or a later one: True with none, how many
        switches). Cheap: copies nothing (a waiting request asks every few ms)."""
        with self._lock:
            return (all(sw.applied_revision is not None and sw.applied_revision >= revision
                        for sw in self.switches.values()), len(self.switches))

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (no arguments) after every committed state change."""
        self.listeners.append(callback)

    # --- readers -----------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """State, revision, ids, effective rules and switches from one moment."""
        with self._lock:
            switches = {dpid: SwitchInfo(dpid, sw.facts, sw.applied_revision, sw.flow_count,
                                         sw.of_version, sw.bridge, sw.external_ids(),
                                         MappingProxyType(dict(sw.port_problems)))
                        for dpid, sw in self.switches.items()}
            return Snapshot(self.state, self.revision, self.ids,
                            MappingProxyType(self.effective), MappingProxyType(switches))

    @contextmanager
    def editing(self) -> Iterator[Snapshot]:
        """Read-modify-write: no other write commits until the block ends.

        Read the snapshot yielded, commit with apply_document inside the block.
        """
        with self._lock:
            yield self.snapshot()

    def vm_locations(self) -> dict[str, list[dict[str, Any]]]:
        return self.snapshot().vm_locations()

    def switches_view(self) -> list[dict[str, Any]]:
        return self.snapshot().switches_view()
