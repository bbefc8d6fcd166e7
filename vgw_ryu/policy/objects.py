"""The policy's vocabulary and objects: names, enums, protocol numbers, immutable dataclasses.

Every fact about the document's shape that other modules need (the name pattern, the
allowed directions, actions, protocols and settings values, the IP protocol numbers)
is written here once; parsing (``vgw_ryu.policy.parse``), the OpenAPI document, the CLI
and the compiler take it from here. No Ryu here.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,62}$")

DIRECTIONS = ("ingress", "egress")
ACTIONS = ("allow", "deny", "reject")
RULE_ACTIONS = (*ACTIONS, "pass")   # pass: leave the rest of this tier to the next one
MAX_TIERS = 8
# IP protocol numbers of the protocols a rule can name ("any" has none); any other
# protocol is named by its number ("132" and sctp are the same protocol).
PROTO_NUM = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "igmp": 2, "gre": 47,
             "esp": 50, "ah": 51, "ospf": 89, "pim": 103, "vrrp": 112, "sctp": 132}
PROTO_NAME = {num: name for name, num in PROTO_NUM.items()}
PROTOCOLS = (*PROTO_NUM, "any")
ICMP_PROTOCOLS = ("icmp", "icmpv6")


def proto_number(protocol: str) -> int:
    """The IP protocol number of a rule's protocol (a name, or a number as text)."""
    return PROTO_NUM[protocol] if protocol in PROTO_NUM else int(protocol)
PORT_PROTOCOLS = ("tcp", "udp")
# Settings values: what protected VMs get when no rule matches, and unknown ports.
DEFAULT_VERDICTS = ("deny", "allow")
UNKNOWN_PORT_ACTIONS = ("drop", "allow")
LOG_LEVELS = ("none", "drops", "all")   # what a VM logs besides its rules' `log: true`

IpAddr = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNet = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ValidationError(ValueError):
    """One or more invalid fields; ``errors[0]`` is the one reported first."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors[:5])
                         + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""))

    @property
    def field(self) -> str:
        return self.errors[0].path


@dataclass(frozen=True)
class Settings:
    default_ingress: str = "deny"
    default_egress: str = "allow"
    log_default_deny: bool = False
    unknown_ports: str = "drop"
    uplinks: tuple[str, ...] = ()
    max_connections: int = 0     # per protected VM; 0: no limit
    log: str = "none"            # LOG_LEVELS, for VMs that do not say
    default_protected: bool = True   # VMs that neither they nor a group say
    portgroups: tuple[PortGroup, ...] = ()  # protection by where a VM's port is
    tiers: tuple[str, ...] = ("default",)   # evaluated in this order
    default_tier: str | None = None         # of policies that name none (None: the last)

    def tier_of(self, policy_tier: str | None) -> int:
        """Index of the tier a policy belongs to."""
        name = policy_tier or self.default_tier or self.tiers[-1]
        return self.tiers.index(name)


@dataclass(frozen=True)
class PortGroup:
    """Ports by where they are (a bridge, a VLAN tag, or both): a portgroup, protected
    (or not) as a whole."""
    bridge: str | None = None
    vlan: int | None = None
    protected: bool = True

    def holds(self, bridge: str | None, vlan: int | None) -> bool:
        return ((self.bridge is None or self.bridge == bridge)
                and (self.vlan is None or self.vlan == vlan))


@dataclass(frozen=True)
class AddressPair:
    """An extra address a VM may use (a VIP, a service prefix), optionally with its own
    MAC (e.g. VRRP's virtual MAC); Neutron calls these allowed address pairs."""
    net: IpNet
    mac: str | None = None


@dataclass(frozen=True)
class Vm:
    name: str
    mac: str | None = None
    ips: tuple[IpAddr, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    protected: bool = True
    max_connections: int | None = None  # None: settings.max_connections
    log: str | None = None              # None: settings.log
    address_pairs: tuple[AddressPair, ...] = ()
    protected_set: bool | None = None   # what the VM itself says (protected is the result)
    protected_by: str = "default"       # vm | group | portgroup | default

    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True)
class Group:
    name: str
    match_labels: tuple[tuple[str, str], ...] = ()
    members: tuple[str, ...] = ()
    cidrs: tuple[IpNet, ...] = ()
    excepts: tuple[IpNet, ...] = ()   # carved out of the cidrs (each inside one of them)
    protected: bool | None = None     # protect (or not) every VM in the group at once

    def resolved_cidrs(self) -> tuple[IpNet, ...]:
        """The cidrs with the except prefixes taken out, as plain prefixes."""
        out: list[IpNet] = []
        for net in self.cidrs:
            parts = [net]
            for ex in self.excepts:
                nxt: list[IpNet] = []
                for part in parts:
                    if ex.version == part.version and ex.subnet_of(part):
                        nxt += list(part.address_exclude(ex))
                    elif ex.version == part.version and part.subnet_of(ex):
                        continue   # wholly excepted
                    else:
                        nxt.append(part)
                parts = nxt
            out += parts
        return tuple(sorted(set(out), key=lambda n: (n.version, n.network_address,
                                                     n.prefixlen)))


@dataclass(frozen=True)
class Peer:
    kind: str  # any | vm | group | cidr
    value: str = ""

    def __str__(self) -> str:
        return "any" if self.kind == "any" else f"{self.kind}:{self.value}"


@dataclass(frozen=True)
class Rule:
    id: str
    direction: str
    action: str
    protocol: str = "any"
    ports: tuple[tuple[int, int], ...] = ()
    peer: Peer = Peer("any")
    priority: int = 100
    log: bool = False
    stateful: bool = True        # False: matching packets skip the connection table
    src_ports: tuple[tuple[int, int], ...] = ()   # tcp/udp source ports
    icmp_type: int | None = None                  # icmp/icmpv6 only
    icmp_code: int | None = None                  # with icmp_type

    def ports_text(self, ports: tuple[tuple[int, int], ...] | None = None) -> str | None:
        ranges = self.ports if ports is None else ports
        if not ranges:
            return None
        return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


@dataclass(frozen=True)
class Policy:
    name: str
    applied_to: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()
    tier: str | None = None      # None: settings.default_tier


@dataclass(frozen=True)
class State:
    settings: Settings = field(default_factory=Settings)
    vms: dict[str, Vm] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    policies: dict[str, Policy] = field(default_factory=dict)
    expectations: tuple = ()     # policy.expectations.Expectation: what must hold
