"""What the benchmark's parts share: paths, the experiment's VMs and ports, output."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout
RESULTS = ROOT / "bench" / "results"
CLIENT = ("client", "02:00:00:00:b0:01", ["10.250.0.1"])
SERVER = ("server", "02:00:00:00:b0:02", ["10.250.0.2"])
FLOODER = ("flooder", "02:00:00:00:b0:03", ["10.250.0.3"])
STRANGER = ("stranger", "02:00:00:00:b0:99", ["10.250.0.4"])
IPERF_PORT, CONN_PORT, FLOOD_PORT = 5201, 7000, 9


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": values}
