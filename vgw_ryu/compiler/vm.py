"""A protected VM's own flows: its port in classify, its anti-spoofing guard and its
entry in ingress_classify. They depend only on the VM, its port, its zone and its log
level, which is what lets the compilers keep them while other things change."""

from __future__ import annotations

import ipaddress

from vgw_ryu.compiler.builder import FlowSet
from vgw_ryu.compiler.facts import PortFacts
from vgw_ryu.compiler.proto import (
    DHCP6_CLIENT,
    DHCP6_SERVER,
    DHCP_CLIENT,
    DHCP_SERVER,
    ETH_ARP,
    ETH_IP,
    ETH_IPV6,
    ICMPV6_MLDV2_REPORT,
    ICMPV6_NA,
    ICMPV6_NS,
    ICMPV6_RA,
    ICMPV6_REDIRECT,
    ICMPV6_RS,
    IP_FAMILIES,
    IPPROTO_ICMPV6,
    IPPROTO_UDP,
)
from vgw_ryu.compiler.stage import STAGES
from vgw_ryu.pipeline import fields as F  # noqa: N812 - F.<field> reads like a register map
from vgw_ryu.pipeline import priorities as P  # noqa: N812 - P.<name> reads like a band table
from vgw_ryu.pipeline.cookies import KIND_VM
from vgw_ryu.pipeline.ctstate import ct_state
from vgw_ryu.pipeline.flows import CT_CLEAR, Controller, Ct, Resubmit
from vgw_ryu.pipeline.tables import PUNT_BY_PURPOSE, log_meter
from vgw_ryu.policy.model import Vm

# A VM needs these to get and keep an address, so they skip the policy.
SOLICITATIONS = (ICMPV6_RS, ICMPV6_NS, ICMPV6_MLDV2_REPORT)
# A VM may advertise only its own addresses; these from it are spoofs.
SPOOFED_ADVERTS = (ICMPV6_RA, ICMPV6_NA, ICMPV6_REDIRECT)
# Neighbour discovery to a VM is not tracked: conntrack would judge it as new traffic.
UNTRACKED_ND = (ICMPV6_NS, ICMPV6_NA)


def link_local(mac: str) -> ipaddress.IPv6Address:
    """The EUI-64 link-local address of a MAC."""
    b = bytearray(int(x, 16) for x in mac.split(":"))
    b[0] ^= 0x02
    eui = bytes(b[:3]) + b"\xff\xfe" + bytes(b[3:])
    return ipaddress.IPv6Address(b"\xfe\x80" + b"\x00" * 6 + eui)


def link_local_text(mac: str) -> str:
    """``str(link_local(mac))`` without the address object (a compile writes one per VM;
    ipaddress's formatting was a twentieth of a 1,000-VM compile). Its groups 5 and 6
    hold ff and fe, never zero: the zero run to compress is 1-3, or 1-4 with group 4."""
    b = [int(x, 16) for x in mac.split(":")]
    g4 = ((b[0] ^ 0x02) << 8) | b[1]
    tail = f"{(b[2] << 8) | 0xFF:x}:{0xFE00 | b[3]:x}:{(b[4] << 8) | b[5]:x}"
    return f"fe80::{g4:x}:{tail}" if g4 else f"fe80::{tail}"


def build_vm_logging(b: FlowSet, zone: int, level: str) -> None:
    """A VM's log meter, and the log copies its log level asks for (none/drops/all)."""
    own = {"kind": KIND_VM, "owner": zone}
    # punt_log: this VM's copies go through its own meter, so one VM flooding logged
    # drops spends its own budget, not the other VMs'.
    b.add("punt_log", P.PUNT_VM, dict([F.PUNT_ZONE.match(zone)]),
          [Controller(PUNT_BY_PURPOSE["log"].max_len)], meter=log_meter(zone), **own)
    if level == "none":
        return
    keep = F.copy(F.ZONE, F.PUNT_ZONE)
    for stage in STAGES:
        mine = F.ZONE.match(zone)
        # *_action: a VM that logs its drops copies every deny to the log, and marks its
        # rejects logged (the controller logs what it answers).
        b.add(stage.action, P.ACTION_VM_LOG_DROP,
              F.match(mine, F.VERDICT.match(F.VERDICT_DENY)),
              [keep, Resubmit(PUNT_BY_PURPOSE["log"].table)], **own)
        b.add(stage.action, P.ACTION_VM_LOG_DROP,
              F.match(mine, F.VERDICT.match(F.VERDICT_REJECT), ct_state("+new+trk")),
              [F.LOG.load(1), keep, Resubmit(PUNT_BY_PURPOSE["reject"].table)], **own)
        if level != "all":
            continue
        # *_action: a VM that logs everything copies each new connection it allows.
        for eth in IP_FAMILIES:
            b.add(stage.action, P.ACTION_VM_LOG_ALLOW,
                  F.match(mine, F.VERDICT.match(F.VERDICT_ALLOW), ("eth_type", eth),
                          ct_state("+new+trk")),
                  [Ct(commit=True, label_reg=F.RULE.reg), keep, *stage.pass_then,
                   Resubmit(PUNT_BY_PURPOSE["log"].table)], **own)


def _prefix(net) -> str | tuple[str, str]:
    host = 32 if net.version == 4 else 128
    return str(net.network_address) if net.prefixlen == host else \
        (str(net.network_address), str(net.netmask))


def build_address_pairs(b: FlowSet, vm: Vm, p: int, mac: str | None, own: dict) -> None:
    """A VM's address pairs: more source addresses (and MACs) it may use, and more
    MACs that reach it."""
    for pair in vm.address_pairs:
        pmac = pair.mac or mac
        src = {"in_port": p, **({"eth_src": pmac} if pmac else {})}
        net = _prefix(pair.net)
        # egress_guard: the pair's addresses are the VM's own, from the pair's MAC.
        if pair.net.version == 4:
            b.add("egress_guard", P.GUARD_OWN_IP, {**src, "eth_type": ETH_IP, "ipv4_src": net},
                  goto="egress_ct", **own)
            arp = {**src, "eth_type": ETH_ARP, "arp_spa": net,
                   **({"arp_sha": pmac} if pmac else {})}
            b.add("egress_guard", P.GUARD_CONTROL, arp, goto="ingress_classify", **own)
        else:
            b.add("egress_guard", P.GUARD_OWN_IP,
                  {**src, "eth_type": ETH_IPV6, "ipv6_src": net}, goto="egress_ct", **own)
            if pair.net.num_addresses == 1:
                b.add("egress_guard", P.GUARD_CONTROL,
                      {**src, "eth_type": ETH_IPV6, "ip_proto": IPPROTO_ICMPV6,
                       "icmpv6_type": ICMPV6_NA, "ipv6_nd_target": net},
                      goto="ingress_classify", **own)
        if pair.mac and pair.mac != mac:
            # ingress_classify: traffic to the pair's own MAC is this VM's too.
            for eth in IP_FAMILIES:
                b.add("ingress_classify", P.INGRESS_VM, {"eth_dst": pair.mac, "eth_type": eth},
                      [F.ZONE.load(own["owner"]), F.OUT_PORT.load(p), CT_CLEAR],
                      goto="ingress_ct", **own)


def build_vm(b: FlowSet, vm: Vm, port: PortFacts, zone: int, log: str = "none") -> None:
    """All flows owned by one protected VM (cookie kind vm, owner its zone)."""
    mac = vm.mac or port.mac
    own = {"kind": KIND_VM, "owner": zone}
    build_vm_logging(b, zone, log)
    p = port.ofport
    # classify: this port is the VM; its zone goes to reg6 for the whole egress stage.
    b.add("classify", P.CLASSIFY_PORT, {"in_port": p}, [F.ZONE.load(zone)],
          goto="egress_guard", **own)
    # egress_guard: the VM may only speak as itself (its MAC, its IPs, its link-local).
    src = {"in_port": p, **({"eth_src": mac} if mac else {})}
    v4 = [ip for ip in vm.ips if ip.version == 4]
    v6 = [ip for ip in vm.ips if ip.version == 6]
    if mac:
        v6 = [*v6, link_local(mac)]
    for ip in v4:
        b.add("egress_guard", P.GUARD_OWN_IP, {**src, "eth_type": ETH_IP, "ipv4_src": str(ip)},
              goto="egress_ct", **own)
        # egress_guard: ARP must claim the VM's own address and hardware address.
        arp = {**src, "eth_type": ETH_ARP, "arp_spa": str(ip)}
        if mac:
            arp["arp_sha"] = mac
        b.add("egress_guard", P.GUARD_CONTROL, arp, goto="ingress_classify", **own)
    for ip in v6:
        b.add("egress_guard", P.GUARD_OWN_IP,
              {**src, "eth_type": ETH_IPV6, "ipv6_src": str(ip)}, goto="egress_ct", **own)
    build_address_pairs(b, vm, p, mac, own)
    # *_state: what conntrack finds invalid in this VM's zone is dropped by the VM's own
    # flow, so the controller can count it per VM and name the port (a veth or tap on a
    # netdev bridge with TX checksum offload on sends nothing but invalid TCP).
    # With drops logged, each such drop (a new connection over the VM's limit gets no
    # entry, so its first reply is invalid) also goes to the VM's log meter.
    invalid = F.match(F.ZONE.match(zone), ct_state("+inv+trk"))
    for stage in STAGES:
        logged = [F.VERDICT.load(F.VERDICT_DENY), F.DIRECTION.load(stage.direction),
                  F.INVALID.load(1), F.copy(F.ZONE, F.PUNT_ZONE),
                  Resubmit(PUNT_BY_PURPOSE["log"].table)] if log != "none" else []
        b.add(stage.state, P.STATE_INVALID_VM, invalid, logged, **own)
    # egress_guard: DHCP/DHCPv6 clients and neighbour discovery skip the policy:
    # without them the VM cannot get or keep an address.
    b.add("egress_guard", P.GUARD_CONTROL,
          {**src, "eth_type": ETH_IP, "ip_proto": IPPROTO_UDP, "udp_src": DHCP_CLIENT,
           "udp_dst": DHCP_SERVER}, goto="ingress_classify", **own)
    b.add("egress_guard", P.GUARD_CONTROL,
          {**src, "eth_type": ETH_IPV6, "ip_proto": IPPROTO_UDP, "udp_src": DHCP6_CLIENT,
           "udp_dst": DHCP6_SERVER}, goto="ingress_classify", **own)
    icmp6 = {**src, "eth_type": ETH_IPV6, "ip_proto": IPPROTO_ICMPV6}
    for icmp_type in SOLICITATIONS:
        b.add("egress_guard", P.GUARD_CONTROL, {**icmp6, "icmpv6_type": icmp_type},
              goto="ingress_classify", **own)
    # egress_guard: a neighbour advert must announce one of the VM's own addresses.
    for ip in v6:
        b.add("egress_guard", P.GUARD_CONTROL,
              {**icmp6, "icmpv6_type": ICMPV6_NA, "ipv6_nd_target": str(ip)},
              goto="ingress_classify", **own)
    # egress_guard: any other advert, router advert or redirect is a spoof, even from
    # the VM's own address (which would otherwise reach the policy below).
    for icmp_type in SPOOFED_ADVERTS:
        b.add("egress_guard", P.GUARD_SPOOF, {"in_port": p, "eth_type": ETH_IPV6,
                                              "ip_proto": IPPROTO_ICMPV6,
                                              "icmpv6_type": icmp_type}, [], **own)
    if not mac:
        return  # without a MAC nothing can be addressed to the VM
    # ingress_classify: IP for this VM is judged in its zone and leaves by its port;
    # ct_clear drops the egress stage's conntrack state, which is another zone's.
    for eth in IP_FAMILIES:
        b.add("ingress_classify", P.INGRESS_VM, {"eth_dst": mac, "eth_type": eth},
              [F.ZONE.load(zone), F.OUT_PORT.load(p), CT_CLEAR], goto="ingress_ct", **own)
    # ingress_classify: ND to it is forwarded untracked.
    for icmp_type in UNTRACKED_ND:
        b.add("ingress_classify", P.INGRESS_ND, {"eth_dst": mac, "eth_type": ETH_IPV6,
                                                 "ip_proto": IPPROTO_ICMPV6,
                                                 "icmpv6_type": icmp_type},
              goto="forward", **own)
