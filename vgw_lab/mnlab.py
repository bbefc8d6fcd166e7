"""Mininet glue: a vgw_ryu topology as a Mininet Topo with libvirt-like port identity.

Used by the lab runner (vgw_lab.runner) and by ``mn --custom mininet/vgw_topos.py``.
Switches are userspace OVS bridges (``datapath=user``, secure fail mode, OpenFlow
1.3/1.4); each VM port carries ``external_ids:vm-id`` and ``attached-mac`` as libvirt
sets them, hypervisors are joined by patch ports marked ``vgw-role=uplink``; hosts turn
TX checksum offload off (the userspace datapath needs it) and get their IPv6 addresses.
"""

from __future__ import annotations

import ipaddress
import shlex
from typing import Any

from mininet.cli import CLI
from mininet.link import Link
from mininet.log import LEVELS, lg, setLogLevel
from mininet.node import Host, OVSSwitch
from mininet.topo import Topo

from vgw_lab.topology import Topology


class VgwSwitch(OVSSwitch):
    """An OVS bridge that writes VM identity and uplink role into its Interfaces."""

    def __init__(self, name: str, port_ids: dict[str, dict[str, str]] | None = None,
                 **params: Any):
        params.setdefault("datapath", "user")
        params.setdefault("protocols", "OpenFlow13,OpenFlow14")
        params.setdefault("failMode", "secure")
        super().__init__(name, **params)
        self.port_ids = port_ids or {}

    def intfOpts(self, intf) -> str:  # noqa: N802 - Mininet's name
        opts = super().intfOpts(intf)
        peer = intf.link.intf1 if intf.link and intf.link.intf2 is intf else \
            (intf.link.intf2 if intf.link else None)
        ids = self.port_ids.get(peer.node.name if peer is not None else "", {})
        if not ids:
            return opts
        # Mininet runs this through a shell: the values are names and MACs we validated.
        extra = "".join(f' external_ids:{k}=\\"{v}\\"' for k, v in sorted(ids.items()))
        return (opts + extra) if opts else f" -- set Interface {intf}{extra}"


class VgwHost(Host):
    """A VM: its MAC, IPv4 and IPv6 addresses, and TX offload off."""

    def config(self, ips6: tuple[str, ...] = (), **params: Any):
        r = super().config(**params)
        intf = shlex.quote(str(self.defaultIntf()))
        self.cmd(f"ethtool -K {intf} tx off")
        self.cmd(f"sysctl -qw net.ipv6.conf.{intf}.accept_dad=0")
        self.cmd(f"sysctl -qw net.ipv6.conf.{intf}.accept_ra=0")
        for ip in ips6:
            self.cmd(f"ip -6 addr add {shlex.quote(ip + '/64')} dev {intf} nodad")
        return r


def switch_names(topo: Topology, prefix: str = "") -> dict[str, str]:
    """Bridge name per hypervisor; a prefix keeps a lab's bridges apart from others'."""
    return {hv: f"{prefix}{hv}" for hv in topo.hypervisors}


class LabTopo(Topo):
    """Builds hosts, switches and links of a vgw_ryu topology."""

    def build(self, lab: Topology, names: dict[str, str] | None = None,
              dpid_base: int = 0, vm_ids: dict[str, str] | None = None) -> None:
        """``names``: bridge per hypervisor; ``vm_ids``: the controller's name of each VM
        (default: its own), written as the port's ``external_ids:vm-id``."""
        names = names or switch_names(lab)
        vm_ids = vm_ids or {}
        for i, hv in enumerate(lab.hypervisors, 1):
            ids = {}
            for vm in lab.vms.values():
                if vm.hypervisor == hv:
                    ids[vm.name] = {"vm-id": vm_ids.get(vm.name, vm.name),
                                    "attached-mac": vm.mac}
            for a, b in lab.links:
                if hv in (a, b):
                    ids[names[b if hv == a else a]] = {"vgw-role": "uplink"}
            self.addSwitch(names[hv], cls=VgwSwitch, port_ids=ids,
                           dpid=f"{dpid_base + i:016x}")
        for vm in lab.vms.values():
            v4 = [a for a in vm.ips if ipaddress.ip_address(a).version == 4]
            v6 = tuple(a for a in vm.ips if ipaddress.ip_address(a).version == 6)
            self.addHost(vm.name, cls=VgwHost, mac=vm.mac,
                         ip=f"{v4[0]}/24" if v4 else None, ips6=v6)
            self.addLink(vm.name, names[vm.hypervisor], cls=Link)
        for a, b in lab.links:
            self.addLink(names[a], names[b], cls=Link)


class LabCLI(CLI):
    """Mininet's CLI with its output on, and a pingall that gives up on a denied pair
    after ``ping_timeout`` seconds (``ping -W``) instead of ping's ten."""

    ping_timeout = "1"

    def __init__(self, net, *args: Any, **kw: Any):
        # The lab runs Mininet at level warning; the CLI prints at output/info level.
        saved = next((n for n, v in LEVELS.items() if v == lg.level), "warning")
        setLogLevel("info")
        try:
            super().__init__(net, *args, **kw)
        finally:
            setLogLevel(saved)

    def do_pingall(self, line: str) -> None:
        """Ping between all hosts: pingall [timeout seconds per ping, default 1]."""
        self.mn.pingAll(line.strip() or self.ping_timeout)

    def do_pingallfull(self, line: str) -> None:
        """Ping between all hosts, with every result: pingallfull [timeout, default 1]."""
        self.mn.pingFull(timeout=line.strip() or self.ping_timeout)
