"""The fleet the fleet tests share (test_fleet.py, test_fleet_api.py): 3 database
members, 2 vgw-api, 2 agents with a bridge each, real processes, two namespace VMs
(t1, t2) on the second agent's bridge and VM ports a and b, under the policy ``BASE``.
tests/lab/conftest.py starts it once for the tests that use it (fixture ``env``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vgw_lab import netlab
from vgw_lab.fleet import Agent, Fleet, vm_port, wait_compiled
from vgw_lab.netlab import NsVm, wait_until
from vgw_ryu.store.ovsdb import OvsdbStore

DB_TIMEOUT = 3.0          # vgw-api --db-timeout: a write without quorum answers 503 by then
N_WRITES = 500            # the chaos writes; other tests number theirs above them
STREAM_PORT = 5001

BASE: dict[str, Any] = {
    "settings": {"default_ingress": "deny", "default_egress": "allow"},
    "vms": {
        "a": {"mac": "02:00:00:0f:00:01", "ips": ["10.241.0.1"], "labels": {"role": "srv"}},
        "b": {"mac": "02:00:00:0f:00:02", "ips": ["10.241.0.2"], "labels": {"role": "srv"}},
        "t1": {"mac": "02:00:00:0f:01:01", "ips": ["10.241.1.1"]},
        "t2": {"mac": "02:00:00:0f:01:02", "ips": ["10.241.1.2"]},
    },
    "groups": {"chaos": {"match_labels": {"role": "chaos"}}},
    "policies": {
        # Chaos writes add members to this group: they change both agents' flows.
        "srv": {"applied_to": ["vm:a", "vm:b"], "rules": [
            {"id": "ssh", "direction": "ingress", "action": "allow", "protocol": "tcp",
             "ports": "22", "peer": "group:chaos"}]},
        "stream": {"applied_to": ["vm:t2"], "rules": [
            {"id": "s", "direction": "ingress", "action": "allow", "protocol": "tcp",
             "ports": str(STREAM_PORT), "peer": "vm:t1"}]},
    },
}


@dataclass
class Env:
    """The shared fleet, its two namespace VMs and a work directory for scratch files."""

    fleet: Fleet
    t1: NsVm
    t2: NsVm
    work: Path

    def revision(self, api: int = 0) -> int:
        """The policy revision API server ``api`` answers with."""
        return int(self.fleet.api(api, timeout=10).get("/v1/state")["revision"])

    def all_bridges(self) -> Iterator[tuple[Agent, netlab.Bridge]]:
        """Every agent's bridges, with their agent."""
        for a in self.fleet.agents:
            for br in a.bridges:
                yield a, br

    def check_flows(self, revision: int) -> None:
        """Every bridge holds exactly the compiled flows of ``revision``."""
        remote = self.fleet.members[0].remote
        for a, br in self.all_bridges():
            wait_compiled(remote, a, br, revision, self.work)


def start_env(work: Path) -> Env:
    """Start the fleet, write ``BASE``, make the VMs and wait until every agent runs
    that revision; on failure, stop what was started and raise."""
    fleet = Fleet(work / "fleet", members=3, apis=2, agents=2,
                  api_args=["--db-timeout", str(DB_TIMEOUT)])
    vms: list[NsVm] = []
    fleet.start()
    try:
        rev = fleet.api(0).call("PUT", "/v1/state", BASE)["revision"]
        a0, a1 = fleet.agents
        vm_port(a0.bridges[0], "a", 1)
        vm_port(a1.bridges[0], "b", 1)
        for name in ("t1", "t2"):
            spec = BASE["vms"][name]
            vm = netlab.make_vm(name, spec["mac"], spec["ips"])
            vms.append(vm)
            vm.attach(a1.bridges[0], {"vm-id": name})
        vms[1].serve(tcp=[STREAM_PORT])
        e = Env(fleet, vms[0], vms[1], work)
        fleet.wait_agents(rev)
        return e
    except BaseException:
        for vm in vms:
            netlab.delete_vm(vm)
        fleet.stop()
        raise


def stop_env(env: Env) -> list[str]:
    """Remove the VMs and stop the fleet; the problems left (empty when all is gone)."""
    for vm in (env.t1, env.t2):
        netlab.delete_vm(vm)
    return env.fleet.stop()


def member_stores(fleet: Fleet, revision: int, timeout: float = 30) -> list[OvsdbStore]:
    """One replica per member (that member only), each at ``revision``."""
    stores = []
    try:
        for m in fleet.members:
            s = OvsdbStore(m.remote, timeout=timeout)
            stores.append(s)
            wait_until(lambda s=s: (s.poll(), s.revision())[1] == revision, timeout=timeout,
                       what=f"member {m.name} at revision {revision}")
    except BaseException:
        for s in stores:
            s.close()
        raise
    return stores


def chaos_body(i: int) -> dict[str, Any]:
    """VM ``chaos-<i>``'s body: a MAC and an address of its own."""
    # Every tenth VM joins the group the agents' policy names, so the stream changes
    # their flows too; the others cost the agents a recompile, not a flow change.
    return {"mac": f"02:00:00:0e:{i >> 8:02x}:{i & 0xff:02x}",
            "ips": [f"10.242.{i // 250}.{i % 250 + 1}"],
            "labels": {"role": "chaos" if i % 10 == 0 else "bulk"}}
