"""Reading ``ovs-appctl ofproto/trace`` output, on text captured from OVS 3.1.

The samples in data/ovstrace were captured once from flows/examples/three_tier.yaml
loaded on a netdev bridge (as tests/sandbox/test_compiled_flows.py does); the bridge
was renamed br0. Rule numbers there: app-in/from-web 1, db-in/no-out 3, web-in/http 5,
web-in/no-smtp 6, web-in/ssh 7. Ports: web1 1, app1 2, db1 3, jump1 4, uplink 9.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from vgw_ryu.runtime import ovstrace
from vgw_ryu.runtime.ovstrace import _split_top, parse

DATA = Path(__file__).parent / "data" / "ovstrace"
LOCAL = 65534
ODP = {2: 1, 3: 2, 4: 3, 5: 4, 6: 9, 1: LOCAL}   # dpif.txt: datapath -> OpenFlow


def sample(name: str) -> str:
    return (DATA / f"{name}.txt").read_text()


def test_odp_ports_reads_dpif_show(monkeypatch):
    text = sample("dpif")
    calls = []

    def fake_run(args, **kw):
        calls.append(args)
        return subprocess.CompletedProcess(args, 0, stdout=text, stderr="")

    monkeypatch.setattr(ovstrace.subprocess, "run", fake_run)
    assert ovstrace.odp_ports("br0") == ODP
    assert ovstrace.odp_ports("other") == {}
    assert calls[0] == ["ovs-appctl", "dpif/show"]


def test_odp_ports_only_of_the_named_bridge(monkeypatch):
    text = ("netdev@ovs-netdev: hit:0 missed:0\n"
            "  br0:\n    br0 65534/1: (tap)\n    p1 1/2: (tap)\n"
            "  br1:\n    br1 65534/3: (tap)\n    q7 7/4: (tap)\n")
    monkeypatch.setattr(ovstrace.subprocess, "run", lambda args, **kw:
                        subprocess.CompletedProcess(args, 0, stdout=text, stderr=""))
    assert ovstrace.odp_ports("br1") == {3: LOCAL, 4: 7}
    assert ovstrace.odp_ports("br0") == {1: LOCAL, 2: 1}


def test_allowed_and_logged_ingress():
    r = parse(sample("ssh_log"), ODP)
    assert r.outputs == {1} and r.forwarded
    assert r.punts == {"log"}
    assert r.committed and r.commits == 1 and not r.blocked
    assert r.rules == [7]
    assert r.tables == [0, 40, 45, 50, 60, 55, 100]
    assert r.text == sample("ssh_log")


def test_allowed_ingress_without_log():
    r = parse(sample("allow_http"), ODP)
    assert r.outputs == {1} and r.committed and not r.punts
    assert r.rules == [5]


def test_reject_punts_without_forwarding():
    r = parse(sample("reject_smtp"), ODP)
    assert r.punts == {"reject"} and not r.forwarded
    assert not r.committed and r.commits == 0
    assert r.rules == [6]
    assert r.tables[-1] == 101


def test_default_deny_is_a_drop_without_rule():
    r = parse(sample("default_deny"), ODP)
    assert not r.forwarded and not r.committed and not r.punts
    assert r.rules == []              # the default flow's cookie is not a rule's
    assert 60 in r.tables


def test_egress_default_allow_floods_by_normal():
    r = parse(sample("egress_normal"), ODP)
    assert r.outputs == {LOCAL, 2, 3, 4, 9}       # every port but the one it came in by
    assert r.committed and r.commits == 1
    assert 90 in r.tables and r.rules == []


def test_vm_to_vm_commits_in_both_zones():
    r = parse(sample("vm_to_vm"), ODP)
    assert r.outputs == {2}
    assert r.commits == 2 and r.committed
    assert r.rules == [1]
    assert r.tables == [0, 10, 20, 30, 60, 35, 40, 45, 50, 60, 55]


def test_established_passes_without_commit():
    r = parse(sample("est"), ODP)
    assert r.outputs == {1} and not r.committed
    assert r.rules == [5]


def test_spoofed_source_dropped_before_conntrack():
    r = parse(sample("spoof"), ODP)
    assert r.tables == [0, 10]        # "10. No match." still counts as visited
    assert not r.forwarded and not r.committed and r.rules == []


def test_unmapped_datapath_port_is_kept_negative():
    r = parse(sample("ssh_log"), {})
    assert r.outputs == {-2}
    assert r.forwarded


def test_blocked_commit_and_foreign_cookies():
    text = (" 0. in_port=1, priority 100, cookie 0x1234\n"
            "    goto_table:35\n"
            "35. ct_state=+est+trk, priority 100, cookie 0x76300009197dbce4\n"
            "Datapath actions: ct(commit,zone=3,mark=0x80000000/0x80000000),drop\n")
    r = parse(text, {})
    assert r.committed and r.blocked and r.commits == 1
    assert r.rules == [9] and r.tables == [0, 35]
    assert not r.forwarded


def test_empty_text():
    r = parse("", {})
    assert (r.outputs, r.punts, r.tables, r.rules, r.committed) == (set(), set(), [], [], False)


@pytest.mark.parametrize("actions,parts", [
    ("drop", ["drop"]),
    ("ct(commit,zone=3),2", ["ct(commit,zone=3)", "2"]),
    ("ct(commit,zone=3,nat(src=1.2.3.4)),ct(zone=1),recirc(0xf0)",
     ["ct(commit,zone=3,nat(src=1.2.3.4))", "ct(zone=1)", "recirc(0xf0)"]),
    ("meter(1),userspace(pid=0,controller(reason=1,dont_send=1))",
     ["meter(1)", "userspace(pid=0,controller(reason=1,dont_send=1))"]),
    ("", []),
])
def test_split_top_level_actions(actions, parts):
    assert _split_top(actions) == parts


def test_trace_runs_ovs_appctl_with_ct_states(monkeypatch):
    calls = []

    def fake_run(args, **kw):
        calls.append(args)
        out = sample("dpif") if args[1] == "dpif/show" else sample("ssh_log")
        return subprocess.CompletedProcess(args, 0, stdout=out, stderr="")

    monkeypatch.setattr(ovstrace.subprocess, "run", fake_run)
    r = ovstrace.trace("br0", "in_port=4,tcp", ["trk,new", "trk,est"])
    assert calls[0] == ["ovs-appctl", "ofproto/trace", "br0", "in_port=4,tcp",
                        "--ct-next", "trk,new", "--ct-next", "trk,est"]
    assert r.outputs == {1} and r.rules == [7]


def test_trace_failure_raises_with_stderr(monkeypatch):
    monkeypatch.setattr(ovstrace.subprocess, "run", lambda args, **kw:
                        subprocess.CompletedProcess(args, 2, stdout="",
                                                    stderr="no bridge named br9\n"))
    with pytest.raises(RuntimeError, match="no bridge named br9"):
        ovstrace.trace("br9", "in_port=1")
