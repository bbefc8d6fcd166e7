"""The REST API's backend (vgw_ryu.api.Backend) on top of the connected switches.

Stats and trace ask the switches (flow and meter statistics, ofproto/trace on the
local bridge); the arithmetic and the interpretation are in vgw_ryu.runtime. It also
answers what health reports (``problems``) and whether REST may write the state
(``read_only_reason``: not while ``--vgw-state`` makes a file the source of truth).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vgw_ryu.api import applied
from vgw_ryu.policy import expectations
from vgw_ryu.policy.model import State
from vgw_ryu.policy.ruleset import connection_limit, effective_rules
from vgw_ryu.runtime import connections as rconns
from vgw_ryu.runtime import impact as rimpact
from vgw_ryu.runtime import stats as rstats
from vgw_ryu.runtime import trace as rtrace
from vgw_ryu.runtime.assertaudit import AssertionWatch
from vgw_ryu.runtime.ctlimits import UnixctlError, ZoneLimits, call
from vgw_ryu.runtime.engine import Engine
from vgw_ryu.runtime.fwlog import FirewallLog
from vgw_ryu.runtime.metrics import Metrics, Scrape
from vgw_ryu.runtime.ports import PortDirectory
from vgw_ryu.runtime.problems import InvalidWatch
from vgw_ryu.runtime.statefile import StateFileWatcher

if TYPE_CHECKING:   # importing Ryu here would monkey-patch whoever imports the backend
    from vgw_ryu.ryuapp.switch_io import SwitchIO


class AppBackend:
    """Switch count, stats, logs, datapath traces and problems for the Api."""

    def __init__(self, engine: Engine, fwlog: FirewallLog, io: SwitchIO,
                 dps: dict[int, Any], ports: Callable[[], PortDirectory | None],
                 packet_ins: Callable[[], int], state_file: StateFileWatcher | None = None,
                 invalid: InvalidWatch | None = None):
        self.engine = engine
        self.fwlog = fwlog
        self.io = io
        self.dps = dps
        self.ports = ports
        self.packet_ins = packet_ins
        self.state_file = state_file
        self.invalid = invalid if invalid is not None else InvalidWatch()
        self.metrics: Metrics | None = None   # set by the app once it has built them
        self.assertions = AssertionWatch()     # the audit's datapath check

    def revision(self) -> int:
        return self.engine.snapshot().revision

    def switch_count(self) -> int:
        return len(self.dps)

    def wait_applied(self, revision: int, timeout: float) -> applied.Waited:
        """Wait until every switch here runs ``revision`` (see vgw_ryu.api.applied)."""
        seen = [0]

        def done() -> bool:
            ok, seen[0] = self.engine.applied(revision)
            return ok
        return applied.Waited(applied.wait_until(done, timeout), seen[0], "switches")

    def problems(self) -> list[dict[str, Any]]:
        """Current operator-visible problems: {"code", "message", optional "switch",
        "port", "since", ...}; codes ``state_file_rejected`` and ``ct_invalid_drops``."""
        out: list[dict[str, Any]] = []
        if self.state_file is not None:
            out += self.state_file.problems()
        out += self.invalid.problems()
        snap = self.engine.snapshot()
        for v in expectations.check(snap.state, snap.effective):
            out.append({"code": "assertion_violated", "source": "model",
                        "expectation": v["expectation"],
                        "message": f"expected {v['verdict']} from {v['pair'][0]} to "
                                   f"{v['pair'][1]}, the state gives {v['got']} "
                                   f"({v['decided_by']})"})
        out += self.assertions.problems()
        return out

    def impact(self, candidate: State) -> dict[str, Any] | None:
        """What ``candidate`` would do to the live connections of the VMs on this host's
        switches, and to the denials in the recent log; None if conntrack cannot be read."""
        snap = self.engine.snapshot()
        seen = snap.vm_locations()
        zone_vm = {snap.ids.zone(n): n for n, v in snap.state.vms.items()
                   if v.protected and seen.get(n)}
        try:
            entries = rconns.parse_dump(call("dpctl/dump-conntrack")) if zone_vm else []
        except UnixctlError:
            return None
        tables: dict[str, list] = {}
        for e in entries:
            if e.zone in zone_vm:
                tables.setdefault(zone_vm[e.zone], []).append(e)
        new_eff = effective_rules(candidate)
        out = rimpact.cuts(snap.state, candidate, snap.effective, new_eff, tables)
        out.update(rimpact.newly_allowed(snap.state, candidate, new_eff,
                                         self.fwlog.query(limit=10000)))
        return out

    def read_only_reason(self) -> str | None:
        """Why REST writes are refused now (it names the state file), else None."""
        return self.state_file.read_only_reason() if self.state_file is not None else None

    def logs(self, vm=None, verdict=None, since=None, limit=100) -> list[dict]:
        return self.fwlog.query(vm, verdict, since, limit)

    def stats(self) -> dict[str, Any]:
        """Per rule: connection decisions counted by the rule's flows on every switch."""
        counters = rstats.Counters()
        for dp in list(self.dps.values()):
            counters.add_flows(self.io.rule_flow_stats(dp))
            counters.add_meters(self.io.meter_drops(dp))
        return rstats.document(self.engine.snapshot(), counters, self.packet_ins(),
                               len(self.dps))

    def connection_usage(self, zones: list[int]) -> dict[int, tuple[int, int]]:
        """zone -> (limit, live entries), read from the local datapath."""
        try:
            return ZoneLimits().usage(zones)
        except UnixctlError:
            return {}

    def connections(self, vm: str, peer=None, port: int | None = None,
                    rule: str | None = None, limit: int = 1000) -> dict[str, Any] | None:
        """A protected VM's connection table read from its zone on the local datapath;
        None when it cannot be read here (VM not on a switch here, or unprotected)."""
        snap = self.engine.snapshot()
        vm_obj = snap.state.vms.get(vm)
        if vm_obj is None or not vm_obj.protected or not snap.vm_locations().get(vm):
            return None
        try:
            text = call("dpctl/dump-conntrack", f"zone={snap.ids.zone(vm)}")
        except UnixctlError:
            return None
        return rconns.view(rconns.parse_dump(text), set(vm_obj.ips), snap.ids, peer=peer,
                           port=port, rule=rule, limit=limit)

    def scrape(self) -> Scrape:
        """What /metrics reports at scrape time."""
        snap = self.engine.snapshot()
        seen = snap.vm_locations()
        zones = {name: snap.ids.zone(name) for name, v in snap.state.vms.items()
                 if v.protected and seen.get(name)}
        usage = self.connection_usage(sorted(zones.values())) if zones else {}
        conns = {name: (connection_limit(snap.state, name) or None,
                        usage[z][1] if z in usage else None) for name, z in zones.items()}
        try:
            stats = self.stats()
        except Exception:   # a switch that goes away mid-scrape: report the rest
            stats = {}
        return Scrape(snap.revision, snap.switches_view(), stats, conns, self.packet_ins())

    def metrics_text(self) -> bytes:
        """The Prometheus exposition (GET /metrics)."""
        return self.metrics.render() if self.metrics is not None else b""

    def count_request(self, method: str, status: int) -> None:
        if self.metrics is not None:
            self.metrics.requests.labels(method, str(status)).inc()

    def trace_datapath(self, vm: str, direction: str, peer, proto: str,
                       port: int | None) -> dict[str, Any] | None:
        """ofproto/trace of the same connection on the VM's switch, when it is local."""
        ports = self.ports()
        if ports is None:
            return None
        return rtrace.trace_datapath(self.engine.snapshot(),
                                     lambda dpid: ports.bridge_names().get(dpid),
                                     vm, direction, peer, proto, port)
