"""Waiting for a revision to be enforced (``GET /v1/switches?wait_revision=N`` and
``vgwctl apply --wait``) against the real controller with two bridges on the real
ovs-vswitchd. Needs root and OVS (the ``ovs`` fixture)."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import yaml

from tests.api_doc import DOC
from vgw_lab.netlab import VENV_BIN, wait_until


def _connected(ctl, bridges, n: int = 2) -> None:
    for _ in range(n):
        bridges(ctl)
    wait_until(lambda: ctl.get("/v1/health")[1]["switches"] == n, timeout=30,
               what="both bridges connected")


def test_a_wait_answers_once_every_switch_runs_the_revision(controller, bridges):
    _connected(controller, bridges)
    s, b = controller.request("PUT", "/v1/state", DOC)
    assert s == 200
    rev = b["revision"]
    s, got = controller.request("GET", f"/v1/switches?wait_revision={rev}&timeout=30",
                                timeout=60)
    assert s == 200 and got["wait"]["applied"] is True and got["wait"]["revision"] == rev
    # The very answer shows them on it (no poll after the wait needed).
    assert [sw["applied_revision"] >= rev for sw in got["switches"]] == [True, True]
    assert (got["wait"]["of"], got["wait"]["checked"]) == ("switches", 2)
    # A revision already run: at once.
    assert controller.get(f"/v1/switches?wait_revision={rev - 1}")[1]["wait"]["applied"]
    # Without the parameter: the plain listing, no wait member.
    assert "wait" not in controller.get("/v1/switches")[1]


def test_a_wait_for_a_later_revision_times_out_and_blocks_no_one(controller, bridges):
    _connected(controller, bridges)
    rev = controller.get("/v1/health")[1]["revision"]
    answer: dict = {}

    def wait() -> None:
        answer["got"] = controller.request(
            "GET", f"/v1/switches?wait_revision={rev + 5}&timeout=2", timeout=60)

    waiter = threading.Thread(target=wait)
    t0 = time.monotonic()
    waiter.start()
    # Other requests are answered meanwhile: the wait does not hold the controller.
    slowest = 0.0
    while time.monotonic() - t0 < 1.0:
        t = time.monotonic()
        assert controller.get("/v1/health")[0] == 200
        slowest = max(slowest, time.monotonic() - t)
    assert waiter.is_alive() and slowest < 0.5, slowest
    waiter.join(timeout=30)
    s, got = answer["got"]
    assert s == 200 and got["wait"]["applied"] is False
    assert 2.0 <= got["wait"]["seconds"] < 10, got["wait"]


def test_vgwctl_apply_wait_with_no_switch_fails(controller, tmp_path: Path):
    path = tmp_path / "state.yaml"
    path.write_text(yaml.safe_dump(DOC))
    p = subprocess.run([str(VENV_BIN / "vgwctl"), "apply", "-f", str(path), "--yes",
                        "--wait", "5"], capture_output=True, text=True, timeout=120,
                       env={"VGW_URL": controller.url, "PATH": "/usr/bin:/bin"})
    assert p.returncode == 1 and "enforced nowhere yet: no switch is connected" in p.stderr


def test_a_wait_with_bad_parameters_is_refused_naming_them(controller):
    for query, field in (("wait_revision=abc", "wait_revision"),
                         ("wait_revision=-1", "wait_revision"),
                         ("wait_revision=1&timeout=0", "timeout"),
                         ("wait_revision=1&timeout=301", "timeout"),
                         ("wait_revision=1&timeout=nan", "timeout"),
                         ("timeout=5", "timeout")):
        s, b = controller.get(f"/v1/switches?{query}")
        assert s == 400 and b["error"]["field"] == field, (query, b)


def test_vgwctl_apply_wait(controller, bridges, tmp_path: Path):
    _connected(controller, bridges)
    path = tmp_path / "state.yaml"
    path.write_text(yaml.safe_dump(DOC))
    env = {"VGW_URL": controller.url, "PATH": "/usr/bin:/bin"}
    p = subprocess.run([str(VENV_BIN / "vgwctl"), "apply", "-f", str(path), "--yes",
                        "--wait", "30"], capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "enforced on 2 switch(es) in " in p.stdout, p.stdout
    rev = controller.get("/v1/health")[1]["revision"]
    assert all(sw["applied_revision"] == rev
               for sw in controller.get("/v1/switches")[1]["switches"])
