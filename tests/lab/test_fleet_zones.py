"""A VM that moves between two fleet agents (real vgw-db, vgw-api and agents, real
bridges): the new host numbers it in its own zone range, and the old host gives its
zone back once the VM has been gone ``--vgw-zone-release-after`` seconds, flushing the
zone first. Needs root and Open vSwitch."""

from __future__ import annotations

from pathlib import Path

from vgw_lab.fleet import ZONE_BLOCK, Agent, Fleet, vm_port
from vgw_lab.netlab import sh, wait_until
from vgw_ryu.api.client import Client

VM = {"mac": "02:00:00:0d:00:01", "ips": ["10.243.0.1"]}


def _zone(agent: Agent, vm: str) -> int | None:
    return Client(agent.url, timeout=10).get("/v1/vms")["vms"][vm]["zone"]


def test_a_vm_that_moved_away_gives_its_zone_back(ovs: None, tmp_path: Path) -> None:
    fleet = Fleet(tmp_path / "fleet", members=1, apis=1, agents=2,
                  agent_args=["--vgw-zone-release-after", "1"])
    try:
        fleet.start()
        a0, a1 = fleet.agents
        rev = fleet.api(0).call("PUT", "/v1/state", {"vms": {"m": VM}})["revision"]
        port = vm_port(a0.bridges[0], "m", 1)
        fleet.wait_agents(rev)
        wait_until(lambda: _zone(a0, "m") is not None, timeout=15,
                   what="agent 0 to number the VM it hosts")
        z0 = _zone(a0, "m")
        assert 1 <= z0 <= ZONE_BLOCK and _zone(a1, "m") is None

        # The move: unplugged here, plugged on the other agent's bridge.
        sh("ovs-vsctl", "del-port", a0.bridges[0].name, port)
        vm_port(a1.bridges[0], "m", 1)
        wait_until(lambda: _zone(a1, "m") is not None, timeout=15,
                   what="agent 1 to number the VM that arrived")
        assert ZONE_BLOCK < _zone(a1, "m") <= 2 * ZONE_BLOCK
        wait_until(lambda: _zone(a0, "m") is None, timeout=20,
                   what="agent 0 to give the zone of the VM that left back")
        wait_until(lambda: f"zone {z0} of vm m (left this hypervisor)" in a0.ctl.log_text(),
                   timeout=15, what="agent 0 to flush the zone it gave back")
        assert f"vm m (zone {z0}) on no switch here" in a0.ctl.log_text()
        # Agent 1 keeps its zone: the VM is there.
        assert _zone(a1, "m") is not None
    finally:
        problems = fleet.stop()
    assert not problems, problems
