"""`python -m vgw_lab.bench.fleet --smoke` runs end to end and reports every number.

No timing is asserted except what the design promises whatever the machine: no
acknowledged write is lost when the leader is killed, and the outage stays under 10 s.
"""

import json
import subprocess
import sys

from vgw_lab.netlab import ROOT

LATENCY = {"p50_ms", "p99_ms", "max_ms", "samples"}


def test_fleet_bench_smoke(ovs):
    p = subprocess.run([sys.executable, "-m", "vgw_lab.bench.fleet", "--smoke"],
                       capture_output=True, text=True, timeout=300, cwd=str(ROOT))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    r = json.loads(p.stdout)
    assert r["smoke"] is True
    vis = r["visible"]["20"]
    assert LATENCY <= set(vis) and vis["clients"] == 20 and vis["samples"] == 20 * vis["writes"]
    assert 0 < vis["p50_ms"] <= vis["p99_ms"] <= vis["max_ms"]
    enf = r["enforced"]
    assert LATENCY <= set(enf) and enf["agents"] == 3 and enf["samples"] == 3 * enf["changes"]
    for k in ("apis_1", "apis_2"):
        t = r["throughput"][k]
        assert t["writes"] > 0 and t["writes_per_s"] > 0 and t["failed"] == 0, t
    lk = r["leader_kill"]
    assert lk["acked_lost"] == 0 and lk["revisions_unique"], lk
    assert 0 < lk["outage_s"] < 10, lk
    put = r["put_state"]
    assert put["vms"] == 1000 and 0 < put["seconds"] <= put["enforced_seconds"], put
