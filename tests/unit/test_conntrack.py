"""Connection-table hygiene: the flush plan of a state change and its OpenFlow encoding.

The expected bytes were captured from ``ovs-ofctl -O OpenFlow13 ct-flush`` (OVS 3.1)
talking to a fake switch, so the encoding is the one OVS itself sends.
"""

from __future__ import annotations

import ipaddress
import struct

import pytest

from vgw_ryu.policy.model import parse_state
from vgw_ryu.runtime import conntrack as ct

IP = ipaddress.ip_address


def _wire(subtype: int, body: bytes, xid: int = 2) -> str:
    payload = struct.pack("!II", ct.NX_VENDOR_ID, subtype) + body
    return (struct.pack("!BBHI", 4, 4, 8 + len(payload), xid) + payload).hex()


@pytest.mark.parametrize("kw,captured", [
    ({"zone": 5, "src": IP("10.0.0.7")},  # ct-flush zone=5 ct_nw_src=10.0.0.7
     "04040040000000020000232000000020000000000000000000000020000000000000001400000000"
     "000000000000ffff0a000007000000000002000800050000"),
    ({"zone": 9, "dst": IP("10.0.0.7")},  # ct-flush zone=9 ct_nw_dst=10.0.0.7
     "04040040000000020000232000000020000000000000000000000020000000000001001400000000"
     "000000000000ffff0a000007000000000002000800090000"),
    ({"zone": 9, "src": IP("fd00::7")},  # ct-flush zone=9 ct_ipv6_src=fd00::7
     "040400400000000200002320000000200000000000000000000000200000000000000014fd000000"
     "000000000000000000000007000000000002000800090000"),
])
def test_flush_tuple_matches_what_ovs_ofctl_sends(kw, captured):
    assert _wire(ct.NXT_CT_FLUSH, ct.flush_tuple_body(**kw)) == captured


def test_flush_zone_encoding():
    # ovs-ofctl ofp-print decodes this as "NXT_CT_FLUSH_ZONE (OF1.3): zone_id=5"
    assert _wire(ct.NXT_CT_FLUSH_ZONE, ct.flush_zone_body(5), 7) == \
        "0404001800000007000023200000001d0000000000000005"


def _state(vms: dict) -> object:
    return parse_state({"vms": vms})


A = {"mac": "02:00:00:00:00:0a", "ips": ["10.0.0.10", "fd00::10"]}
B = {"mac": "02:00:00:00:00:0b", "ips": ["10.0.0.11"]}


def test_deleted_vm_flushes_its_zone_and_its_addresses():
    p = ct.plan(_state({"a": A, "b": B}), _state({"b": B}), {"a": 1, "b": 2})
    assert p.zones == [ct.ZoneFlush(1, "a", "vm deleted")]
    assert [(str(x.addr), x.reason) for x in p.addresses] == \
        [("10.0.0.10", "vm deleted"), ("fd00::10", "vm deleted")]


def test_removed_ip_flushes_only_that_address():
    b2 = {**B, "ips": ["10.0.0.11", "10.0.0.12"]}
    p = ct.plan(_state({"b": b2}), _state({"b": B}), {"b": 2})
    assert p.zones == []
    assert [(str(x.addr), x.vm, x.reason) for x in p.addresses] == \
        [("10.0.0.12", "b", "address removed")]


def test_unprotected_vm_flushes_zone_and_addresses():
    p = ct.plan(_state({"b": B}), _state({"b": {**B, "protected": False}}), {"b": 2})
    assert p.zones == [ct.ZoneFlush(2, "b", "vm unprotected")]
    assert [str(x.addr) for x in p.addresses] == ["10.0.0.11"]


@pytest.mark.parametrize("after", [
    {"b": B},                                    # nothing changed
    {"b": {**B, "labels": {"tier": "web"}}},     # labels only
    {"b": {**B, "ips": ["10.0.0.11", "10.0.0.99"]}},  # an address added
    {"b": B, "c": {"mac": "02:00:00:00:00:0c"}},     # a VM added
])
def test_changes_that_free_nothing_flush_nothing(after):
    assert not ct.plan(_state({"b": B}), _state(after), {"b": 2})


def test_messages_skip_zones_flushed_whole_and_cover_both_directions():
    p = ct.plan(_state({"a": A, "b": B}), _state({"b": B}), {"a": 1, "b": 2})
    msgs = list(ct.iter_messages(p, {1, 2, 3}))
    zone_msgs = [m for m in msgs if m[0] == ct.NXT_CT_FLUSH_ZONE]
    tuple_msgs = [m for m in msgs if m[0] == ct.NXT_CT_FLUSH]
    assert [m[1] for m in zone_msgs] == [ct.flush_zone_body(1)]
    # 2 addresses x zones {2, 3} x (source, destination)
    assert len(tuple_msgs) == 8
    assert (ct.NXT_CT_FLUSH, ct.flush_tuple_body(3, dst=IP("10.0.0.10"))) in \
        [(m[0], m[1]) for m in tuple_msgs]
    in_zone_1 = {ct.flush_tuple_body(1, **{side: IP(a)}) for a in A["ips"]
                 for side in ("src", "dst")}
    assert not in_zone_1 & {m[1] for m in tuple_msgs}


def test_messages_made_as_sent_are_the_plans_messages_and_counted_up_front():
    p = ct.plan(_state({"a": A, "b": B}), _state({"b": B}), {"a": 1, "b": 2})
    zones = set(range(1, 40))
    made = ct.iter_messages(p, zones)
    assert not isinstance(made, list)          # a generator: nothing held at once
    made = list(made)
    assert made[0] == (ct.NXT_CT_FLUSH_ZONE, ct.flush_zone_body(1))
    assert len(set(made)) == len(made)
    assert ct.message_count(p, zones) == len(made) == 1 + 2 * 2 * 38


def test_a_flush_goes_to_one_switch_per_datapath_and_to_every_unknown_one():
    types = {1: "netdev", 2: "netdev", 3: "system", 5: "netdev", 6: "system"}
    assert ct.one_per_datapath([2, 1, 4, 3, 5, 6, 7], types) == [2, 4, 3, 7]
    assert ct.one_per_datapath([], types) == []


# A connection table as ``dpctl/dump-conntrack`` prints it (zone 0 has no zone field).
DUMP = """\
tcp,orig=(src=10.0.0.1,dst=10.0.0.20,sport=40000,dport=80),reply=(src=10.0.0.20,dst=10.0.0.1,sport=80,dport=40000),zone=2,mark=0x1,labels=0x100000003,protoinfo=(state=ESTABLISHED)
udp,orig=(src=10.0.0.30,dst=10.0.0.1,sport=53,dport=5353),reply=(src=10.0.0.1,dst=10.0.0.30,sport=5353,dport=53),zone=3
icmp,orig=(src=10.0.0.1,dst=10.0.0.40,id=7,type=8,code=0),reply=(src=10.0.0.40,dst=10.0.0.1,id=7,type=0,code=0),zone=1
icmp,orig=(src=10.0.0.1,dst=10.0.0.40,id=8,type=8,code=0),reply=(src=10.0.0.40,dst=10.0.0.1,id=8,type=0,code=0)
gre,orig=(src=fd00:0::10,dst=fd00::99),reply=(src=fd00::99,dst=fd00::10),zone=12
tcp,orig=(src=10.0.0.5,dst=10.0.0.6,sport=1,dport=2),reply=(src=10.0.0.6,dst=10.0.0.5,sport=2,dport=1),zone=2
"""


def test_held_addresses_reads_zone_source_and_destination_of_each_entry():
    assert list(ct.held_addresses(DUMP)) == [
        (2, "10.0.0.1", "10.0.0.20"), (3, "10.0.0.30", "10.0.0.1"), (1, "10.0.0.1", "10.0.0.40"),
        (0, "10.0.0.1", "10.0.0.40"), (12, "fd00:0::10", "fd00::99"),
        (2, "10.0.0.5", "10.0.0.6")]


def test_targeted_messages_flush_only_where_the_table_holds_the_addresses():
    plan = ct.FlushPlan([ct.ZoneFlush(1, "a", "vm deleted")],
                        [ct.AddressFlush(IP("10.0.0.1"), "a", "vm deleted"),
                         ct.AddressFlush(IP("fd00::10"), "a", "vm deleted"),
                         ct.AddressFlush(IP("10.0.0.77"), "a", "vm deleted")])
    got = ct.targeted_messages(plan, {0, 1, 2, 3, 12}, DUMP)
    assert got == [
        (ct.NXT_CT_FLUSH_ZONE, ct.flush_zone_body(1)),             # whole, as always
        (ct.NXT_CT_FLUSH, ct.flush_tuple_body(0, src=IP("10.0.0.1"))),
        (ct.NXT_CT_FLUSH, ct.flush_tuple_body(2, src=IP("10.0.0.1"))),
        (ct.NXT_CT_FLUSH, ct.flush_tuple_body(12, src=IP("fd00::10"))),   # OVS's spelling
        (ct.NXT_CT_FLUSH, ct.flush_tuple_body(3, dst=IP("10.0.0.1")))]
    # Every message is one the brute-force plan sends too; zones not in use are left.
    assert set(got) <= set(ct.iter_messages(plan, {0, 1, 2, 3, 12}))
    assert ct.targeted_messages(plan, {1, 3}, DUMP) == got[:1] + got[-1:]
    assert ct.targeted_messages(plan, {0, 2, 3, 12}, "") == got[:1]
