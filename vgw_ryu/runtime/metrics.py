"""Prometheus metrics for GET /metrics, with prometheus_client.

Two kinds: event metrics the controller updates as things happen (syncs, flow mods,
REST requests, punts), and state read at scrape time by ``Collector`` from a source
the Ryu layer provides (rule counters, meters, VM connection tables, switches). Label
sets are bounded: rules, VMs, switches, purposes; never connections. No Ryu here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
disable_created_metrics()   # *_created series add nothing an operator graphs


@dataclass
class Scrape:
    """What the controller knows at scrape time (filled by the Ryu layer)."""
    revision: int = 0
    switches: list[dict[str, Any]] = field(default_factory=list)   # switches_view()
    stats: dict[str, Any] = field(default_factory=dict)             # the /v1/stats document
    vm_connections: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    packet_ins: int = 0


class Collector:
    """Reads a ``Scrape`` when Prometheus asks and turns it into metric families."""

    def __init__(self, source: Callable[[], Scrape]):
        self.source = source

    def describe(self) -> list[Metric]:
        return []   # families are built at scrape time; nothing to pre-register

    def collect(self) -> Iterator[Metric]:
        s = self.source()
        yield _gauge("vgw_state_revision", "revision of the desired state", s.revision)
        yield _gauge("vgw_switches_connected", "switches connected to this controller",
                     len(s.switches))
        flows = GaugeMetricFamily("vgw_switch_flows", "flows installed per switch",
                                  labels=["switch"])
        applied = GaugeMetricFamily("vgw_switch_applied_revision",
                                    "state revision last programmed per switch",
                                    labels=["switch"])
        for sw in s.switches:
            flows.add_metric([sw["dpid"]], sw.get("flows", 0))
            applied.add_metric([sw["dpid"]], sw.get("applied_revision") or 0)
        yield flows
        yield applied
        yield from _rule_families(s.stats)
        punts = CounterMetricFamily("vgw_punts_suppressed",
                                    "punts dropped by their rate-limiting meter",
                                    labels=["purpose"])
        for purpose, n in sorted(s.stats.get("punts_suppressed", {}).items()):
            punts.add_metric([purpose], n)
        yield punts
        yield CounterMetricFamily("vgw_packet_ins", "packet-ins received", value=s.packet_ins)
        live = GaugeMetricFamily("vgw_vm_connections", "live entries in a VM's connection "
                                 "table", labels=["vm"])
        cap = GaugeMetricFamily("vgw_vm_connection_limit", "a VM's connection cap "
                                "(absent: none)", labels=["vm"])
        for vm, (limit, count) in sorted(s.vm_connections.items()):
            if count is not None:
                live.add_metric([vm], count)
            if limit:
                cap.add_metric([vm], limit)
        yield live
        yield cap


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _rule_families(stats: dict[str, Any]) -> Iterator[Metric]:
    kinds = (("sessions", "connection decisions (new connections judged)"),
             ("packets", "packets judged (every original-direction packet)"),
             ("bytes", "bytes judged"))
    fams = {k: CounterMetricFamily(f"vgw_rule_{k}", f"per rule: {doc}",
                                   labels=["policy", "rule"]) for k, doc in kinds}
    for policy, pol in sorted(stats.get("policies", {}).items()):
        for rule, c in sorted(pol.get("rules", {}).items()):
            for k in fams:
                fams[k].add_metric([policy, rule], c.get(k, 0))
    for direction, c in sorted(stats.get("defaults", {}).items()):
        for k in fams:
            fams[k].add_metric(["", f"default-{direction}"], c.get(k, 0))
    yield from fams.values()


class Metrics:
    """The registry of one controller: event metrics plus the scrape-time collector."""

    def __init__(self, source: Callable[[], Scrape] | None = None):
        self.registry = CollectorRegistry()
        self.sync_seconds = Histogram(
            "vgw_sync_seconds", "time to bring one switch to the desired flows",
            registry=self.registry, buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self.flow_mods = Counter("vgw_flow_mods", "flow mods sent to switches",
                                 ["kind"], registry=self.registry)
        self.requests = Counter("vgw_rest_requests", "REST requests answered",
                                ["method", "status"], registry=self.registry)
        self.conntrack_flushes = Counter("vgw_conntrack_flushes",
                                         "connection-table flushes sent", ["reason"],
                                         registry=self.registry)
        if source is not None:
            self.registry.register(Collector(source))

    def render(self) -> bytes:
        """The text exposition format of everything registered."""
        return generate_latest(self.registry)
