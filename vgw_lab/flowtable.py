"""A bridge's flow table as the fleet tests compare it: its flows as OVS prints them
(without counters), their ages, and the table the compiler says an agent's bridge must
hold at a revision (loaded into a twin bridge, so both sides are printed by OVS alike).

    want = compiled_table(remote, agent.zones_file, "vf1234x0", revision, workdir)
    wait_compiled(remote, agent, bridge, revision, workdir)   # until they are equal
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgw_lab import netlab
from vgw_lab.netlab import Bridge, sh, uniq, wait_until

if TYPE_CHECKING:
    from vgw_lab.fleetparts import Agent

STATS = re.compile(r"(duration|n_packets|n_bytes|idle_age|hard_age)=[^,\s]+,?\s*")
_DURATION = re.compile(r"cookie=(0x[0-9a-f]+), duration=([\d.]+)s")


def _dump(bridge: str) -> str:
    return sh("ovs-ofctl", "-O", "OpenFlow13,OpenFlow14", "dump-flows", bridge)


def table_text(bridge: str) -> list[str]:
    """The bridge's flows as OVS prints them, without counters, sorted."""
    return sorted(STATS.sub("", ln).strip() for ln in _dump(bridge).splitlines()
                  if ln.strip().startswith("cookie="))


def durations(bridge: str) -> dict[str, float]:
    """cookie -> the age of its flow in seconds (a re-added flow starts again at 0)."""
    out: dict[str, float] = {}
    for ln in _dump(bridge).splitlines():
        m = _DURATION.search(ln)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def bridge_ifaces(bridge: str) -> list[Any]:
    """The bridge's interfaces as an agent reads them from OVSDB (runtime.ports.Iface)."""
    from vgw_ryu.runtime.ports import Iface

    names = set(sh("ovs-vsctl", "list-ifaces", bridge).split())
    doc = json.loads(sh("ovs-vsctl", "--format=json", "--columns=name,ofport,type,"
                        "external_ids", "list", "Interface"))
    out = []
    for name, ofport, kind, ids in doc["data"]:
        if name in names and isinstance(ofport, int) and ofport > 0:
            out.append(Iface(name, ofport, kind, dict(ids[1])))
    return sorted(out, key=lambda i: i.ofport)


def compiled_table(remote: str, zones_file: Path, bridge: str, revision: int,
                   workdir: Path, timeout: float = 30) -> list[str]:
    """What ``bridge`` must hold at ``revision``: the compiler's flows for its ports,
    from the database at ``remote`` and the agent's zones, loaded by ovs-ofctl into a
    twin bridge and dumped as OVS prints them."""
    from vgw_ryu.compiler import compile_switch, render
    from vgw_ryu.runtime.engine import Engine
    from vgw_ryu.store.ovsdb import OvsdbStore
    from vgw_ryu.store.zonefile import ZoneFile

    store = OvsdbStore(remote, timeout=timeout)
    try:
        wait_until(lambda: (store.poll(), store.revision())[1] == revision,
                   timeout=timeout, what=f"revision {revision} at {remote}")
        # A copy (the journal, then the file: a file rewritten in between holds what
        # the journal lost): the reader's engine saves its zone file, the agent's is
        # not ours.
        zones = workdir / f"zones-{uniq('')}.json"
        journal = zones_file.with_name(zones_file.name + ".log")
        if journal.exists():
            shutil.copyfile(journal, zones.with_name(zones.name + ".log"))
        shutil.copyfile(zones_file, zones)
        engine = Engine(store, ZoneFile(zones))
    finally:
        store.close()
    facts = engine.refresh_facts(1, bridge_ifaces(bridge))
    text = render(compile_switch(engine.state, facts, engine.ids, engine.effective))
    twin = netlab.make_bridge()
    try:
        netlab.load_flows(twin, text, workdir / f"{twin.name}.flows")
        return table_text(twin.name)
    finally:
        netlab.delete_bridge(twin)


def wait_compiled(remote: str, agent: Agent, bridge: Bridge, revision: int,
                  workdir: Path, timeout: float = 30) -> None:
    """Until ``bridge`` holds exactly the compiled flows of ``revision``; AssertionError
    with what is missing and extra otherwise."""
    want = compiled_table(remote, agent.zones_file, bridge.name, revision, workdir)
    try:
        wait_until(lambda: table_text(bridge.name) == want, timeout=timeout,
                   what=f"{bridge.name} to hold exactly the compiled flows")
    except AssertionError:
        got = table_text(bridge.name)
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        raise AssertionError(f"{bridge.name} (agent {agent.name}) differs from the "
                             f"compiled flows of revision {revision}: {len(missing)} "
                             f"missing {missing[:5]}, {len(extra)} extra {extra[:5]}"
                             ) from None
