"""Test tiers by folder: unit (no root), sandbox (real OVS), lab (real traffic)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from vgw_lab import netlab as fx

TIERS = ("unit", "sandbox", "lab")


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def ovs() -> None:
    """Real Open vSwitch, started by the project's own script if it is not running."""
    if os.geteuid() != 0:
        pytest.skip("needs root and Open vSwitch (sandbox/lab tier); CI runs it as root")
    subprocess.run([str(fx.ROOT / "scripts" / "ovs-up.sh")], check=True,
                   capture_output=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for ctl in getattr(item, "_vgw_controllers", []):
            rep.sections.append((f"controller log {ctl.log_path.name}",
                                 ctl.log_text()[-20000:]))


@pytest.fixture
def bridges(ovs):
    """Factory of unique netdev bridges, deleted afterwards."""
    made: list[fx.Bridge] = []

    def make(controller: fx.Controller | None = None) -> fx.Bridge:
        br = fx.make_bridge(controller.of_port if controller else None)
        made.append(br)
        return br

    yield make
    for br in made:
        fx.delete_bridge(br)


@pytest.fixture
def vms(ovs):
    """Factory of namespace VMs, deleted afterwards."""
    made: list[fx.NsVm] = []

    def make(name: str, mac: str, ips: list[str]) -> fx.NsVm:
        vm = fx.make_vm(name, mac, ips)
        made.append(vm)
        return vm

    yield make
    for vm in made:
        fx.delete_vm(vm)


@pytest.fixture
def controller_factory(request, tmp_path):
    """Starts ``ryu-manager vgw_ryu.app`` processes; their logs attach to failures."""
    made: list[fx.Controller] = []
    request.node._vgw_controllers = made

    def make(**kw) -> fx.Controller:
        ctl = fx.Controller(tmp_path, **kw)
        made.append(ctl)
        return ctl

    yield make
    for ctl in made:
        ctl.stop()


@pytest.fixture
def controller(controller_factory, ovs) -> fx.Controller:
    return controller_factory().start()
