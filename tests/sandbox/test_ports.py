"""Port identity from the real OVSDB: the directory, which re-reads only rows that
changed, always answers what a fresh replica answers (ports added, retagged, relabelled,
renumbered, removed), and keeps the Iface objects of the ports a change did not touch
(the port classification is kept by their identity)."""

from __future__ import annotations

import time

from vgw_lab import netlab as fx
from vgw_ryu.runtime.ports import PortDirectory

OVSDB = "unix:/var/run/openvswitch/db.sock"


def _settled(pd: PortDirectory, dpid: int, want) -> list:
    """Poll until the replica shows ``want(ifaces)``; the bridge's interfaces."""
    deadline = time.monotonic() + 10
    while True:
        pd.poll()
        got = pd.bridges().get(dpid, [])
        if want(got):
            return got
        assert time.monotonic() < deadline, f"the directory never showed it: {got}"
        time.sleep(0.02)


def _dpid(bridge: str) -> int:
    return int(fx.sh("ovs-vsctl", "get", "Bridge", bridge, "other_config:datapath-id")
               .strip().strip('"'), 16)


def _fresh(dpid: int) -> list:
    pd = PortDirectory(OVSDB)
    try:
        assert pd.wait_ready()
        return pd.bridges().get(dpid, [])
    finally:
        pd.close()


def test_the_directory_follows_changes_as_a_fresh_replica_sees_them(bridges):
    br = bridges()
    dpid = _dpid(br.name)
    pd = PortDirectory(OVSDB)
    try:
        assert pd.wait_ready()
        assert pd.datapath_types()[dpid] == "netdev"   # the lab bridges' datapath
        ports = [f"{br.name[-6:]}p{i}"[:15] for i in range(3)]
        cmd = ["ovs-vsctl"]
        for i, p in enumerate(ports):
            cmd += ["--", "add-port", br.name, p, "--", "set", "Interface", p,
                    "type=internal", f"ofport_request={i + 10}",
                    f"external_ids:vm-id=vm{i}"]
        fx.sh(*cmd)
        got = _settled(pd, dpid, lambda got: len([i for i in got if i.name in ports]) == 3)
        assert pd.bridges()[dpid] is got   # nothing changed: the very list
        steps = [   # (the port it changes, the command)
            (ports[0], ["set", "Interface", ports[0], "external_ids:vm-id=other"]),
            (ports[1], ["set", "Port", ports[1], "tag=42"]),
            (ports[2], ["set", "Interface", ports[2], "ofport_request=30"]),
            (ports[0], ["del-port", br.name, ports[0]]),
            (ports[0], ["add-port", br.name, ports[0], "--", "set", "Interface", ports[0],
                        "type=internal", "ofport_request=13", "external_ids:vm-id=back"]),
        ]
        for changed, step in steps:
            before = {i.name: i for i in got}
            fx.sh("ovs-vsctl", *step)
            want = _fresh(dpid)
            got = _settled(pd, dpid, lambda got, want=want: got == want)
            kept = [i.name for i in got if i.name != changed and i is before.get(i.name)]
            assert kept == [i.name for i in got if i.name != changed], \
                f"{step}: only {kept} of the untouched ports kept their Iface objects"
            assert [(i.name, i.ofport, i.external_ids.get("vm-id"), i.tag) for i in got
                    if i.name in ports] == \
                [(i.name, i.ofport, i.external_ids.get("vm-id"), i.tag) for i in want
                 if i.name in ports]
        final = {i.name: (i.ofport, i.external_ids.get("vm-id"), i.tag) for i in got}
        assert final[ports[0]] == (13, "back", None)
        assert final[ports[1]] == (11, "vm1", 42)
        assert final[ports[2]] == (30, "vm2", None)
    finally:
        pd.close()


def test_a_replica_emptied_without_notices_is_not_read_from_the_last_build(bridges):
    """On a reconnect the IDL empties its tables without change notices (and a database
    created afresh may send nothing back): the directory must not answer from before."""
    br = bridges()
    dpid = _dpid(br.name)
    pd = PortDirectory(OVSDB)
    try:
        assert pd.wait_ready()
        assert dpid in pd.bridges()
        pd.idl._Idl__clear()      # what the IDL does before a fresh monitor
        assert pd.bridges() == {}
    finally:
        pd.close()
