"""``python -m vgw_lab.bench.puntrate --smoke`` runs and reports both paths' rates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_puntrate_smoke_reports_both_rates_and_their_ratio():
    p = subprocess.run([sys.executable, "-m", "vgw_lab.bench.puntrate", "--smoke",
                        "--packets", "60"], capture_output=True, text=True, timeout=300,
                       cwd=str(ROOT))
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout)
    assert r["baseline_pps"] > 0 and r["new_pps"] > 0
    assert r["ratio"] == r["new_pps"] / r["baseline_pps"]
    assert set(r["scenarios"]) == {"flood", "new_flows"}
    for scenario in r["scenarios"].values():
        for timing in ("handler", "with_openflow_parse"):
            t = scenario[timing]
            assert {"baseline_pps", "new_pps", "ratio", "baseline_pps_cpu", "new_pps_cpu",
                    "ratio_cpu"} <= set(t)
            assert t["baseline_pps"] > 0 and t["new_pps"] > 0
    # Every new connection is a record on both paths; a flood folds into a few (one
    # more per second a run lasts).
    assert r["scenarios"]["new_flows"]["records_written"] == {"baseline": 60, "new": 60}
    assert all(0 < n <= 5 for n in r["scenarios"]["flood"]["records_written"].values())
