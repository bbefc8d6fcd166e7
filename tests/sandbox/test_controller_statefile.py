"""--vgw-state (the file is the source of truth) and --vgw-seed (first fill only), with the
real controller."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import yaml

from vgw_lab.netlab import wait_until


def vm(n: int) -> dict:
    return {"mac": f"02:00:00:00:0a:{n:02x}", "ips": [f"10.77.0.{n}"]}


def write(path: Path, vms: dict, mtime: float | None = None) -> None:
    path.write_text(yaml.safe_dump({"vms": vms}))
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def vms_of(ctl) -> set[str]:
    status, doc = ctl.get("/v1/state")
    assert status == 200, doc
    return set(doc["vms"])


def test_file_edits_are_applied_whole(controller_factory, tmp_path, ovs):
    f = tmp_path / "state.yaml"
    write(f, {"aa": vm(1), "bb": vm(2)})
    ctl = controller_factory(state_file=f).start()
    assert vms_of(ctl) == {"aa", "bb"}
    write(f, {"bb": vm(2), "cc": vm(3)})                  # one removed, one added
    wait_until(lambda: vms_of(ctl) == {"bb", "cc"}, what="the edited file applied")
    assert "applied as revision 2" in ctl.log_text()


def test_sighup_reapplies_an_unchanged_looking_file(controller_factory, tmp_path, ovs):
    f = tmp_path / "state.yaml"
    write(f, {"aa": vm(1)}, mtime=1_700_000_000)
    ctl = controller_factory(state_file=f).start()
    assert vms_of(ctl) == {"aa"}
    # Restored from a backup with its old mtime and the same size: no change to see...
    write(f, {"zz": vm(1)}, mtime=1_700_000_000)
    ctl.proc.send_signal(signal.SIGHUP)                    # ...but SIGHUP re-applies it
    wait_until(lambda: vms_of(ctl) == {"zz"}, what="SIGHUP to re-apply the file")


def test_the_file_replaces_a_state_written_before_over_rest(controller_factory, tmp_path, ovs):
    db = tmp_path / "shared.db"
    free = controller_factory(db=db).start()
    assert free.request("PUT", "/v1/state", {"vms": {"rest": vm(9)}})[0] == 200
    free.stop()
    f = tmp_path / "state.yaml"
    write(f, {"aa": vm(1)})
    ctl = controller_factory(db=db, state_file=f).start()
    assert vms_of(ctl) == {"aa"}                           # drift restored at start


def test_rest_writes_are_refused_naming_the_file(controller_factory, tmp_path, ovs):
    f = tmp_path / "state.yaml"
    write(f, {"aa": vm(1)})
    ctl = controller_factory(state_file=f).start()
    for method, path, body in (("PUT", "/v1/state", {"vms": {}}),
                               ("PUT", "/v1/vms/bb", vm(2)),
                               ("DELETE", "/v1/vms/aa", None)):
        status, err = ctl.request(method, path, body)
        assert status == 409, (method, path, err)
        assert err["error"]["code"] == "conflict" and err["error"]["field"] == "state_file"
        assert str(f) in err["error"]["message"]
    assert vms_of(ctl) == {"aa"}


def test_a_rejected_edit_degrades_health_until_fixed(controller_factory, tmp_path, ovs):
    f = tmp_path / "state.yaml"
    write(f, {"aa": vm(1)})
    ctl = controller_factory(state_file=f).start()
    assert ctl.get("/v1/health")[1]["status"] == "ok"
    f.write_text("vms: {aa: {ips: [not-an-ip]}}")

    def degraded():
        h = ctl.get("/v1/health")[1]
        return h["status"] == "degraded" and h["problems"]
    (p,) = wait_until(degraded, what="health to report the rejected file")
    assert p["code"] == "state_file_rejected" and str(f) in p["message"]
    assert vms_of(ctl) == {"aa"}                           # the running state is kept
    write(f, {"aa": vm(1), "bb": vm(2)})
    wait_until(lambda: ctl.get("/v1/health")[1]["status"] == "ok", what="health ok again")


def test_seed_applies_once_then_rest_owns_the_state(controller_factory, tmp_path, ovs):
    db = tmp_path / "seeded.db"
    seed = tmp_path / "seed.yaml"
    write(seed, {"aa": vm(1)})
    ctl = controller_factory(db=db, extra_args=["--vgw-seed", str(seed)]).start()
    assert vms_of(ctl) == {"aa"} and ctl.get("/v1/health")[1]["revision"] == 1
    status, body = ctl.request("PUT", "/v1/vms/bb", vm(2))
    assert status == 200, body
    write(seed, {"cc": vm(3)})                             # not read again...
    ctl.proc.send_signal(signal.SIGHUP)                    # ...not even on SIGHUP
    wait_until(lambda: "applied only to an empty store" in ctl.log_text(), what="SIGHUP")
    assert vms_of(ctl) == {"aa", "bb"}
    ctl.stop()
    again = controller_factory(db=db, extra_args=["--vgw-seed", str(seed)]).start()
    assert vms_of(again) == {"aa", "bb"}                   # a restart does not re-seed
    assert "not applied: the store already has revision 2" in again.log_text()


def test_state_and_seed_together_are_refused(controller_factory, tmp_path, ovs):
    f = tmp_path / "state.yaml"
    write(f, {"aa": vm(1)})
    ctl = controller_factory(state_file=f, extra_args=["--vgw-seed", str(f)])
    ctl.start(wait=False)
    assert ctl.proc.wait(timeout=30) != 0
    assert "--vgw-state and --vgw-seed exclude each other" in ctl.log_text()
