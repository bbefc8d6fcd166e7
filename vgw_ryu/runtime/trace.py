"""The datapath half of POST /v1/trace: the same connection through ofproto/trace.

Builds the flow text for the VM's own switch (egress from the VM's port; ingress from
the switch's first uplink, or without one from where the peer really is: its own VM
port on the same switch, else an unprotected VM's port), runs it as a new connection
and reads the verdict, the punts and the deciding rules from the result. The answer's
``from`` says which port the trace started at. No Ryu here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vgw_ryu.runtime import ovstrace
from vgw_ryu.runtime.snapshot import Snapshot

PEER_MAC = "02:00:00:00:00:fe"   # the other end of the traced connection
L4 = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "icmpv6": "icmp6"}
CT_STATES = ("trk,new", "trk,new")
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TraceError(ValueError):
    """The connection cannot be traced (the answer's ``error``)."""


@dataclass(frozen=True)
class TracePlan:
    switch: str        # dpid, 16 hex digits
    bridge: str
    flow: str
    source: str = ""   # where the traced packet enters, e.g. "uplink eth1 (ofport 7)"


def flow_text(in_port: int, proto: str, src_mac: str, dst_mac: str, src: Address,
              dst: Address, port: int | None) -> str:
    """An ofproto/trace flow for the first packet of a connection."""
    fam = "ipv6" if src.version == 6 else "nw"
    l4 = L4[proto]
    if src.version == 6 and proto in ("tcp", "udp"):
        l4 += "6"
    flow = f"in_port={in_port},{l4},dl_src={src_mac},dl_dst={dst_mac}," \
           f"{fam}_src={src},{fam}_dst={dst}"
    if proto in ("tcp", "udp"):
        flow += f",{proto}_src=40000,{proto}_dst={port}"
    elif proto == "icmp":
        flow += ",icmp_type=8,icmp_code=0"
    else:
        flow += ",icmpv6_type=128,icmpv6_code=0"
    return flow


def plan(snap: Snapshot, bridge_of: Callable[[int], str | None], vm: str, direction: str,
         peer: Address, proto: str, port: int | None) -> TracePlan | None:
    """Where and what to trace; None if the VM is not on a local bridge.

    ``bridge_of`` names the local bridge of a datapath id (None: not local).

    Raises TraceError when the VM is local but the connection cannot be traced.
    """
    where = snap.vm_locations().get(vm)
    if not where:
        return None
    loc = where[0]
    dpid = int(loc["switch"], 16)
    bridge = bridge_of(dpid)
    if bridge is None:
        return None
    sw = snap.switch(dpid)
    ports = sw.facts.ports if sw is not None else ()
    vm_obj = snap.state.vms[vm]
    mine = [ip for ip in vm_obj.ips if ip.version == peer.version]
    mac = vm_obj.mac or next((p.mac for p in ports if p.vm == vm), None)
    if not mine or not mac:
        raise TraceError(f"vm {vm} has no IPv{peer.version} address or MAC to trace with")
    if direction == "egress":
        flow = flow_text(loc["ofport"], proto, mac, PEER_MAC, mine[0], peer, port)
        return TracePlan(loc["switch"], bridge, flow,
                         f"vm {vm}'s port {_port_name(ports, loc['ofport'])} "
                         f"(ofport {loc['ofport']})")
    in_port, src_mac, source = ingress_source(snap, ports, vm, peer)
    flow = flow_text(in_port, proto, src_mac, mac, peer, mine[0], port)
    return TracePlan(loc["switch"], bridge, flow, source)


def _port_name(ports, ofport: int) -> str:
    return next((p.name for p in ports if p.ofport == ofport), str(ofport))


def ingress_source(snap: Snapshot, ports, vm: str, peer: Address) -> tuple[int, str, str]:
    """(in_port, source MAC, description) an ingress connection is traced from.

    The first uplink; without one (a single bridge of VMs), the peer's own port when
    the peer is a VM on this switch (its egress policy then applies as well, as it
    does for real traffic); else an unprotected VM's port, which like an uplink goes
    straight to the ingress stage. TraceError when there is none of these.
    """
    uplinks = [p for p in ports if p.kind == "uplink"]
    if uplinks:
        u = uplinks[0]
        return u.ofport, PEER_MAC, f"uplink {u.name} (ofport {u.ofport})"
    vms = snap.state.vms
    for p in ports:
        other = vms.get(p.vm or "") if p.kind == "vm" and p.vm != vm else None
        if other is not None and peer in other.ips and (other.mac or p.mac):
            return (p.ofport, other.mac or p.mac,
                    f"vm {p.vm}'s port {p.name} (ofport {p.ofport}): no uplink on this "
                    f"switch, and the peer is {p.vm}; its egress policy applies too")
    for p in ports:
        if p.kind == "vm" and p.vm != vm and p.vm in vms and not vms[p.vm].protected:
            return (p.ofport, PEER_MAC,
                    f"unprotected vm {p.vm}'s port {p.name} (ofport {p.ofport}): no "
                    "uplink on this switch")
    raise TraceError(f"no port to trace ingress from: the VM's switch has no uplink "
                     f"(external_ids:vgw-role=uplink) and {peer} is not a VM on it")


def interpret(snap: Snapshot, p: TracePlan, r: ovstrace.TraceResult) -> dict[str, Any]:
    """The answer's ``datapath`` part from a trace result."""
    verdict = "allow" if r.forwarded else ("reject" if "reject" in r.punts else "deny")
    rules = [snap.ids.rule_owner(n) for n in r.rules]
    return {"switch": p.switch, "bridge": p.bridge, "from": p.source, "flow": p.flow,
            "verdict": verdict,
            "punts": sorted(r.punts), "rules": [f"{o[0]}/{o[1]}" for o in rules if o],
            "outputs": sorted(r.outputs)}


def trace_datapath(snap: Snapshot, bridge_of: Callable[[int], str | None], vm: str, direction: str,
                   peer: Address, proto: str, port: int | None,
                   run: Callable[..., ovstrace.TraceResult] = ovstrace.trace,
                   ) -> dict[str, Any] | None:
    """ofproto/trace of the connection on the VM's switch; None when it is not local."""
    try:
        p = plan(snap, bridge_of, vm, direction, peer, proto, port)
    except TraceError as e:
        return {"error": str(e)}
    if p is None:
        return None
    return interpret(snap, p, run(p.bridge, p.flow, CT_STATES))
