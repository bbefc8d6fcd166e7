"""The controller starts as users start it and accepts a real netdev bridge."""

from vgw_lab.netlab import wait_until


def test_health_counts_a_connected_bridge(controller, bridges):
    status, health = controller.get("/v1/health")
    assert status == 200 and health.pop("database")["connected"] is True
    assert health == {"status": "ok", "revision": 0, "switches": 0}
    br = bridges(controller)
    wait_until(lambda: controller.get("/v1/health")[1]["switches"] == 1, timeout=15,
               what="bridge to connect")
    # The table-miss drop is installed at connect.
    wait_until(lambda: any(f.endswith("priority=0 actions=drop")
                           for f in br.dump_flows("table=0")),
               what="table-miss drop in table 0")


def test_refuses_off_loopback_without_token(controller_factory, ovs):
    ctl = controller_factory(extra_args=["--wsapi-host", "0.0.0.0"])
    ctl.start(wait=False)
    assert ctl.proc.wait(timeout=30) != 0
    assert "needs a token" in ctl.log_text()
