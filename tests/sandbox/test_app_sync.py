"""The app programs a real bridge with exactly the compiler's flows, and keeps it so."""

import re
import time

import pytest
import yaml

from vgw_lab.netlab import (
    add_internal_port,
    delete_bridge,
    load_flows,
    make_bridge,
    sh,
    wait_until,
)

STATE = {
    "vms": {
        "a": {"mac": "02:00:00:00:aa:01", "ips": ["10.231.0.1", "fd00:231::1"],
              "labels": {"role": "client"}},
        "b": {"mac": "02:00:00:00:aa:02", "ips": ["10.231.0.2"], "labels": {"role": "srv"}},
        "c": {"mac": "02:00:00:00:aa:03", "ips": ["10.231.0.3"], "protected": False},
    },
    "groups": {"clients": {"match_labels": {"role": "client"}, "cidrs": ["192.0.2.0/24"]}},
    "policies": {"srv": {"applied_to": ["vm:b"], "rules": [
        {"id": "web", "direction": "ingress", "action": "allow", "protocol": "tcp",
         "ports": "80,8000-8010", "peer": "group:clients", "log": True},
        {"id": "ping", "direction": "ingress", "action": "allow", "protocol": "icmp"},
        {"id": "smtp", "direction": "egress", "action": "reject", "protocol": "tcp",
         "ports": "25"},
        {"id": "v6", "direction": "ingress", "action": "deny", "protocol": "icmpv6",
         "peer": "cidr:fd00::/8"},
        # Every kind of match the app must encode exactly as ovs-ofctl does.
        {"id": "echo6", "direction": "ingress", "action": "allow", "protocol": "icmpv6",
         "icmp_type": 128, "icmp_code": 0},
        {"id": "mask", "direction": "egress", "action": "deny", "protocol": "icmp",
         "icmp_type": 17},
        {"id": "ntp", "direction": "ingress", "action": "allow", "protocol": "udp",
         "src_ports": "123", "ports": "1024-65535", "stateful": False},
        {"id": "gre", "direction": "ingress", "action": "allow", "protocol": 47},
    ]}},
}

STATS = re.compile(r"(duration|n_packets|n_bytes|idle_age|hard_age)=[^,\s]+,?\s*")


def table_text(bridge):
    out = sh("ovs-ofctl", "-O", "OpenFlow13,OpenFlow14", "dump-flows", bridge)
    return sorted(STATS.sub("", ln).strip() for ln in out.splitlines()
                  if ln.strip().startswith("cookie="))


def durations(bridge):
    out = sh("ovs-ofctl", "-O", "OpenFlow13,OpenFlow14", "dump-flows", bridge)
    d = {}
    for ln in out.splitlines():
        m = re.search(r"cookie=(0x[0-9a-f]+), duration=([\d.]+)s", ln)
        if m:
            d[m.group(1)] = float(m.group(2))
    return d


def attach_ports(br):
    for name, ofport in (("a", 1), ("b", 2), ("c", 3)):
        port = add_internal_port(br, ofport)
        sh("ovs-vsctl", "set", "Interface", port, f"external_ids:vm-id={name}")
    up = add_internal_port(br, 9)
    sh("ovs-vsctl", "set", "Interface", up, "external_ids:vgw-role=uplink")


@pytest.fixture
def state_file(tmp_path):
    f = tmp_path / "state.yaml"
    f.write_text(yaml.safe_dump(STATE))
    return f


def reference_table(tmp_path, flows_text):
    """The same flows loaded by ovs-ofctl into a twin bridge, as OVS prints them."""
    twin = make_bridge()
    try:
        load_flows(twin, flows_text, tmp_path / "twin.flows")
        return table_text(twin.name)
    finally:
        delete_bridge(twin)


def expected_flows(controller):
    from vgw_ryu.compiler import compile_switch, render
    from vgw_ryu.runtime.engine import Engine
    from vgw_ryu.runtime.ports import Iface
    from vgw_ryu.store.ovsdb import OvsdbStore
    from vgw_ryu.store.zonefile import ZoneFile

    # A second reader of the controller's own database and zone file.
    store = OvsdbStore(f"unix:{controller.db}.sock")
    engine = Engine(store, ZoneFile(f"{controller.db}.zones.json"))
    store.close()
    ifaces = [Iface(f"p{n}", o, "internal", ids) for n, o, ids in (
        ("a", 1, {"vm-id": "a"}), ("b", 2, {"vm-id": "b"}), ("c", 3, {"vm-id": "c"}),
        ("up", 9, {"vgw-role": "uplink"}))]
    facts = engine.refresh_facts(1, ifaces)
    return render(compile_switch(engine.state, facts, engine.ids, engine.effective))


def wait_exact(controller, bridge, tmp_path):
    """Wait until the bridge holds exactly the compiled flows; fail with the diff."""
    want = reference_table(tmp_path, expected_flows(controller))
    try:
        wait_until(lambda: table_text(bridge) == want, timeout=15,
                   what="the bridge to hold exactly the compiled flows")
    finally:
        got = table_text(bridge)
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        assert (missing, extra) == ([], [])


@pytest.mark.parametrize("protocols", ["OpenFlow13", "OpenFlow14"])
def test_app_installs_exactly_the_compiled_flows(controller_factory, ovs, tmp_path,
                                                 state_file, protocols):
    ctl = controller_factory(state_file=state_file).start()
    br = make_bridge()
    try:
        sh("ovs-vsctl", "set", "Bridge", br.name, f"protocols={protocols}")
        attach_ports(br)
        sh("ovs-vsctl", "set-controller", br.name, f"tcp:127.0.0.1:{ctl.of_port}")
        wait_exact(ctl, br.name, tmp_path)
        assert "error" not in ctl.log_text().lower()
    finally:
        delete_bridge(br)


def test_restart_and_reconnect_without_churn_and_drift_repair(controller_factory, ovs,
                                                              state_file, tmp_path):
    ctl = controller_factory(state_file=state_file,
                             extra_args=["--vgw-audit-interval", "1"]).start()
    br = make_bridge()
    try:
        attach_ports(br)
        sh("ovs-vsctl", "set-controller", br.name, f"tcp:127.0.0.1:{ctl.of_port}")
        wait_exact(ctl, br.name, tmp_path)
        before = durations(br.name)
        # kill -9 and restart: same flows, none re-added (durations keep counting).
        ctl.kill9()
        time.sleep(1.2)
        ctl.start()
        wait_until(lambda: ctl.get("/v1/switches")[1]["switches"][0]["applied_revision"] == 1,
                   what="resync after restart")
        wait_exact(ctl, br.name, tmp_path)
        after = durations(br.name)
        assert set(after) == set(before)
        assert all(after[c] >= before[c] + 1.0 for c in before), "a flow was re-added"
        # Drift: a flow deleted by hand comes back; a stray flow in a vgw table goes.
        victim = next(ln for ln in table_text(br.name) if "table=10" in ln)
        cookie = re.search(r"cookie=(0x[0-9a-f]+)", victim).group(1)
        sh("ovs-ofctl", "-O", "OpenFlow14", "del-flows", br.name,
           f"cookie={cookie}/-1")
        sh("ovs-ofctl", "-O", "OpenFlow14", "add-flow", br.name,
           "table=90,priority=500,ip actions=drop")
        wait_until(lambda: any(cookie in ln for ln in table_text(br.name))
                   and not any("priority=500" in ln for ln in table_text(br.name)),
                   timeout=10, what="audit to repair drift")
        # The audit logged what it fixed (in one pass or two, as the edits fell).
        log = ctl.log_text()
        assert re.search(r"programmed: \+1 -[01] flows", log), log[-2000:]
        assert re.search(r"programmed: \+[01] -1 flows", log), log[-2000:]
    finally:
        delete_bridge(br)
