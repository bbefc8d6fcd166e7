"""The API's backend in an API server: the engine over the database, and the agents'
reports (Chassis rows) for everything about switches. No Ryu here."""

from __future__ import annotations

import ipaddress
from typing import Any

from vgw_ryu.api import applied
from vgw_ryu.runtime import chassis
from vgw_ryu.runtime.engine import Engine


class DbBackend:
    """Answers from the policy database only; switch-side reads say where to ask."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def switch_count(self) -> int:
        """Bridges reported by agents that are not stale."""
        rows = chassis.view(self.engine.store.chassis(), self.engine.snapshot().revision)
        return sum(len(r["bridges"]) for r in rows if not r["stale"])

    def wait_applied(self, revision: int, timeout: float) -> applied.Waited:
        """Wait until every live agent reports ``revision`` or later (the rows come in
        on the store's own thread; this request's thread only looks)."""
        live: list[int] = [0]

        def done() -> bool:
            rows = [r for r in chassis.view(self.engine.store.chassis(), revision)
                    if not r["stale"]]
            live[0] = len(rows)
            return all(r["applied_revision"] >= revision for r in rows)
        return applied.Waited(applied.wait_until(done, timeout), live[0], "agents")

    def stats(self) -> dict[str, Any]:
        snap = self.engine.snapshot()
        return {"policies": {}, "defaults": {}, "packet_ins": {},
                "switches": self.switch_count(), "revision": snap.revision}

    def logs(self, vm: str | None = None, verdict: str | None = None,
             since: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        return []   # firewall logs stay on each hypervisor (file, syslog, its agent)

    def trace_datapath(self, vm: str, direction: str,
                       peer: ipaddress.IPv4Address | ipaddress.IPv6Address, proto: str,
                       port: int | None) -> dict[str, Any] | None:
        return None  # no datapath here: the model's verdict only

    def problems(self) -> list[dict[str, Any]]:
        snap = self.engine.snapshot()
        out = []
        for r in chassis.view(self.engine.store.chassis(), snap.revision):
            if r["stale"]:
                out.append({"code": "agent_stale", "agent": r["name"],
                            "message": f"agent {r['name']} has not reported for "
                                       f"{r['heartbeat_age']:.0f} s (its switches keep "
                                       f"revision {r['applied_revision']})"})
        return out
