"""The Mininet labs through the runner users run (vgw-lab), and mn --custom."""

import os
import re
import subprocess
import sys

import pytest

from vgw_lab.netlab import ROOT, VENV_BIN, free_port, sh


def run_lab(name: str) -> str:
    p = subprocess.run([str(VENV_BIN / "vgw-lab"), "run", name], capture_output=True,
                       text=True, timeout=600, cwd=str(ROOT))
    assert p.returncode == 0, p.stdout[-5000:] + p.stderr[-2000:]
    return p.stdout


@pytest.mark.parametrize("name,n", [("quickstart", 7), ("three-tier", 14)])
def test_lab_verdicts_all_match(ovs, name, n):
    out = run_lab(name)
    assert f"{n} of {n} verdicts as expected" in out
    assert "MISMATCH" not in out
    assert "reject" in out or name == "quickstart"


def test_migration_lab(ovs):
    out = run_lab("migration")
    assert "stream survived" in out
    assert "6 of 6 verdicts as expected" in out


def test_lab_leaves_nothing_behind(ovs):
    out = run_lab("quickstart")
    # Other tests may create bridges meanwhile: look for this run's names only.
    run = re.search(r"\[lab\] run (v\d{4}): bridges (\S+); run directory (\S+) ", out)
    assert run, out[:2000]
    assert run.group(2) == f"{run.group(1)}hv1"
    assert not [b for b in sh("ovs-vsctl", "list-br").split() if b.startswith(run.group(1))]
    assert not os.path.exists(run.group(3))
    assert not [ln for ln in sh("ip", "-o", "link").splitlines()
                if f" {run.group(1)}hv1-" in ln]
    # The URLs of a lab about to be torn down are not offered; how to keep one is.
    assert "vgwctl --url" not in out and "--keep" in out


def test_mn_custom_file_builds_a_topology_with_port_identity(ovs):
    # Load the custom file the way `mn --custom` does (exec, no __file__), then build
    # with Mininet's API; running the `mn` script itself is avoided on purpose: on any
    # error it cleans up every bridge on the machine, not only its own.
    from mininet.net import Mininet
    from mininet.node import RemoteController

    path = ROOT / "mininet" / "vgw_topos.py"
    saved = sys.argv
    sys.argv = ["mn", "--custom", str(path)]
    try:
        customs: dict = {}
        exec(compile(path.read_text(), str(path), "exec"), customs, customs)
    finally:
        sys.argv = saved
    assert {"quickstart", "three-tier", "three-tier-ipv6", "migration"} <= set(customs["topos"])
    prefix = f"t{os.getpid() % 10000}"
    topo = customs["topos"]["three-tier"](prefix=prefix)
    net = Mininet(topo=topo, controller=None, build=False, autoSetMacs=False,
                  waitConnected=False)
    net.addController("c0", controller=RemoteController, ip="127.0.0.1", port=free_port())
    try:
        net.build()
        net.start()
        hv1 = f"{prefix}hv1"
        assert sh("ovs-vsctl", "get", "Bridge", hv1, "datapath_type").strip() == "netdev"
        ids = {}
        for iface in sh("ovs-vsctl", "list-ifaces", hv1).split():
            ids[iface] = sh("ovs-vsctl", "get", "Interface", iface, "external_ids").strip()
        vm_ids = [v for v in ids.values() if "vm-id" in v]
        assert len(vm_ids) == 3 and any('vm-id=app1' in v for v in vm_ids), ids
        assert all("attached-mac=" in v for v in vm_ids)
        assert sum("vgw-role=uplink" in v for v in ids.values()) == 1, ids
    finally:
        net.stop()
    assert not any(b.startswith(prefix) for b in sh("ovs-vsctl", "list-br").split())
