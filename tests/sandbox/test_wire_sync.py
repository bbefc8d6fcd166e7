"""The app's flow mods are bytes from pipeline.wire, framed into bundles (OpenFlow 1.4)
or plain flow mods and a barrier (1.3), many messages per socket write. A state large
enough for several writes must land exactly as the compiler makes it, and so must a
change that deletes flows the first sync added (deletes by recorded match bytes)."""

from __future__ import annotations

import copy
import re

import pytest

from vgw_lab.bench.scale import scale_state
from vgw_lab.netlab import (
    Bridge,
    add_internal_port,
    delete_bridge,
    load_flows,
    make_bridge,
    sh,
    wait_until,
)
from vgw_ryu.compiler import SwitchFacts, compile_switch, render
from vgw_ryu.pipeline import wire
from vgw_ryu.pipeline.flows import Flow
from vgw_ryu.policy.ids import Ids
from vgw_ryu.policy.model import parse_state
from vgw_ryu.runtime.engine import classify_port
from vgw_ryu.runtime.ports import Iface

N_VMS = 200      # ~5,800 flows, ~0.65 MB of flow mods: several writes of wire.DEFAULT_CHUNK
UPLINK = 900
STATS = re.compile(r"(duration|n_packets|n_bytes|idle_age|hard_age)=[^,\s]+,?\s*")
EXTRA_RULES = [   # next to the bench's 20 group rules: logging, reject, ICMP, stateless
    {"id": "ssh", "direction": "ingress", "action": "allow", "protocol": "tcp",
     "ports": "22", "peer": "cidr:192.0.2.0/24", "log": True},
    {"id": "smtp", "direction": "egress", "action": "reject", "protocol": "tcp",
     "ports": "25"},
    {"id": "echo", "direction": "ingress", "action": "allow", "protocol": "icmp",
     "icmp_type": 8, "icmp_code": 0},
    {"id": "dns", "direction": "egress", "action": "allow", "protocol": "udp",
     "ports": "53", "stateful": False},
]


def first_state() -> dict:
    doc = scale_state(N_VMS)
    doc["policies"]["p"]["rules"] += copy.deepcopy(EXTRA_RULES)
    doc["vms"]["vm0"]["log"] = "all"   # a VM log meter
    doc["vms"]["vm1"]["address_pairs"] = [{"ip": "10.77.0.0/24", "mac": "02:00:5e:00:01:01"}]
    return doc


def changed_state(doc: dict) -> dict:
    """Every rule on other ports, one rule gone, one new: deletes and adds."""
    new = copy.deepcopy(doc)
    rules = new["policies"]["p"]["rules"]
    for r in rules:
        if "ports" in r and r["protocol"] == "tcp":
            r["ports"] = str(int(r["ports"].split("-")[0].split(",")[0]) + 1)
    del rules[3]
    rules.append({"id": "new", "direction": "ingress", "action": "allow",
                  "protocol": "udp", "ports": "4789", "peer": "group:g1"})
    del new["vms"]["vm1"]["address_pairs"]
    return new


def table_text(bridge: str) -> list[str]:
    out = sh("ovs-ofctl", "-O", "OpenFlow13,OpenFlow14", "dump-flows", bridge, timeout=60)
    return sorted(STATS.sub("", ln).strip() for ln in out.splitlines()
                  if ln.strip().startswith("cookie="))


def attach_ports(br: Bridge) -> list[Iface]:
    """Patch ports for the VMs (cheap, with ofports and vm-ids) and an uplink."""
    ifaces, cmd = [], ["ovs-vsctl"]
    for i in range(N_VMS):
        port = f"w{i}{br.name[-8:]}"[:15]
        ids = {"vm-id": f"vm{i}"}
        cmd += ["--", "add-port", br.name, port, "--", "set", "Interface", port,
                "type=patch", f"options:peer=none-{port}", f"ofport_request={i + 1}",
                f"external_ids:vm-id=vm{i}"]
        ifaces.append(Iface(port, i + 1, "patch", ids))
    sh(*cmd, timeout=120)
    up = add_internal_port(br, UPLINK)
    sh("ovs-vsctl", "set", "Interface", up, "external_ids:vgw-role=uplink")
    return [*ifaces, Iface(up, UPLINK, "internal", {"vgw-role": "uplink"})]


def compiled(history: list[dict], ifaces: list[Iface]) -> list[Flow]:
    """The compiler's flows after the same state history as the app's (rule numbers and
    zones follow the history), for these ports classified as the engine does."""
    ids = Ids()
    for doc in history:
        state = parse_state(doc)
        ids.sync(state)
    facts = SwitchFacts(tuple(classify_port(state, i, None) for i in ifaces))
    return compile_switch(state, facts, ids)


def expected_table(flows: list[Flow], tmp_path) -> list[str]:
    """Flows loaded by ovs-ofctl into a twin bridge, read back as OVS prints them."""
    twin = make_bridge()
    try:
        load_flows(twin, render(flows), tmp_path / "twin.flows")
        return table_text(twin.name)
    finally:
        delete_bridge(twin)


def wait_exact(bridge: str, want: list[str], what: str) -> None:
    try:
        wait_until(lambda: table_text(bridge) == want, timeout=60, interval=0.2, what=what)
    finally:
        got = table_text(bridge)
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        assert (missing[:5], extra[:5]) == ([], []), f"{len(missing)} missing, {len(extra)} extra"


@pytest.mark.parametrize("protocols", ["OpenFlow13", "OpenFlow14"])
def test_many_writes_land_exactly_and_a_change_deletes_by_recorded_match(
        controller_factory, ovs, tmp_path, protocols):
    ctl = controller_factory(extra_args=["--vgw-audit-interval", "0"]).start()
    br = make_bridge()
    try:
        sh("ovs-vsctl", "set", "Bridge", br.name, f"protocols={protocols}")
        ifaces = attach_ports(br)
        sh("ovs-vsctl", "set-controller", br.name, f"tcp:127.0.0.1:{ctl.of_port}")
        doc = first_state()
        status, body = ctl.request("PUT", "/v1/state", doc, timeout=120)
        assert status == 200, body
        flows = compiled([doc], ifaces)
        # Big enough that the bundle (or the 1.3 flow mods) took several socket writes.
        assert sum(8 + len(wire.add(f)) for f in flows) > 2 * wire.DEFAULT_CHUNK
        want = expected_table(flows, tmp_path)
        wait_exact(br.name, want, "the first state programmed")

        new = changed_state(doc)
        status, body = ctl.request("PUT", "/v1/state", new, timeout=120)
        assert status == 200, body
        want2 = expected_table(compiled([doc, new], ifaces), tmp_path)
        assert set(want) - set(want2) and set(want2) - set(want)   # deletes and adds
        wait_exact(br.name, want2, "the change programmed")

        log = ctl.log_text()
        changes = [(int(a), int(d)) for a, d in
                   re.findall(r"programmed: \+(\d+) -(\d+) flows", log)]
        assert any(a > 1000 for a, _ in changes), log[-3000:]    # the first state
        assert any(d > 0 for _, d in changes), log[-3000:]       # the change deleted
        version = {"OpenFlow13": "0x4", "OpenFlow14": "0x5"}[protocols]
        assert f"(OpenFlow {version})" in log
        assert "error" not in log.lower(), log[-3000:]
    finally:
        delete_bridge(br)
