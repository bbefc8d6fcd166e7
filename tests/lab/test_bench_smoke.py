"""A smoke run of `make bench` with tiny sizes: the benchmark works end to end.

No timing is asserted except the one ordering the experiment exists to show with a
margin no noise can erase: the slow path is far below the fast path.
"""

import json
import subprocess
import sys

from vgw_lab.netlab import ROOT


def test_bench_smoke(ovs, tmp_path):
    # The fleet section has its own smoke test (test_fleet_bench_smoke.py).
    p = subprocess.run([sys.executable, "-m", "vgw_lab.bench", "--smoke", "--skip", "fleet",
                        "--out", str(tmp_path)], capture_output=True, text=True,
                       timeout=900, cwd=str(ROOT))
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    r = json.loads((tmp_path / "smoke.json").read_text())
    assert r["puntrate"]["new_flows"]["handler"]["new_pps"] > 0
    e = r["experiment"]
    assert set(e["throughput_gbps"]) == {"A", "B", "B1", "S", "C"}
    # The three fast-path cases differ by their conntrack passes: 2, 1 and none. (The
    # datapath's counters are shared: a stray packet of another bridge can add a few
    # passes per million, so NORMAL's one pass is 1 within a margin, not exactly.)
    passes = {m: v["median"] for m, v in e["datapath_passes_per_packet"].items()}
    assert 0.99 < passes["A"] < 1.01, passes
    assert passes["S"] < 1.2 < passes["B1"] < 2.2 < passes["B"], passes
    assert e["ratios"]["C/B throughput"] < 0.5
    assert min(e["slow_path_packets_through_controller"]) > 1000
    sc = r["scale"]
    assert sc["sizes"][0]["flows"] > 0 and sc["change"]["changes"] == 3
    # Rule changes at every size; each write's REST answer next to its enforcement.
    assert [row["change"]["changes"] for row in sc["sizes"]] == [3, 3]
    assert sc["sizes"][-1]["change"] == sc["change"]
    for w in (*(row["change"] for row in sc["sizes"]), sc["vm_add"]):
        assert 0 < w["rest_p50_ms"] <= w["rest_p99_ms"] and 0 < w["p50_ms"] <= w["p99_ms"], w
    assert sc["mass_delete"]["seconds"] > 0 and sc["mass_delete"]["vms"] >= 1
    assert r["isolation"]["flooded_gbps"]["median"] > 0
    md = (tmp_path / "smoke.md").read_text()
    assert md.startswith("Measured") and "REST answer p50 / p99" in md
    png = (tmp_path / "smoke.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10000
