"""vgw-lab against a controller it did not start (--api), and the `mn --custom` route's
policy step (`vgw-lab state | vgwctl apply -f -`)."""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

from vgw_lab.netlab import ROOT, VENV_BIN, Controller, sh
from vgw_ryu.api.client import Client

TOKEN = "lab-test-token"
USER_GROUP = {"match_labels": {}, "members": [], "cidrs": ["192.0.2.0/24"]}
USER_VM = {"mac": "02:aa:00:00:00:01", "ips": ["10.99.0.1"], "labels": {"tier": "web"}}


@pytest.fixture(scope="module")
def user_controller(ovs, tmp_path_factory):
    """A token-protected controller holding the user's own VM and group."""
    ctl = Controller(tmp_path_factory.mktemp("userctl"), extra_args=["--vgw-token", TOKEN])
    ctl.start()
    api = Client(ctl.url, TOKEN)
    api.put("/v1/vms/mine-vm", USER_VM)
    api.put("/v1/groups/mine", USER_GROUP)
    try:
        yield ctl
    finally:
        ctl.stop()


def lab(*args: str, token: str | None = None) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if k != "VGW_TOKEN"}
    if token:
        env["VGW_TOKEN"] = token
    t0 = time.monotonic()
    p = subprocess.run([str(VENV_BIN / "vgw-lab"), *args], capture_output=True, text=True,
                       timeout=300, cwd=str(ROOT), env=env)
    return p, time.monotonic() - t0


def run_name(out: str) -> str:
    return re.search(r"\[lab\] run (v\d{4}): bridges ", out).group(1)


def test_api_without_token_fails_before_building(user_controller):
    c = user_controller
    before = Client(c.url, TOKEN).get("/v1/state")
    p, took = lab("run", "quickstart", "--api", c.url, "--of-port", str(c.of_port))
    assert p.returncode == 2, p.stdout + p.stderr
    assert "--token" in p.stdout and "VGW_TOKEN" in p.stdout, p.stdout
    assert "Mininet up" not in p.stdout
    run = run_name(p.stdout)
    assert not [b for b in sh("ovs-vsctl", "list-br").split() if b.startswith(run)]
    assert not os.path.exists(f"/run/vgw-lab/{run}")
    assert took < 20, f"failing took {took:.1f} s"
    assert Client(c.url, TOKEN).get("/v1/state")["revision"] == before["revision"]


def test_api_lab_adds_and_removes_only_its_own_objects(user_controller):
    c = user_controller
    p, _ = lab("run", "quickstart", "--api", c.url, "--of-port", str(c.of_port),
               token=TOKEN)
    assert p.returncode == 0, p.stdout[-5000:] + p.stderr[-2000:]
    assert "7 of 7 verdicts as expected" in p.stdout
    run = run_name(p.stdout)
    assert f"lab-{run}-*" in p.stdout
    after = Client(c.url, TOKEN).get("/v1/state")
    assert after["groups"] == {"mine": USER_GROUP}
    assert list(after["vms"]) == ["mine-vm"]
    assert after["vms"]["mine-vm"]["labels"] == {"tier": "web"}
    assert after["policies"] == {}
    assert after["settings"]["default_ingress"] == "deny"
    assert not [b for b in sh("ovs-vsctl", "list-br").split() if b.startswith(run)]


def test_state_document_pipes_into_vgwctl_apply(controller):
    state = subprocess.run([str(VENV_BIN / "vgw-lab"), "state", "three-tier"],
                           capture_output=True, text=True, check=True)
    p = subprocess.run([str(VENV_BIN / "vgwctl"), "--url", controller.url, "apply", "-f",
                        "-"], input=state.stdout, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    got = Client(controller.url).get("/v1/state")
    assert set(got["vms"]) == {"web1", "web2", "app1", "db1", "client", "jump"}
    assert got["policies"] and got["groups"]
