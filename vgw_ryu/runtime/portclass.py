"""Port identity: what each switch port is (a declared VM, an uplink, unknown), and the
classification kept between syncs so a change does not read a thousand ports again.

A port named for a declared VM (``vm-id``/``iface-id``) or an uplink keeps its facts
while the port, the VM objects it names and the settings are the same objects (states
share the objects a write did not touch). When only VMs changed, the ports named for
them are classified again, and those classified by MAC or unknown (any VM's MAC can
claim them). No Ryu here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vgw_ryu.compiler import PortFacts, SwitchFacts, is_uplink_name
from vgw_ryu.policy.docs import replaced_names
from vgw_ryu.policy.model import State
from vgw_ryu.runtime.ports import Iface

TUNNEL_TYPES = {"patch", "vxlan", "geneve", "gre", "stt", "lisp", "erspan", "ip6gre",
                "ip6erspan", "gtpu", "bareudp"}
LOCAL_PORT = 0xFFFFFFFE  # OFPP_LOCAL


def classify_port(state: State, iface: Iface, learned_mac: str | None) -> PortFacts:
    """Decide what a port is: a VM (which), an uplink, or unknown.

    In order: an operator's ``vgw-role=uplink``; a declared VM named by ``vm-id`` or
    ``iface-id``; a tunnel or a name matching settings.uplinks; a declared VM's MAC
    (attached-mac, then the MAC learned from the port's punts); else unknown.
    """
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


class SwitchPorts:
    """One switch's port facts and what they were classified from."""

    def __init__(self) -> None:
        self.facts = SwitchFacts()
        self._read: tuple | None = None   # (ifaces, VMs, settings, learned-MAC count)
        # Kept classifications by id(iface): (iface, learned MAC, settings, the VM
        # objects its vm-id and iface-id name, facts).
        self._kept: dict[int, tuple] = {}
        self._ifaces: list[Iface] = []            # by position in facts.ports
        self._by_name: dict[str, list[int]] = {}  # VM name -> positions naming it
        self._reread: set[int] = set()            # positions read again on any VM change

    def classify(self, state: State, ifaces: list[Iface],
                 learned: Callable[[int], str | None], learned_seq: int) -> SwitchFacts:
        """The ports' facts under ``state``: ``learned`` gives the MAC learned on an
        ofport, ``learned_seq`` changes whenever any learned MAC does."""
        read = (ifaces, state.vms, state.settings, learned_seq)
        last = self._read
        if last is not None and last[0] is ifaces and last[2] is state.settings and \
                last[3] == learned_seq:
            if last[1] is not state.vms:
                self._again(state, learned, replaced_names(last[1], state.vms))
        else:
            self._all(state, ifaces, learned)
        self._read = read
        return self.facts

    def _all(self, state: State, ifaces: list[Iface],
             learned: Callable[[int], str | None]) -> None:
        memo, self._kept = self._kept, {}
        self._ifaces, self._by_name, self._reread = [], {}, set()
        ports = []
        for iface in ifaces:
            if iface.ofport in (LOCAL_PORT, 65534):
                continue
            i = len(ports)
            ports.append(self._one(state, iface, learned, memo))
            self._ifaces.append(iface)
            eid = iface.external_ids
            for name in {eid.get("vm-id"), eid.get("iface-id")} - {None, ""}:
                self._by_name.setdefault(name, []).append(i)
            if id(iface) not in self._kept:
                self._reread.add(i)
        self.facts = SwitchFacts(tuple(ports))

    def _again(self, state: State, learned: Callable[[int], str | None],
               names: set[str]) -> None:
        where = set(self._reread)
        for name in names:
            where.update(self._by_name.get(name, ()))
        if not where:
            return
        ports = list(self.facts.ports)
        for i in where:
            iface = self._ifaces[i]
            ports[i] = self._one(state, iface, learned, self._kept)
            if id(iface) in self._kept:
                self._reread.discard(i)
            else:
                self._reread.add(i)
        self.facts = SwitchFacts(tuple(ports))

    def _one(self, state: State, iface: Iface, learned: Callable[[int], str | None],
             memo: dict[int, tuple[Any, ...]]) -> PortFacts:
        mac = learned(iface.ofport)
        eid = iface.external_ids
        by_id, by_iface = eid.get("vm-id"), eid.get("iface-id")
        vm1 = state.vms.get(by_id) if by_id else None
        vm2 = state.vms.get(by_iface) if by_iface else None
        had = memo.get(id(iface))
        if had is not None and had[0] is iface and had[1] is mac and \
                had[2] is state.settings and had[3] is vm1 and had[4] is vm2:
            facts = had[5]
        else:
            facts = classify_port(state, iface, mac)
        if facts.kind == "uplink" or (facts.kind == "vm" and facts.vm in (by_id, by_iface)):
            self._kept[id(iface)] = (iface, mac, state.settings, vm1, vm2, facts)
        else:
            self._kept.pop(id(iface), None)
        return facts
