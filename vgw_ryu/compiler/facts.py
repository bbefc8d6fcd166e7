"""What the compiler knows about one switch besides the policy: its ports."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass


@dataclass(frozen=True)
class PortFacts:
    """What the app knows about one switch port."""
    ofport: int
    name: str
    kind: str                 # vm | uplink | unknown
    vm: str | None = None     # VM name for kind == vm
    mac: str | None = None    # MAC seen on / attached to the port


@dataclass(frozen=True)
class SwitchFacts:
    """The ports of one switch."""
    ports: tuple[PortFacts, ...] = ()

    def vm_ports(self) -> dict[str, PortFacts]:
        """VM name -> its port, for ports attached to a VM."""
        return {p.vm: p for p in self.ports if p.kind == "vm" and p.vm}


def is_uplink_name(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether a port name matches one of settings.uplinks' patterns."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)
