"""What an agent reports about itself in the policy database (its ``Chassis`` row), and
how the API reads those reports back (``GET /v1/switches``).

An agent writes its row after every change it applied and at least every
``HEARTBEAT`` seconds; a row whose heartbeat is older than ``STALE`` seconds belongs to
an agent that stopped, lost the database or its host. No Ryu here.
"""

from __future__ import annotations

import time
from typing import Any

from vgw_ryu.runtime.snapshot import Snapshot

HEARTBEAT = 5.0     # seconds between reports when nothing changes
STALE = 3 * HEARTBEAT
VERSION = "0.2.0"


def now_ms() -> int:
    return int(time.time() * 1000)


def report(snap: Snapshot, hostname: str, started_ms: int) -> dict[str, Any]:
    """The Chassis row's columns for this agent (the heartbeat set by the caller).

    ``applied_revision`` is the oldest revision any local switch runs (-1 while a
    switch has none yet; the engine's revision when no switch is connected).
    """
    applied = [sw.applied_revision for sw in snap.switches.values()]
    if not applied:
        revision = snap.revision
    elif any(a is None for a in applied):
        revision = -1
    else:
        revision = min(a for a in applied if a is not None)
    bridges, vm_ports, unknown = {}, {}, set()
    for dpid, sw in sorted(snap.switches.items()):
        name = sw.bridge or f"{dpid:016x}"
        bridges[name] = f"{dpid:016x}"
        for p in sw.facts.ports:
            if p.kind == "vm" and p.vm:
                vm_ports[p.vm] = f"{name}:{p.name}"
            elif p.kind == "unknown":
                unknown.add(f"{name}:{p.name}")
    return {"hostname": hostname, "applied_revision": revision, "bridges": bridges,
            "vm_ports": vm_ports, "unknown_ports": unknown, "started": started_ms,
            "version": VERSION}


def view(rows: list[dict[str, Any]], revision: int, at_ms: int | None = None
         ) -> list[dict[str, Any]]:
    """The agents as GET /v1/switches shows them: stale and behind flagged."""
    at_ms = now_ms() if at_ms is None else at_ms
    out = []
    for r in rows:
        age = max(0.0, (at_ms - r["heartbeat"]) / 1000)
        out.append({"name": r["name"], "hostname": r["hostname"],
                    "applied_revision": r["applied_revision"],
                    "in_sync": r["applied_revision"] == revision,
                    "bridges": r["bridges"], "vm_ports": r["vm_ports"],
                    "unknown_ports": r["unknown_ports"],
                    "heartbeat_age": round(age, 1), "stale": age > STALE,
                    "version": r["version"]})
    return out
