"""The Grafana dashboard in contrib/ queries only metrics that GET /metrics serves."""

from __future__ import annotations

import json
import re

from prometheus_client.parser import text_string_to_metric_families

from vgw_lab.netlab import ROOT
from vgw_ryu.runtime.metrics import Metrics, Scrape

FUNCS = {"sum", "by", "rate", "topk", "histogram_quantile", "increase", "on", "group_right",
         "le", "policy", "rule", "purpose", "kind", "status", "reason", "switch", "vm"}


def _served() -> set[str]:
    m = Metrics(lambda: Scrape(switches=[{"dpid": "1", "flows": 1}],
                               stats={"policies": {"p": {"rules": {"r": {}}}},
                                      "punts_suppressed": {"log": 0}},
                               vm_connections={"a": (5, 1)}))
    m.sync_seconds.observe(0.1)
    m.flow_mods.labels("add").inc()
    m.requests.labels("GET", "200").inc()
    m.conntrack_flushes.labels("vm deleted").inc()
    return {s.name for f in text_string_to_metric_families(m.render().decode())
            for s in f.samples}


def test_every_queried_metric_is_served():
    dash = json.loads((ROOT / "contrib" / "grafana-vgw.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 8
    queried = {w for e in exprs for w in re.findall(r"[a-z_][a-z0-9_]*", e)
               if w.startswith("vgw_")}
    assert queried, exprs
    missing = queried - _served()
    assert not missing, f"the dashboard queries metrics /metrics does not serve: {missing}"
    assert {w for e in exprs for w in re.findall(r"\b([a-z_]+)\(", e)} <= FUNCS
