"""Port classification kept between syncs follows every change it depends on: the same
port objects, classified again by a state that declares, changes or removes their VM, or
changes the uplink names, come out as a fresh classification would."""

from __future__ import annotations

import random

from vgw_ryu.policy import model
from vgw_ryu.runtime.engine import Engine
from vgw_ryu.runtime.portclass import classify_port
from vgw_ryu.runtime.ports import Iface
from vgw_ryu.store.memory import MemoryStore
from vgw_ryu.store.zonefile import ZoneFile

IFACES = [Iface("tap-a", 1, "", {"vm-id": "a"}), Iface("tap-b", 2, "", {"iface-id": "b"}),
          Iface("eth9", 3, "", {}), Iface("tap-c", 4, "", {"attached-mac": "02:00:00:00:00:0c"}),
          Iface("up0", 5, "", {"vgw-role": "uplink"})]


def _vm(mac: str, ip: str) -> dict:
    return {"mac": mac, "ips": [ip]}


def test_kept_classifications_follow_the_state_they_were_read_from():
    e = Engine(MemoryStore(), ZoneFile(None))
    # One-object writes keep the settings object; the last step changes the settings.
    steps = [
        lambda st: st,
        lambda st: model.replace_object(st, "vms", "a", _vm("02:00:00:00:00:0a", "10.0.0.1")),
        lambda st: model.replace_object(st, "vms", "a", _vm("02:00:00:00:00:aa", "10.0.0.1")),
        lambda st: model.replace_object(st, "vms", "b", _vm("02:00:00:00:00:0b", "10.0.0.2")),
        lambda st: model.replace_object(st, "vms", "c", _vm("02:00:00:00:00:0c", "10.0.0.3")),
        lambda st: model.remove_object(st, "vms", "a"),
        lambda st: model.parse_state({**model.state_doc(st),
                                      "settings": {"uplinks": ["eth*"]}}),
    ]
    seen = []
    state = model.parse_state({"vms": {}})
    for step in steps:
        state = step(state)
        e.replace_state(state)
        for _ in range(2):   # the second time from what was kept
            got = e.refresh_facts(7, IFACES).ports
            assert got == tuple(classify_port(e.state, i, None) for i in IFACES)
        seen.append([(p.kind, p.vm, p.mac) for p in got])
    assert seen[0][0] == ("unknown", None, None)
    assert seen[1][0] == ("vm", "a", "02:00:00:00:00:0a")
    assert seen[2][0] == ("vm", "a", "02:00:00:00:00:aa")      # its MAC changed
    assert seen[3][1][:2] == ("vm", "b")                       # by iface-id
    assert seen[4][3][:2] == ("vm", "c")                       # by attached MAC
    assert seen[5][0][0] == "unknown" and seen[5][4][0] == "uplink"
    assert seen[5][2][0] == "unknown" and seen[6][2][0] == "uplink"   # eth9, by pattern


def test_random_vm_writes_keep_every_port_classified_as_afresh():
    """The same port objects through random one-VM writes, learned MACs and now and then
    a settings change: what is kept and what is read again always equals classifying
    every port from scratch."""
    rng = random.Random(7)
    macs = [f"02:00:00:00:00:{i:02x}" for i in range(1, 9)]
    names = [f"v{i}" for i in range(8)]
    ifaces = []
    for n in range(1, 40):
        kind = rng.random()
        eid = {}
        if kind < 0.4:
            eid["vm-id"] = rng.choice(names)
        elif kind < 0.55:
            eid["iface-id"] = rng.choice(names)
        elif kind < 0.75:
            eid["attached-mac"] = rng.choice(macs)
        elif kind < 0.8:
            eid["vgw-role"] = "uplink"
        ifaces.append(Iface(f"p{n}", n, "vxlan" if kind > 0.97 else "", eid))
    e = Engine(MemoryStore(), ZoneFile(None))
    for step in range(150):
        state = e.state
        what = rng.random()
        name = rng.choice(names)
        try:
            if what < 0.55:
                state = model.replace_object(state, "vms", name, _vm(
                    rng.choice(macs), f"10.0.0.{names.index(name) + 1}"))
            elif what < 0.75:
                if name in state.vms:
                    state = model.remove_object(state, "vms", name)
            elif what < 0.9:
                e.learn_mac(7, rng.randint(1, 39), rng.choice(macs))
            else:
                state = model.parse_state({**model.state_doc(state), "settings": {
                    "uplinks": rng.choice([[], ["p1*"], ["p2*"]])}})
        except model.ValidationError:
            pass   # e.g. two VMs with one MAC: refused, the state stays
        e.replace_state(state)
        got = e.refresh_facts(7, ifaces).ports
        want = tuple(classify_port(e.state, i, e.learned_mac(7, i.ofport)) for i in ifaces)
        assert got == want, step
