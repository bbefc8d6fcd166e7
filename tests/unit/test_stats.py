"""Stats: flow and meter counters as the GET /v1/stats document; meter drop watching."""

from __future__ import annotations

import pytest

from vgw_ryu.pipeline import tables as pl
from vgw_ryu.pipeline.flows import owner_bits
from vgw_ryu.runtime import stats

DOC = {
    "vms": {"web": {"mac": "02:00:00:00:00:01", "ips": ["10.0.0.1"]}},
    "policies": {"p": {"applied_to": ["vm:web"], "rules": [
        {"id": "http", "direction": "ingress", "action": "allow", "protocol": "tcp",
         "ports": "80"},
        {"id": "dns", "direction": "egress", "action": "allow", "protocol": "udp",
         "ports": "53"}]}},
}


def cookie(kind: int, owner: int, digest: int = 0x1234) -> int:
    return owner_bits(kind, owner) | digest


@pytest.fixture
def engine(make_engine):
    return make_engine(DOC)


def test_rule_counters_add_up_over_flows_and_switches(engine):
    http = engine.snapshot().ids.rule("p", "http")
    c = stats.Counters()
    # The +new flow counts connection decisions; the other one established packets.
    c.add_flows([(cookie(pl.KIND_RULE, http, 1), 0, 3, 300, True),
                 (cookie(pl.KIND_RULE, http, 2), 0, 20, 1000, False)])
    c.add_flows([(cookie(pl.KIND_RULE, http, 1), 0, 1, 50, True)])   # a second switch
    doc = stats.document(engine.snapshot(), c, packet_ins=7, switches=2)
    assert doc["policies"]["p"]["rules"]["http"] == {"sessions": 4, "packets": 24,
                                                      "bytes": 1350}
    assert doc["policies"]["p"]["rules"]["dns"] == {"sessions": 0, "packets": 0, "bytes": 0}
    assert (doc["packet_ins"], doc["switches"], doc["revision"]) == (7, 2, 1)
    assert doc["note"] == stats.NOTE


def test_defaults_are_split_by_the_direction_bit(engine):
    c = stats.Counters()
    c.add_flows([(cookie(pl.KIND_DEFAULT, 0), pl.VERDICT_DENY, 4, 400, True),
                 (cookie(pl.KIND_DEFAULT, 0), pl.VERDICT_ALLOW | pl.DIR_BIT, 1, 60, True),
                 (cookie(pl.KIND_DEFAULT, 1), pl.VERDICT_DENY | pl.DIR_BIT | pl.LOG_BIT, 2, 80,
                  False)])
    doc = stats.document(engine.snapshot(), c, 0, 1)
    assert doc["defaults"] == {"egress": {"sessions": 4, "packets": 4, "bytes": 400},
                               "ingress": {"sessions": 1, "packets": 3, "bytes": 140}}


def test_other_owners_and_foreign_cookies_are_ignored(engine):
    c = stats.Counters()
    c.add_flows([(cookie(pl.KIND_INFRA, 0), 0, 9, 9, True),
                 (cookie(pl.KIND_VM, 1), 0, 9, 9, True), (0x1, 0, 9, 9, True),
                 (0, pl.DIR_BIT, 9, 9, True)])
    assert c.per_rule == {} and c.defaults == {"egress": [0, 0, 0], "ingress": [0, 0, 0]}


def test_meter_drops_by_punt_purpose(engine):
    c = stats.Counters()
    c.add_meters([(pl.METER_LOG, 5), (pl.METER_REJECT, 1), (pl.METER_UNKNOWN, 0),
                  (99, 1000)])
    c.add_meters([(pl.METER_LOG, 2), (pl.log_meter(5), 10)])   # a VM's own log meter
    doc = stats.document(engine.snapshot(), c, 0, 2)
    assert doc["punts_suppressed"] == {"log": 17, "reject": 1, "unknown": 0}


def test_empty_document_shape(engine):
    doc = stats.document(engine.snapshot(), stats.Counters(), 0, 0)
    assert list(doc) == ["policies", "defaults", "punts_suppressed", "note", "packet_ins",
                         "switches", "revision"]
    assert doc["punts_suppressed"] == {"log": 0, "reject": 0, "unknown": 0}


def test_meter_watch_reports_growth_per_switch_and_meter():
    w = stats.MeterWatch()
    assert w.update(1, [(pl.METER_LOG, 0), (pl.METER_REJECT, 3)]) == [("reject", 3)]
    assert w.update(1, [(pl.METER_LOG, 0), (pl.METER_REJECT, 3)]) == []
    assert w.update(1, [(pl.METER_REJECT, 5), (77, 100)]) == [("reject", 2)]
    assert w.update(2, [(pl.METER_REJECT, 1)]) == [("reject", 1)]   # its own baseline
    # A counter that went down (meter re-created) is the new baseline, not reported.
    assert w.update(1, [(pl.METER_REJECT, 1)]) == []
    assert w.update(1, [(pl.METER_REJECT, 2)]) == [("reject", 1)]
    assert w.update(1, [(pl.log_meter(5), 4)]) == [("log (zone 5)", 4)]


def test_one_meter_name_map():
    assert stats.METER_NAMES == {pl.METER_LOG: "log", pl.METER_REJECT: "reject",
                                 pl.METER_UNKNOWN: "unknown"}
