"""vgw_ryu: per-VM stateful firewall for Open vSwitch, programmed by a Ryu app."""

__version__ = "0.1.0"
