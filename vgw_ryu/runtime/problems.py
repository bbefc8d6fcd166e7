"""Operator-visible problems (GET /v1/health): what they look like, and the watch that
finds ports whose traffic conntrack marks invalid. No Ryu here.

Every protected VM has its own ``+inv`` drop flow in both state tables (cookie kind
vm, owner its zone, priority STATE_INVALID_VM); the app reads their packet counts
periodically and feeds them to ``InvalidWatch`` (the first reading of each is only a
baseline). A port is reported once
``THRESHOLD`` packets were dropped as invalid without a ``QUIET`` pause, and no longer
once it has been quiet for ``QUIET`` seconds. The usual cause on a
``datapath_type=netdev`` bridge is TX checksum offload on a veth or tap: the
userspace conntrack sees TCP with a partial checksum and marks it invalid.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vgw_ryu.runtime.snapshot import Snapshot

THRESHOLD = 3      # packets: a single late packet after a connection ended is normal
QUIET = 60.0       # seconds without new invalid drops before a port is fine again
CT_INVALID = "ct_invalid_drops"
LIKELY_CAUSE = ("on a veth or tap attached to a datapath_type=netdev bridge this is "
                "usually TX checksum offload on the VM side: run `ethtool -K <the VM's "
                "interface> tx off` (inside the VM or namespace)")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def problem(code: str, message: str, since: float | str | None = None,
            **extra: Any) -> dict[str, Any]:
    """One problem: {"code", "message", optional "switch", "port", "since", ...}."""
    out: dict[str, Any] = {"code": code, "message": message}
    out.update({k: v for k, v in extra.items() if v is not None})
    if since is not None:
        out["since"] = since if isinstance(since, str) else iso(since)
    return out


@dataclass(frozen=True)
class PortRef:
    vm: str
    ofport: int
    name: str


def zone_ports(snap: Snapshot, dpid: int) -> dict[int, PortRef]:
    """zone -> the protected VM port holding it on one switch."""
    sw = snap.switch(dpid)
    if sw is None:
        return {}
    out = {}
    for p in sw.ports("vm"):
        vm = snap.state.vms.get(p.vm or "")
        zone = snap.ids.zone(p.vm) if vm is not None and vm.protected else None
        if zone is not None:
            out[zone] = PortRef(p.vm, p.ofport, p.name)
    return out


def carried_counts(last: tuple[int, dict[int, int]] | None, packets: int,
                   zones: Mapping[int, Any]) -> dict[int, int] | None:
    """The per-zone counts without reading every VM's counter again, or None (read them).

    ``last``: (the switch's summed counters, the counts by zone) at the last read;
    ``packets``: the sum now. An unchanged sum means nothing was dropped since and no
    counter was lost (flows removed or replaced with drops counted lower it), so the
    zones read before keep their counts and a VM plugged since starts at 0: a port
    plugged at 1,000 VMs no longer costs a read of 1,000 counters.
    """
    if last is None or last[0] != packets:
        return None
    return {z: last[1].get(z, 0) for z in zones}


@dataclass
class _Track:
    count: int = 0            # last counter value read
    pending: int = 0          # invalid drops since the port was last quiet
    first: float = 0.0        # when ``pending`` started growing
    last_increase: float = 0.0
    reported: dict[str, Any] | None = None


class InvalidWatch:
    """Per (switch, zone) conntrack-invalid drop counters -> problems."""

    def __init__(self, threshold: int = THRESHOLD, quiet: float = QUIET):
        self.threshold = threshold
        self.quiet = quiet
        self.tracks: dict[tuple[int, int], _Track] = {}

    def update(self, dpid: int, counts: Mapping[int, int], ports: Mapping[int, PortRef],
               now: float | None = None) -> list[dict[str, Any]]:
        """Feed one switch's zone -> packets; returns the problems raised just now."""
        now = time.time() if now is None else now
        raised = []
        for key in [k for k in self.tracks if k[0] == dpid and k[1] not in counts]:
            del self.tracks[key]   # the VM's flow is gone (VM moved or removed)
        for zone, count in counts.items():
            t = self.tracks.get((dpid, zone))
            if t is None:
                # The first reading is a baseline: after a controller restart the flows
                # keep their old counts, which say nothing about now.
                self.tracks[(dpid, zone)] = _Track(count=count)
                continue
            delta = count - t.count if count >= t.count else count   # counter reset
            t.count = count
            if delta > 0:
                if not t.pending or now - t.last_increase >= self.quiet:
                    t.pending, t.first = 0, now
                t.pending += delta
                t.last_increase = now
            elif t.pending and now - t.last_increase >= self.quiet:
                t.pending, t.reported = 0, None
            ref = ports.get(zone)
            if t.pending >= self.threshold and ref is not None:
                was = t.reported
                t.reported = self._problem(dpid, ref, t)
                if was is None:
                    raised.append(t.reported)
        return raised

    def _problem(self, dpid: int, ref: PortRef, t: _Track) -> dict[str, Any]:
        return problem(
            CT_INVALID,
            f"port {ref.name} (vm {ref.vm}) on switch {dpid:016x}: {t.pending} packets "
            f"dropped as conntrack-invalid since {iso(t.first)}; {LIKELY_CAUSE}",
            since=t.first, switch=f"{dpid:016x}", port=ref.name, ofport=ref.ofport,
            vm=ref.vm, packets=t.pending)

    def forget(self, dpid: int) -> None:
        for key in [k for k in self.tracks if k[0] == dpid]:
            del self.tracks[key]

    def problems(self) -> list[dict[str, Any]]:
        return [t.reported for _, t in sorted(self.tracks.items()) if t.reported]

    def port_problems(self, dpid: int) -> dict[int, list[dict[str, Any]]]:
        """ofport -> problems on one switch (for GET /v1/switches)."""
        out: dict[int, list[dict[str, Any]]] = {}
        for (d, _), t in self.tracks.items():
            if d == dpid and t.reported:
                out.setdefault(t.reported["ofport"], []).append(t.reported)
        return out
