"""What the controller knows about one connected switch (kept by the engine). No Ryu."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from vgw_ryu.compiler import SwitchFacts
from vgw_ryu.runtime.ports import Iface


@dataclass
class SwitchView:
    """What the controller knows about one connected switch."""
    dpid: int
    ifaces: list[Iface] = field(default_factory=list)
    facts: SwitchFacts = field(default_factory=SwitchFacts)
    applied_revision: int | None = None
    flow_count: int = 0
    of_version: int = 0
    bridge: str | None = None
    port_problems: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    _eids: tuple | None = None     # (ifaces, their external_ids by ofport), read-only

    def external_ids(self) -> MappingProxyType:
        """ofport -> its interface's external_ids (read-only), made once per ifaces
        list: every write's snapshot has them, and a switch has thousands of ports."""
        if self._eids is None or self._eids[0] is not self.ifaces:
            self._eids = (self.ifaces, MappingProxyType(
                {i.ofport: MappingProxyType(dict(i.external_ids)) for i in self.ifaces}))
        return self._eids[1]
