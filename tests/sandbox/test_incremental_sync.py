"""Incremental compile through the real app: after every change of a random sequence
(REST writes, VM ports coming and going), the bridge holds exactly what a fresh full
compile of the same state and ports gives, loaded by ovs-ofctl into a twin bridge."""

from __future__ import annotations

import copy
import random

import pytest

from tests.sandbox.test_app_sync import reference_table, table_text
from tests.unit.incremental_cases import CHANGES, random_doc, random_ports
from vgw_lab.netlab import delete_bridge, make_bridge, sh, uniq, wait_until
from vgw_ryu.compiler import PortFacts
from vgw_ryu.policy.model import ValidationError, parse_state


def _ids(p: PortFacts) -> dict[str, str]:
    """The external_ids that make the app see this port as ``p``."""
    if p.kind == "vm":
        return {"vm-id": p.vm}
    if p.kind == "uplink":
        return {"vgw-role": "uplink"}
    return {"attached-mac": p.mac} if p.mac else {}


class Ports:
    """Internal ports on a bridge kept equal to a list of PortFacts."""

    def __init__(self, bridge: str):
        self.bridge = bridge
        self.have: dict[int, tuple[str, dict[str, str]]] = {}   # ofport -> (name, ids)

    def match(self, ports: list[PortFacts]) -> None:
        want = {p.ofport: _ids(p) for p in ports}
        for ofport in [o for o in self.have if o not in want]:
            sh("ovs-vsctl", "del-port", self.bridge, self.have.pop(ofport)[0])
        for ofport, ids in want.items():
            if ofport in self.have and self.have[ofport][1] == ids:
                continue
            if ofport in self.have:
                sh("ovs-vsctl", "del-port", self.bridge, self.have.pop(ofport)[0])
            name = uniq("ti")
            sh("ovs-vsctl", "add-port", self.bridge, name, "--", "set", "Interface", name,
               "type=internal", f"ofport_request={ofport}",
               *[f"external_ids:{k}={v}" for k, v in ids.items()])
            self.have[ofport] = (name, ids)

    def ifaces(self):
        from vgw_ryu.runtime.ports import Iface
        return [Iface(name, ofport, "internal", dict(ids), self.bridge)
                for ofport, (name, ids) in sorted(self.have.items())]


def full_compile(controller, ports: Ports) -> str:
    """A fresh full compile of the controller's state for these ports (a second reader
    of its database and zone file)."""
    from vgw_ryu.compiler import compile_switch, render
    from vgw_ryu.runtime.engine import Engine
    from vgw_ryu.store.ovsdb import OvsdbStore
    from vgw_ryu.store.zonefile import ZoneFile

    store = OvsdbStore(f"unix:{controller.db}.sock")
    try:
        engine = Engine(store, ZoneFile(f"{controller.db}.zones.json"))
    finally:
        store.close()
    facts = engine.refresh_facts(1, ports.ifaces())
    return render(compile_switch(engine.state, facts, engine.ids, engine.effective))


def wait_equal(controller, bridge: str, ports: Ports, tmp_path, step: str) -> None:
    want = reference_table(tmp_path, full_compile(controller, ports))
    try:
        wait_until(lambda: table_text(bridge) == want, timeout=20,
                   what=f"the bridge to hold exactly the full compile after {step}")
    finally:
        got = table_text(bridge)
        assert (sorted(set(want) - set(got)), sorted(set(got) - set(want))) == ([], []), step


# (seed, --vgw-stream-chunk): 1 sends every new flow into the bundle while the compile
# runs (as 1,000 do at scale), 0 sends everything after it.
@pytest.mark.parametrize(("seed", "chunk"), [(3, 0), (11, 1), (5, 1)])
def test_random_changes_leave_the_bridge_equal_to_the_full_compile(controller_factory, ovs,
                                                                   tmp_path, seed, chunk):
    rng = random.Random(seed)
    doc = random_doc(rng)
    while True:
        try:
            parse_state(doc)
            break
        except ValidationError:
            doc = random_doc(rng)
    ctl = controller_factory(extra_args=["--vgw-stream-chunk", str(chunk)]).start()
    br = make_bridge()
    try:
        ports = Ports(br.name)
        facts = random_ports(rng, doc)
        ports.match(facts)
        status, body = ctl.request("PUT", "/v1/state", doc)
        assert status == 200, body
        sh("ovs-vsctl", "set-controller", br.name, f"tcp:127.0.0.1:{ctl.of_port}")
        wait_equal(ctl, br.name, ports, tmp_path, "the first state")
        done = 0
        while done < 8:
            new_doc, new_facts = copy.deepcopy(doc), list(facts)
            names = []
            for change in rng.sample(CHANGES, rng.choice([1, 1, 2])):
                change(rng, new_doc, new_facts)
                names.append(change.__name__.strip("_"))
            try:
                parse_state(new_doc)
            except ValidationError:
                continue
            doc, facts = new_doc, new_facts
            ports.match(facts)
            status, body = ctl.request("PUT", "/v1/state", doc)
            assert status == 200, body
            done += 1
            wait_equal(ctl, br.name, ports, tmp_path, f"step {done} ({', '.join(names)})")
        # The app's own syncs were incremental: most sent a handful of flow mods. None
        # failed or was refused (a later full resync would hide that from the bridge).
        log = ctl.log_text()
        assert "programmed" in log
        assert "failed; retrying" not in log and " error type=" not in log
        if chunk:
            wait_until(lambda: "sent during the compile" in ctl.log_text(), timeout=10,
                       what="a sync that sent flows while its compile ran")
            wait_equal(ctl, br.name, ports, tmp_path, "the last sync")
        else:
            assert "sent during the compile" not in ctl.log_text()
    finally:
        delete_bridge(br)
