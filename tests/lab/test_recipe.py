"""README's own-bridge recipe (docs/recipe-own-bridge.sh, included in README verbatim)
works as written, and a VM port whose TCP conntrack marks invalid is reported."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from vgw_lab.netlab import ROOT, free_port, sh, uniq, wait_until

RECIPE = ROOT / "docs" / "recipe-own-bridge.sh"


@pytest.fixture
def recipe_env(tmp_path, ovs):
    tag = uniq("")
    env = {"BR": f"rb{tag}", "NS1": f"vgwt-r1-{tag}", "NS2": f"vgwt-r2-{tag}",
           "P1": f"ra{tag}", "P2": f"rc{tag}", "OF_PORT": str(free_port()),
           "API_PORT": str(free_port()), "WORK": str(tmp_path / "work")}
    yield env
    pid_file = tmp_path / "work" / "controller.pid"
    pids = []
    if pid_file.exists():
        pids.append(int(pid_file.read_text()))
    for ns in (env["NS1"], env["NS2"]):
        pids += [int(p) for p in sh("ip", "netns", "pids", ns, check=False).split()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    sh("ovs-vsctl", "--if-exists", "del-br", env["BR"], check=False)
    for ns, port in ((env["NS1"], env["P1"]), (env["NS2"], env["P2"])):
        sh("ip", "link", "del", port, check=False)
        sh("ip", "netns", "del", ns, check=False)


def test_the_recipe_runs_as_written(recipe_env):
    p = subprocess.run(["sh", str(RECIPE)], cwd=str(ROOT), env={**os.environ, **recipe_env},
                       capture_output=True, text=True, timeout=180)
    log = (ROOT / recipe_env["WORK"] / "controller.log")
    assert p.returncode == 0, (p.stdout, p.stderr, log.read_text() if log.exists() else "")
    assert "vm1 -> vm2 tcp/8000: allowed" in p.stdout
    assert "vm1 -> vm2 tcp/8001: denied" in p.stdout
    # Denied by the firewall (the SYN times out), not refused by a missing server.
    ns1, ns2 = recipe_env["NS1"], recipe_env["NS2"]
    wait_until(lambda: ":8001" in sh("ip", "netns", "exec", ns2, "ss", "-ltn"),
               what="the tcp/8001 server")
    denied = subprocess.run(["ip", "netns", "exec", ns1, "curl", "-s", "-m", "2",
                             "http://10.0.0.2:8001/"], capture_output=True)
    assert denied.returncode == 28      # curl: operation timed out
    # The ports are the VMs they were declared as, on the named bridge.
    url = f"http://127.0.0.1:{recipe_env['API_PORT']}"
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "vgwctl"), "--url", url, "--json",
                          "get", "switches"], capture_output=True, text=True, timeout=30)
    assert recipe_env["BR"] in out.stdout and '"vm1"' in out.stdout, out


def test_a_port_whose_tcp_is_conntrack_invalid_is_reported(controller, bridges, vms):
    br = bridges(controller)
    srv = vms("srv", "02:00:00:00:e0:02", ["10.241.0.2"])
    cli = vms("cli", "02:00:00:00:e0:01", ["10.241.0.1"])
    srv.attach(br, {"vm-id": "srv"})
    cli.attach(br, {"vm-id": "cli"})
    status, body = controller.request("PUT", "/v1/state", {
        "settings": {"default_ingress": "allow"},
        "vms": {"srv": {"mac": srv.mac, "ips": srv.ips},
                "cli": {"mac": cli.mac, "ips": cli.ips}}})
    assert status == 200, body
    srv.serve([80])

    def applied():
        (sw,) = controller.get("/v1/switches")[1]["switches"]
        return sw["applied_revision"] == body["revision"] and len(sw["vm_ports"]) == 2
    wait_until(applied, timeout=20, what="the policy on the bridge")
    assert cli.probe("tcp", srv.ip4(), 80)["verdict"] == "allow"   # tx off: TCP works
    assert controller.get("/v1/health")[1].get("problems", []) == []
    cli.exec("ethtool", "-K", "eth0", "tx", "on")                    # the trap

    def reported():
        cli.probe("tcp", srv.ip4(), 80, timeout=0.5)
        (sw,) = controller.get("/v1/switches")[1]["switches"]
        port = next(p for p in sw["vm_ports"] if p["vm"] == "cli")
        return port.get("problems")
    (p,) = wait_until(reported, timeout=30, interval=0.5, what="cli's port to be reported")
    assert p["code"] == "ct_invalid_drops" and p["port"] == cli.host_if
    assert "ethtool -K" in p["message"]
    srv_port = next(q for q in controller.get("/v1/switches")[1]["switches"][0]["vm_ports"]
                    if q["vm"] == "srv")
    assert "problems" not in srv_port                                # only the culprit
    assert f"port {cli.host_if} (vm cli)" in controller.log_text()
    health = controller.get("/v1/health")[1]
    assert health["status"] == "degraded", health
    assert [q["port"] for q in health["problems"]] == [cli.host_if]
