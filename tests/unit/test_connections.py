"""A VM's connection table from dpctl/dump-conntrack output (captured on OVS 3.1)."""

from __future__ import annotations

import ipaddress

from vgw_ryu.policy.ids import Ids
from vgw_ryu.policy.model import parse_state
from vgw_ryu.runtime import connections as c

DUMP = """\
tcp,orig=(src=10.244.0.1,dst=10.244.0.2,sport=48540,dport=80),reply=(src=10.244.0.2,dst=10.244.0.1,sport=80,dport=48540),zone=7,timeout=29,mark=2147483648,labels=0x100000001,protoinfo=(state=ESTABLISHED)
udp,orig=(src=10.244.0.9,dst=10.244.0.1,sport=47401,dport=53),reply=(src=10.244.0.1,dst=10.244.0.9,sport=53,dport=47401),zone=7,timeout=29,labels=0x100000000
tcp,orig=(src=fd00:244::1,dst=fd00:244::2,sport=35894,dport=80),reply=(src=fd00:244::2,dst=fd00:244::1,sport=80,dport=35894),zone=7,protoinfo=(state=TIME_WAIT)
icmp,orig=(src=10.244.0.1,dst=10.244.0.2,id=8803,type=8,code=0),reply=(src=10.244.0.2,dst=10.244.0.1,id=8803,type=0,code=0),zone=7,mark=2147483648,labels=0x5
not a conntrack line
"""
IP = ipaddress.ip_address
VM_IPS = {IP("10.244.0.1"), IP("fd00:244::1")}


def _ids() -> Ids:
    ids = Ids()
    ids.sync(parse_state({"vms": {"a": {}}, "policies": {"p": {"applied_to": ["vm:a"],
          "rules": [{"id": "http", "direction": "egress", "action": "allow"}]}}}))
    return ids


def test_parse_dump():
    es = c.parse_dump(DUMP)
    assert [e.protocol for e in es] == ["tcp", "udp", "tcp", "icmp"]
    assert es[0].orig["dport"] == "80" and es[0].zone == 7 and es[0].mark == 0x80000000
    assert es[0].label == 0x100000001 and es[0].state == "ESTABLISHED" and es[0].timeout == 29
    assert es[2].mark == 0 and es[2].label == 0 and es[2].timeout is None
    assert es[3].state is None and es[3].orig["type"] == "8"


def test_view_sides_rules_and_blocked():
    v = c.view(c.parse_dump(DUMP), VM_IPS, _ids())
    rows = v["connections"]
    assert v["total"] == 4 and not v["truncated"]
    assert [r["direction"] for r in rows] == ["egress", "ingress", "egress", "egress"]
    assert rows[0]["rule"] == "p/http" and rows[0]["blocked"] is True
    assert rows[1]["rule"] == "default" and rows[1]["blocked"] is False
    assert rows[2]["rule"] is None          # no label: committed before labels
    assert rows[3]["rule"] is None and rows[3]["type"] == 8


def test_view_filters_and_limit():
    es = c.parse_dump(DUMP)
    assert c.view(es, VM_IPS, _ids(), peer=IP("10.244.0.9"))["total"] == 1
    assert c.view(es, VM_IPS, _ids(), port=80)["total"] == 2
    assert c.view(es, VM_IPS, _ids(), rule="p/http")["total"] == 1
    v = c.view(es, VM_IPS, _ids(), limit=1)
    assert v["total"] == 4 and len(v["connections"]) == 1 and v["truncated"]


def test_entries_of_other_addresses_are_not_the_vms():
    other = "udp,orig=(src=10.9.9.1,dst=10.9.9.2,sport=1,dport=2),reply=(src=10.9.9.2,dst=10.9.9.1,sport=2,dport=1),zone=7\n"  # noqa: E501
    assert c.view(c.parse_dump(DUMP + other), VM_IPS, _ids())["total"] == 4
