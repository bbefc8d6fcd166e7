"""The command line of ``python -m vgw_lab.bench`` (``make bench``, ``./run.sh bench``)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import vgw_lab.bench
from vgw_lab import netlab
from vgw_lab.bench.bed import Bed, run_experiment, run_isolation
from vgw_lab.bench.common import RESULTS, ROOT, say
from vgw_lab.bench.fleet import run_fleet
from vgw_lab.bench.puntrate import measure as punt_measure
from vgw_lab.bench.report import markdown, plot
from vgw_lab.bench.scale import run_compile, run_scale


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; write bench/results/latest.{json,md,png}."""
    ap = argparse.ArgumentParser(prog="vgw_lab.bench",
                                 description=vgw_lab.bench.__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5, help="iperf3 duration")
    ap.add_argument("--conn-seconds", type=float, default=3)
    ap.add_argument("--scale", default="100,1000,5000")
    ap.add_argument("--changes", type=int, default=100,
                    help="writes timed per kind at 1,000 VMs (at most 20 at other sizes; "
                         "100, so p99 is not just the slowest one)")
    ap.add_argument("--per-bridge", type=int, default=1000)
    ap.add_argument("--skip", default="", help="comma list of experiment,isolation,scale,"
                    "puntrate,fleet")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, seconds not minutes")
    ap.add_argument("--out", default=str(RESULTS))
    a = ap.parse_args(argv)
    if a.smoke:
        a.reps, a.seconds, a.conn_seconds, a.scale, a.changes = 1, 1, 1, "20,50", 3
    skip = set(filter(None, a.skip.split(",")))
    if os.geteuid() != 0:
        print("bench: needs root (namespaces, OVS)", file=sys.stderr)
        return 2
    subprocess.run([str(ROOT / "scripts" / "ovs-up.sh")], check=True)
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                .splitlines() if ln.startswith("model name")), platform.machine())
    r: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "cpu": cpu,
                    "ovs": netlab.sh("ovs-vswitchd", "--version").splitlines()[0]},
        "command": "make bench" + (" (smoke)" if a.smoke else ""),
        "settings": vars(a)}
    work = Path(tempfile.mkdtemp(prefix="vgw-bench-"))
    # A SIGTERM still runs the clean-up below (bridges, namespaces, controllers).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "smoke" if a.smoke else "latest"

    def save() -> None:
        # After every section: a failure later still leaves what was measured.
        (out / f"{stem}.json").write_text(json.dumps(r, indent=2) + "\n")
        (out / f"{stem}.md").write_text(markdown(r))

    r["compile"] = run_compile(100 if a.smoke else 1000)
    if "puntrate" not in skip:
        # Packet-ins per second one core handles: the old punt path next to the new.
        r["puntrate"] = punt_measure(300 if a.smoke else 20000, 1 if a.smoke else 3, work)
        save()
    if not {"experiment", "isolation"} <= skip:
        bed = Bed(work)
        try:
            say("setting up: bridge, 4 namespace VMs, vgw_ryu and slow-path controllers")
            bed.up()
            if "experiment" not in skip:
                r["experiment"] = run_experiment(bed, a.reps, a.seconds, a.conn_seconds)
                save()
            if "isolation" not in skip:
                r["isolation"] = run_isolation(bed, a.reps, a.seconds)
                save()
        finally:
            bed.down()
    if "scale" not in skip:
        r["scale"] = run_scale([int(x) for x in a.scale.split(",")], a.changes,
                               a.per_bridge, work)
    if "fleet" not in skip:
        r["fleet"] = run_fleet(a.smoke)
    save()
    plot(r, out / f"{stem}.png")
    say(f"results: {out / stem}.json, .md, .png")
    print(markdown(r))
    return 0
