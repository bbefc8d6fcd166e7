"""Prometheus metrics: the exposition parses with prometheus_client and carries the
families the README lists, with values from the scrape source and the events."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from vgw_ryu.runtime.metrics import Metrics, Scrape

STATS = {"policies": {"web-in": {"rules": {"http": {"sessions": 5, "packets": 512,
                                                    "bytes": 40960}}}},
         "defaults": {"ingress": {"sessions": 3, "packets": 3, "bytes": 180},
                      "egress": {"sessions": 0, "packets": 0, "bytes": 0}},
         "punts_suppressed": {"log": 7, "reject": 0, "unknown": 1}}


def _scrape() -> Scrape:
    return Scrape(revision=4, switches=[{"dpid": "00000000000000ab", "flows": 90,
                                         "applied_revision": 4}],
                  stats=STATS, vm_connections={"web1": (50, 12), "db1": (None, 3)},
                  packet_ins=99)


def _samples(text: bytes) -> dict[tuple, float]:
    out = {}
    for fam in text_string_to_metric_families(text.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_scrape_families_and_values():
    m = Metrics(_scrape)
    s = _samples(m.render())
    assert s[("vgw_state_revision", ())] == 4
    assert s[("vgw_switches_connected", ())] == 1
    assert s[("vgw_switch_flows", (("switch", "00000000000000ab"),))] == 90
    rule = (("policy", "web-in"), ("rule", "http"))
    assert s[("vgw_rule_sessions_total", rule)] == 5
    assert s[("vgw_rule_packets_total", rule)] == 512
    assert s[("vgw_rule_sessions_total", (("policy", ""), ("rule", "default-ingress")))] == 3
    assert s[("vgw_punts_suppressed_total", (("purpose", "log"),))] == 7
    assert s[("vgw_vm_connections", (("vm", "web1"),))] == 12
    assert s[("vgw_vm_connection_limit", (("vm", "web1"),))] == 50
    assert ("vgw_vm_connection_limit", (("vm", "db1"),)) not in s
    assert s[("vgw_packet_ins_total", ())] == 99


def test_event_metrics_move():
    m = Metrics(_scrape)
    m.sync_seconds.observe(0.02)
    m.flow_mods.labels("add").inc(10)
    m.requests.labels("GET", "200").inc()
    m.conntrack_flushes.labels("vm deleted").inc()
    s = _samples(m.render())
    assert s[("vgw_sync_seconds_count", ())] == 1
    assert s[("vgw_sync_seconds_bucket", (("le", "0.025"),))] == 1
    assert s[("vgw_flow_mods_total", (("kind", "add"),))] == 10
    assert s[("vgw_rest_requests_total", (("method", "GET"), ("status", "200")))] == 1
    assert s[("vgw_conntrack_flushes_total", (("reason", "vm deleted"),))] == 1


def test_without_a_source_only_event_metrics():
    names = {f.name for f in text_string_to_metric_families(Metrics().render().decode())}
    assert "vgw_sync_seconds" in names and "vgw_state_revision" not in names
