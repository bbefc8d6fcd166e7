"""The compiler: (desired state, facts of one switch) -> the complete desired flow set."""

from vgw_ryu.compiler.facts import PortFacts, SwitchFacts, is_uplink_name
from vgw_ryu.compiler.incremental import FlowList, SwitchCompiler
from vgw_ryu.compiler.rules import port_masks, rules_priority
from vgw_ryu.compiler.switch import compile_switch, render
from vgw_ryu.compiler.vm import link_local

__all__ = ["FlowList", "PortFacts", "SwitchCompiler", "SwitchFacts", "compile_switch",
           "is_uplink_name", "link_local", "port_masks", "render", "rules_priority"]
