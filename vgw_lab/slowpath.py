"""The slow-path reference for the benchmark: a firewall *on* the data path.

Every packet goes to the controller, which keeps its own per-VM connection table in
Python, judges new connections with the same policy model (vgw_ryu.policy.ruleset) and
forwards with packet-out. It exists only as the baseline the fast path is measured
against (``make bench``); it is small on purpose and not a product mode.

    ryu-manager vgw_lab.slowpath --vgw-state policy.yaml
"""

from __future__ import annotations

from vgw_ryu.ryuapp import compat

compat.apply()  # before any Ryu import: ryu.app.wsgi needs it at import time

import ipaddress
import logging

import yaml
from ryu.base import app_manager
from ryu.controller import ofp_event
from ryu.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from ryu.lib.packet import ethernet, ipv4, packet, tcp, udp
from ryu.ofproto import ofproto_v1_3, ofproto_v1_4

from vgw_ryu.policy.model import PROTO_NAME, parse_state
from vgw_ryu.policy.ruleset import effective_rules, evaluate
from vgw_ryu.ryuapp import options

options.register()
LOG = logging.getLogger("vgw_lab.slowpath")


class SlowPathApp(app_manager.RyuApp):
    """Learning switch + stateful firewall in Python, every packet through here."""

    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION, ofproto_v1_4.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        with open(self.CONF.vgw.state, encoding="utf-8") as f:
            self.state = parse_state(yaml.safe_load(f))
        self.rules = effective_rules(self.state)
        self.by_ip = {str(ip): name for name, vm in self.state.vms.items() for ip in vm.ips}
        self.macs: dict[tuple[int, str], int] = {}
        self.conns: dict[str, set[tuple]] = {name: set() for name in self.state.vms}

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _features(self, ev):
        dp = ev.msg.datapath
        p, ofp = dp.ofproto_parser, dp.ofproto
        dp.send_msg(p.OFPFlowMod(dp, priority=0, match=p.OFPMatch(), instructions=[
            p.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [
                p.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)])]))

    def _allowed(self, vm: str, direction: str, key: tuple, peer: str, proto: str,
                 port: int | None) -> bool:
        table = self.conns[vm]
        if key in table:
            return True
        v = evaluate(self.state, self.rules[vm], direction, ipaddress.ip_address(peer), proto,
                     port)
        if v.verdict == "allow":
            table.add(key)
            return True
        return False

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev):
        msg = ev.msg
        dp = msg.datapath
        p, ofp = dp.ofproto_parser, dp.ofproto
        in_port = msg.match["in_port"]
        pkt = packet.Packet(msg.data)
        eth = pkt.get_protocol(ethernet.ethernet)
        self.macs[(dp.id, eth.src)] = in_port
        ip = pkt.get_protocol(ipv4.ipv4)
        if ip is not None:
            l4 = pkt.get_protocol(tcp.tcp) or pkt.get_protocol(udp.udp)
            proto = PROTO_NAME.get(ip.proto, "any")
            if proto == "icmpv6":  # not an IPv4 protocol: no icmpv6 rule may match it
                proto = "any"
            sport = l4.src_port if l4 else 0
            dport = l4.dst_port if l4 else None
            fwd = (ip.src, ip.dst, ip.proto, sport, dport or 0)
            rev = (ip.dst, ip.src, ip.proto, dport or 0, sport)
            src_vm, dst_vm = self.by_ip.get(ip.src), self.by_ip.get(ip.dst)
            # A reply belongs to the connection its peer opened in the other direction.
            if src_vm and rev not in self.conns[src_vm] and not self._allowed(
                    src_vm, "egress", fwd, ip.dst, proto, dport):
                return
            if dst_vm and rev not in self.conns[dst_vm] and not self._allowed(
                    dst_vm, "ingress", fwd, ip.src, proto, dport):
                return
        out = self.macs.get((dp.id, eth.dst), ofp.OFPP_FLOOD)
        dp.send_msg(p.OFPPacketOut(dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=in_port,
                                   actions=[p.OFPActionOutput(out)], data=msg.data))
