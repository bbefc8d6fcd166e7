"""How fast an agent adopts another writer's revision: one VM written at a time by one
engine, adopted by a second engine on its own replica of the same database.

Two ways are timed, interleaved write by write in one run:

* ``by_object`` - what ``Engine.refresh`` does: the store's ``load()`` re-reads the rows
  the replica says changed, and ``rebase`` applies the changed objects to the state held;
* ``whole`` - the baseline, what refresh did for every revision before: every row read
  again (the store's row cache emptied first) and the whole document parsed.

Both must end in the writer's state (checked after every write). Only the adoption is
timed (``refresh()``), not the database's round trip.

    python -m vgw_lab.bench.refresh [--vms 1000] [--writes 30]

Prints one JSON document; progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vgw_lab.bench.scale import scale_state
from vgw_ryu.policy import model
from vgw_ryu.runtime import engine as engine_mod
from vgw_ryu.runtime.engine import Engine
from vgw_ryu.store.local import LocalDatabase
from vgw_ryu.store.ovsdb import OvsdbStore
from vgw_ryu.store.zonefile import ZoneFile


def _caught_up(reader: Engine, revision: int, deadline: float) -> None:
    store = reader.store
    while True:
        store.poll()
        if store.revision() == revision:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the reader's replica never reached revision {revision}")
        store.wait(0.05)


def run_refresh(vms: int = 1000, writes: int = 30) -> dict[str, Any]:
    """Refresh time per one-VM write, by object and whole, at ``vms`` VMs."""
    work = Path(tempfile.mkdtemp(prefix="vgw-refresh-"))
    db = LocalDatabase(work / "state.db")
    remote = db.open()
    stores = [OvsdbStore(remote), OvsdbStore(remote)]
    try:
        writer, reader = Engine(stores[0], ZoneFile(None)), Engine(stores[1], ZoneFile(None))
        doc = scale_state(vms)
        writer.apply_document(doc)
        _caught_up(reader, writer.revision, time.monotonic() + 60)
        reader.refresh()
        times: dict[str, list[float]] = {"by_object": [], "whole": []}
        rebase = engine_mod.rebase
        for k in range(writes):
            for way in ("by_object", "whole"):
                name = f"vm{(k * 7 + (way == 'whole')) % vms}"
                vm = {**doc["vms"][name], "labels": {"g": f"g{k % 3}", "fleet": "yes"}}
                writer.replace_state(model.replace_object(writer.state, "vms", name, vm),
                                     touched={"vms": {name}})
                _caught_up(reader, writer.revision, time.monotonic() + 10)
                engine_mod.rebase = rebase if way == "by_object" else (lambda *a: None)
                if way == "whole":
                    reader.store.rows.clear()
                try:
                    t0 = time.perf_counter()
                    adopted = reader.refresh()
                    times[way].append((time.perf_counter() - t0) * 1000)
                finally:
                    engine_mod.rebase = rebase
                assert adopted and model.state_doc(reader.state) == \
                    model.state_doc(writer.state), "the reader differs from the writer"
            print(f"[refresh] write {k + 1}/{writes}: by object {times['by_object'][-1]:.1f} "
                  f"ms, whole {times['whole'][-1]:.1f} ms", file=sys.stderr)
        out: dict[str, Any] = {"vms": vms, "writes": writes}
        for way, values in times.items():
            values.sort()
            out[way] = {"p50_ms": round(statistics.median(values), 1),
                        "p99_ms": round(values[min(len(values) - 1,
                                                   int(0.99 * len(values)))], 1)}
        out["whole/by_object p50"] = round(out["whole"]["p50_ms"] /
                                           out["by_object"]["p50_ms"], 1)
        return out
    finally:
        for s in stores:
            s.close()
        db.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vgw_lab.bench.refresh",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--vms", type=int, default=1000)
    ap.add_argument("--writes", type=int, default=30)
    args = ap.parse_args(argv)
    print(json.dumps(run_refresh(args.vms, args.writes), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
