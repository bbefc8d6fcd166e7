"""The compiler: (desired state, facts of one switch) -> the complete desired flow set."""

from vgw_ryu.compiler.switch import (
    PortFacts,
    SwitchFacts,
    compile_switch,
    is_uplink_name,
    link_local,
    port_masks,
    render,
)

__all__ = ["PortFacts", "SwitchFacts", "compile_switch", "is_uplink_name", "link_local",
           "port_masks", "render"]
