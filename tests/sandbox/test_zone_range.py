"""--vgw-zone-range: the real controller numbers its VMs' conntrack zones only in the
range it was given (so other users of the host's connection table keep theirs), says
so when the range is full, and moves VMs into a new range, flushing their old zones.
Needs root and Open vSwitch."""

from __future__ import annotations

import re

from vgw_lab.netlab import add_internal_port, sh, wait_until


def _state(names: list[str]) -> dict:
    return {"vms": {n: {"mac": f"02:00:00:00:7e:{i + 1:02x}", "ips": [f"10.247.0.{i + 1}"]}
                    for i, n in enumerate(names)}}


def _zones(ctl) -> dict[str, int]:
    return {n: v["zone"] for n, v in ctl.get("/v1/vms")[1]["vms"].items()}


def _zone_loads(br) -> set[int]:
    """The zones the bridge's classify flows load into reg6 for the VM ports."""
    return {int(z, 16) for z in re.findall(r"load:(0x[0-9a-f]+)->NXM_NX_REG6",
                                           " ".join(br.dump_flows("table=0")))}


def test_zones_come_from_the_range_and_move_when_it_does(controller_factory, bridges):
    ctl = controller_factory(extra_args=["--vgw-zone-range", "300-301"]).start()
    br = bridges(ctl)
    for ofport, name in ((1, "a"), (2, "b")):
        port = add_internal_port(br, ofport)
        sh("ovs-vsctl", "set", "Interface", port, f"external_ids:vm-id={name}")
    status, body = ctl.request("PUT", "/v1/state", _state(["a", "b"]))
    assert status == 200, body
    assert _zones(ctl) == {"a": 300, "b": 301}
    wait_until(lambda: _zone_loads(br) == {300, 301}, timeout=15,
               what="the VM ports' classify flows to load zones 300 and 301")

    # A third protected VM does not fit: 409 naming the option, nothing written.
    rev = ctl.get("/v1/state")[1]["revision"]
    status, body = ctl.request("PUT", "/v1/vms/c", _state(["a", "b", "c"])["vms"]["c"])
    assert status == 409, body
    assert body["error"]["code"] == "out_of_zones", body
    assert "--vgw-zone-range" in body["error"]["message"], body
    assert ctl.get("/v1/state")[1]["revision"] == rev
    assert "c" not in ctl.get("/v1/vms")[1]["vms"]

    # Restarted with another range: the VMs get zones in it, the old ones are flushed.
    ctl.stop()
    ctl.extra_args = ["--vgw-zone-range", "500-599"]
    ctl.start()
    assert _zones(ctl) == {"a": 500, "b": 501}
    wait_until(lambda: _zone_loads(br) == {500, 501}, timeout=15,
               what="the classify flows to load the new zones")
    log = ctl.log_text()
    assert "vm a: zone 300 is outside the zone range 500-599: it now has zone 500" in log, log
    wait_until(lambda: all(f"zone {z} of vm" in ctl.log_text() for z in (300, 301)),
               timeout=15, what="the old zones' connection-table flushes")


def test_a_bad_zone_range_stops_the_start_naming_the_option(controller_factory, ovs):
    for bad in ("0-10", "9-3", "1000", "1-70000"):
        ctl = controller_factory(extra_args=["--vgw-zone-range", bad])
        ctl.start(wait=False)
        assert ctl.proc.wait(timeout=60) != 0, bad
        log = ctl.log_text()
        assert "--vgw-zone-range" in log and repr(bad) in log, log
