"""Starting the controller: a taken OpenFlow port stops it, --help tells the truth, the
log has no eventlet noise, and a temporary --vgw-db keeps every file beside it."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from vgw_lab.netlab import VENV_BIN, Controller, wait_until


def test_a_taken_openflow_port_exits_non_zero_with_a_message(controller_factory, ovs):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen(1)
        ctl = controller_factory()
        ctl.of_port = taken.getsockname()[1]
        ctl.start(wait=False)
        assert ctl.proc.wait(timeout=30) != 0
    log = ctl.log_text()
    assert f"cannot listen for OpenFlow switches on 0.0.0.0:{ctl.of_port}" in log, log
    assert "Address already in use" in log
    # It stopped before serving: the REST port was never left answering.
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", ctl.api_port)) != 0


def test_help_shows_the_real_defaults(ovs):
    p = subprocess.run([str(VENV_BIN / "vgw-ryu"), "--help"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    text = " ".join(p.stdout.split())    # argparse wraps lines
    assert "REST API listen host (default: 127.0.0.1;" in text
    assert "0.0.0.0" not in text.split("--wsapi-host WSAPI_HOST", 2)[-1].split("--wsapi-port")[0]
    for opt, default in (("--vgw-db", "/var/lib/vgw_ryu/state.db"),
                         ("--vgw-audit-interval", "30.0"), ("--vgw-state", "none"),
                         ("--vgw-seed", "none"), ("--vgw-meter-log-pps", "100")):
        part = text.split(f"{opt} {opt[2:].upper().replace('-', '_')}", 2)[-1]
        assert f"(default: {default})" in part.split(" --", 1)[0], opt
    assert "Eventlet is deprecated" not in p.stdout + p.stderr


def test_the_log_has_no_eventlet_noise_and_no_access_lines(controller):
    for _ in range(5):
        assert controller.get("/v1/health")[0] == 200
    assert controller.get("/v1/state")[0] == 200
    log = controller.log_text()
    assert "REST API on http://127.0.0.1" in log   # the log is being written
    for noise in ("Eventlet is deprecated", "were not greened", '"GET /v1/health',
                  "HTTP/1.1\" 200", "wsgi starting up", "accepted ('127.0.0.1'"):
        assert noise not in log, (noise, log)


class _NoLogFileOption(Controller):
    """The controller without --vgw-log-file: the firewall log takes its default."""

    def argv(self) -> list[str]:
        args = super().argv()
        i = args.index("--vgw-log-file")
        return args[:i] + args[i + 2:]


def test_a_temporary_db_keeps_the_firewall_log_beside_it(tmp_path, request, ovs):
    var_log = Path("/var/log/vgw_ryu")
    before = sorted(var_log.iterdir()) if var_log.exists() else None
    ctl = _NoLogFileOption(tmp_path, db=tmp_path / "sub" / "state.db")
    request.node._vgw_controllers = [ctl]
    try:
        ctl.start()
        wait_until(lambda: (tmp_path / "sub" / "firewall.jsonl").exists(),
                   what="firewall log beside the db")
    finally:
        ctl.stop()
    after = sorted(var_log.iterdir()) if var_log.exists() else None
    assert after == before     # not created, and nothing new in it if it was there


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def test_the_controller_runs_its_database_and_takes_it_down_with_it(controller_factory,
                                                                      ovs):
    """--vgw-db FILE: the controller starts ovsdb-server for it; a kill -9 of the
    controller leaves no database server behind, and a restart finds every write."""
    ctl = controller_factory().start()
    assert ctl.request("PUT", "/v1/vms/a", {"ips": ["10.0.0.1"]})[0] == 200
    pid = int(Path(f"{ctl.db}.pid").read_text())
    assert _alive(pid)
    ctl.kill9()
    wait_until(lambda: not _alive(pid), timeout=10, what="the database server to exit")
    ctl.start()
    status, vms = ctl.get("/v1/vms")
    assert status == 200 and list(vms["vms"]) == ["a"] and vms["revision"] == 1
    assert int(Path(f"{ctl.db}.pid").read_text()) != pid
