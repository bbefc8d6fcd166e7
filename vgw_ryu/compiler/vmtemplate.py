"""A protected VM's own flows from a template per VM shape, not built flow by flow.

VMs of one shape (as many IPv4 and IPv6 addresses, a MAC or not, one log level, no
address pairs) get flows that differ only in the VM's own values: its port, its zone
(so its log meter and cookie owner), its MAC and link-local address, its addresses.
A shape's template is what ``build_vm`` gives for a VM of made-up values (sentinels);
a VM's flows are the template's with each sentinel replaced by the VM's value, in the
match, the actions, the meter, the owner and the OpenFlow bytes, which are the
template's with the VM's TLVs put in. That skips, per flow, building the match dicts,
ordering the fields, looking up every TLV and the instructions: most of a compile at
1,000 VMs was the VMs' 20,000 flows.

``build_vm`` stays the only description of those flows. A template is checked when it
is made: applied to a second made-up VM it must give exactly what ``build_vm`` gives
for that VM (flows and cookies); a shape whose check fails (a flow that depends on the
VM in a way the sentinels do not carry) is always built by ``build_vm``. A VM whose
addresses repeat (two flows would collapse into one) is built by it too.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import logging
from dataclasses import dataclass
from typing import Any

from vgw_ryu.compiler.builder import FlowSet
from vgw_ryu.compiler.facts import PortFacts
from vgw_ryu.compiler.vm import build_vm, link_local, link_local_text
from vgw_ryu.pipeline import wire
from vgw_ryu.pipeline.cookies import content_hash, owner_bits
from vgw_ryu.pipeline.flows import Action, Flow
from vgw_ryu.pipeline.oxm import match_frame
from vgw_ryu.pipeline.tables import log_meter
from vgw_ryu.pipeline.wire import Encoded
from vgw_ryu.policy.model import Vm

LOG = logging.getLogger(__name__)

Shape = tuple[int, int, bool, str]    # (IPv4 addresses, IPv6 addresses, has a MAC, log)
MAX_ADDRESSES = 250                   # of each family in a template; more: build_vm


@dataclass(frozen=True)
class _Sentinels:
    """One made-up VM's values; two such sets (A and B) share no value."""
    port: int
    zone: int
    mac: str
    v4: str       # prefix of the IPv4 addresses
    v6: str       # prefix of the IPv6 addresses

    def vm(self, shape: Shape) -> tuple[Vm, PortFacts]:
        n4, n6, has_mac, _ = shape
        ips = tuple(ipaddress.ip_address(f"{self.v4}{k + 1}") for k in range(n4)) + \
            tuple(ipaddress.ip_address(f"{self.v6}{k + 1:x}") for k in range(n6))
        return (Vm("vm-template", mac=self.mac if has_mac else None, ips=ips),
                PortFacts(self.port, "vm-template", "vm", "vm-template"))


# Values no VM flow holds as a constant (the check below would find one that does).
_A = _Sentinels(0x7FFF0A01, 0xFA001, "02:5e:0a:00:00:01", "192.0.2.", "2001:db8:a::")
_B = _Sentinels(0x7FFF0B01, 0xFB001, "02:5e:0b:00:00:01", "198.51.100.", "2001:db8:b::")


@functools.cache
def _names(s: _Sentinels) -> tuple[list[str], list[str], str]:
    """A sentinel set's IPv4, IPv6 and link-local addresses, as build_vm writes them."""
    return ([str(ipaddress.ip_address(f"{s.v4}{k + 1}")) for k in range(MAX_ADDRESSES)],
            [str(ipaddress.ip_address(f"{s.v6}{k + 1:x}")) for k in range(MAX_ADDRESSES)],
            str(link_local(s.mac)))


def _values(vm: Vm, port: PortFacts, zone: int, mac: str | None,
            s: _Sentinels) -> dict[Any, Any] | None:
    """Sentinel -> the VM's value, for every value its own flows hold (at most
    MAX_ADDRESSES of each family); None when two of its addresses are one (its flows
    are fewer than the template's)."""
    names_v4, names_v6, names_ll = _names(s)
    v4 = [str(ip) for ip in vm.ips if ip.version == 4]
    v6 = [str(ip) for ip in vm.ips if ip.version == 6]
    values: dict[Any, Any] = {s.port: port.ofport, s.zone: zone,
                              log_meter(s.zone): log_meter(zone)}
    values.update(zip(names_v4, v4, strict=False))
    values.update(zip(names_v6, v6, strict=False))
    if mac:
        values[s.mac] = mac
        values[names_ll] = ll = link_local_text(mac)
        v6.append(ll)
    if len(set(v4)) != len(v4) or len(set(v6)) != len(v6):
        return None
    return values


def _holds(a: Action, sentinels: dict) -> list[str]:
    """The fields of an action holding a sentinel value."""
    if not dataclasses.is_dataclass(a):
        return []
    return [f.name for f in dataclasses.fields(a)
            if _hashable(v := getattr(a, f.name)) and v in sentinels]


def _hashable(v: Any) -> bool:
    try:
        hash(v)
    except TypeError:
        return False
    return True


def _swap(a: Action, fields: list[str], values: dict) -> Action:
    """The action with the sentinel in each of ``fields`` replaced by its value."""
    # (A frozen dataclass with no checks in __init__: its fields set as
    # dataclasses.replace would, without its generic work; not its caches, e.g. text.)
    new = object.__new__(a.__class__)
    d = new.__dict__
    old = a.__dict__
    for name in _field_names(a.__class__):
        d[name] = old[name]
    for name in fields:
        d[name] = values[d[name]]
    return new


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


@dataclass(frozen=True)
class _FlowTemplate:
    """One flow of a template and where a VM's values go in it."""
    fields: dict[str, Any]      # the made-up VM's flow's (Flow.from_fields)
    var_match: bool             # some match item holds a sentinel
    wire_items: tuple           # the TLVs in wire order: bytes, or the item holding one
    match: bytes | None         # the whole ofp_match when no item holds one
    head: bytes
    pad: bytes
    var_actions: bool
    var_meter: bool
    instructions: bytes | None  # when nothing in them is the VM's
    tail: bytes                 # its flow mod's fixed part after the cookie


def _template_flow(f: Flow, sentinels: dict) -> _FlowTemplate:
    def var(item: tuple) -> bool:
        return _hashable(item[1]) and item[1] in sentinels
    order = wire.wire_order(tuple(k for k, _ in f.match))
    items = [f.match[i] for i in order]
    wire_items = tuple(it if var(it) else wire.shared_tlv(it) for it in items)
    # A VM's TLV has its sentinel's length (fields of fixed size): one frame for all.
    head, pad = match_frame(sum(len(wire.shared_tlv(it)) for it in items))
    var_match = any(var(it) for it in f.match)
    var_actions = any(_holds(a, sentinels) for a in f.actions)
    var_meter = f.meter is not None and f.meter in sentinels
    m, ins = f._parts
    fields = {**f.__dict__, "_body": "", "_wire": None, "_parts": None}
    return _FlowTemplate(fields, var_match, wire_items, None if var_match else m, head, pad,
                         var_actions, var_meter,
                         None if var_actions or var_meter else ins,
                         wire.add_tail(f.table, f.priority))


class VmTemplate:
    """The flows of every VM of one shape."""

    def __init__(self, flows: list[Flow], zone: int, sentinels: dict) -> None:
        self.zone = zone
        self.flows = [_template_flow(f, sentinels) for f in flows]
        self.var_items = {it for f in flows for it in f.match
                          if _hashable(it[1]) and it[1] in sentinels}
        # action -> its fields holding a sentinel
        self.var_actions = {a: held for f in flows for a in f.actions
                            if (held := _holds(a, sentinels))}

    def apply(self, values: dict[Any, Any]) -> list[Flow]:
        """The flows of the VM whose values these are (sentinel -> value)."""
        owner = values[self.zone]
        # The VM's match items, TLVs and actions: once per VM, not per flow.
        items = {it: (it[0], values[it[1]]) for it in self.var_items}
        shared = wire.shared_tlvs()
        tlvs = {it: shared[mine] for it, mine in items.items()}
        acts = {a: _swap(a, held, values) for a, held in self.var_actions.items()}
        bits: dict[int, int] = {}
        out = []
        for t in self.flows:
            d = t.fields.copy()
            table, priority, kind = d["table"], d["priority"], d["kind"]
            if t.var_match:
                d["match"] = tuple([items.get(it, it) for it in d["match"]])
                m = t.head + b"".join([tlvs[p] if p.__class__ is tuple else p
                                       for p in t.wire_items]) + t.pad
            else:
                m = t.match
            ins = t.instructions
            if ins is None:
                if t.var_actions:
                    d["actions"] = tuple([acts.get(a, a) for a in d["actions"]])
                if t.var_meter:
                    d["meter"] = values[d["meter"]]
                ins = wire.shared_instructions(d["meter"], d["actions"], d["goto"])
            hi = bits.get(kind)
            if hi is None:
                hi = bits[kind] = owner_bits(kind, owner)
            d["owner"] = owner
            d["_cookie"] = cookie = hi | content_hash(table, priority, m, ins)
            # Its flow mod too (what wire.encode would make): most are sent at once.
            d["_wire"] = Encoded(cookie.to_bytes(8, "big") + t.tail + m + ins, m)
            out.append(Flow.from_fields(d))
        return out


def _built(vm: Vm, port: PortFacts, zone: int, log: str) -> list[Flow]:
    b = FlowSet()
    build_vm(b, vm, port, zone, log)
    return list(b.flows.values())


def _same(a: list[Flow], b: list[Flow]) -> bool:
    return len(a) == len(b) and all(x == y and x.cookie == y.cookie and
                                    wire.encode(x) == wire.encode(y)
                                    for x, y in zip(a, b, strict=True))


class VmTemplates:
    """A template per VM shape, made on first use and checked against build_vm."""

    def __init__(self) -> None:
        self.shapes: dict[Shape, VmTemplate | None] = {}

    def template(self, shape: Shape) -> VmTemplate | None:
        """The shape's template, or None: build its VMs with build_vm."""
        if shape in self.shapes:
            return self.shapes[shape]
        log = shape[3]
        vm_a, port_a = _A.vm(shape)
        vm_b, port_b = _B.vm(shape)
        own = _values(vm_a, port_a, _A.zone, vm_a.mac, _A)      # each sentinel itself
        to_b = _values(vm_b, port_b, _B.zone, vm_b.mac, _A)     # each one -> B's value
        assert own is not None and to_b is not None
        got: VmTemplate | None = VmTemplate(_built(vm_a, port_a, _A.zone, log), _A.zone,
                                            own)
        if not _same(got.apply(to_b), _built(vm_b, port_b, _B.zone, log)):
            LOG.warning("VM flow template for shape %s does not match build_vm; VMs of "
                        "that shape are built flow by flow", shape)
            got = None
        self.shapes[shape] = got
        return got

    def vm_flows(self, vm: Vm, port: PortFacts, zone: int, log: str = "none") -> list[Flow]:
        """What build_vm gives for this VM (the same flows, as new objects)."""
        mac = vm.mac or port.mac
        n4 = sum(1 for ip in vm.ips if ip.version == 4)
        if not vm.address_pairs and max(n4, len(vm.ips) - n4) <= MAX_ADDRESSES:
            t = self.template((n4, len(vm.ips) - n4, bool(mac), log))
            if t is not None:
                values = _values(vm, port, zone, mac, _A)
                if values is not None:
                    return t.apply(values)
        return _built(vm, port, zone, log)
