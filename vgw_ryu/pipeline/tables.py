"""The pipeline declared as data: tables, what each may match, where each may jump.

``check()`` rejects a flow in an undeclared table, matching an undeclared field or
continuing in an undeclared next table; the compiler's output is checked by a unit
test. ``PUNTS`` ties each reason to send a packet to the controller to its table and
meter. flows/PIPELINE.md explains every table in prose; its register and priority
tables are generated from fields.py and priorities.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from vgw_ryu.pipeline import fields as F  # noqa: N812 - F.<field> reads like a register map
from vgw_ryu.pipeline.cookies import (  # noqa: F401 - re-exported for existing callers
    KIND_DEFAULT,
    KIND_INFRA,
    KIND_NAMES,
    KIND_PEER,
    KIND_PORT,
    KIND_RULE,
    KIND_VM,
)
from vgw_ryu.pipeline.fields import (  # noqa: F401 - re-exported for existing callers
    VERDICT_ALLOW,
    VERDICT_DENY,
    VERDICT_REJECT,
)
from vgw_ryu.pipeline.flows import Flow


@dataclass(frozen=True)
class Table:
    """One OpenFlow table: its id, why it exists, what it may match and continue in."""
    name: str
    id: int
    purpose: str
    matches: frozenset[str]
    next: frozenset[str]


def _t(name: str, tid: int, purpose: str, matches: str, nxt: str) -> Table:
    return Table(name, tid, purpose, frozenset(matches.split()), frozenset(nxt.split()))


# Compatibility names for the register map; fields.py declares the bits themselves.
REG_VERDICT = F.VERDICT.reg      # [0..1] verdict, [2] log, [3] connection direction
REG_RULE = F.RULE.reg            # number of the deciding rule (0: a default)
REG_PUNT_ZONE = F.PUNT_ZONE.reg  # zone of the VM whose policy decided, kept for punts
REG_OUT_PORT = F.OUT_PORT.reg    # ofport of the destination VM (ingress output)
REG_ZONE = F.ZONE.reg            # conntrack zone of the VM this stage works for
VERDICT_MASK = F.VERDICT.mask
LOG_BIT = F.LOG.mask
DIR_BIT = F.DIRECTION.mask       # set: the connection was opened by the peer (ingress rules)
MARK_BLOCKED = F.BLOCKED.mask    # ct_mark: a changed policy denied the original direction

_REG0, _ZONE = F.VERDICT.reg, F.ZONE.reg
TIER_TABLES = 8   # one rules table per policy tier (policy.objects.MAX_TIERS says the same)
CT_MATCH = "ct_state ct_mark"
# Stateless rules are conjunctions in the ct tables: zone, peer and protocol/ports.
# What a rule's clauses match: peers, protocol, ports (both ends), ICMP type/code.
RULE_L3L4 = ("eth_type ip_proto ipv4_src ipv4_dst ipv6_src ipv6_dst tcp_src tcp_dst udp_src "
             "udp_dst icmpv4_type icmpv4_code icmpv6_type icmpv6_code")
STATELESS_MATCH = f"reg6 conj_id {RULE_L3L4}"
TABLES = [
    _t("classify", 0, "in_port -> protected VM (load zone), unprotected/uplink, unknown",
       "in_port", "egress_guard ingress_classify forward punt_unknown"),
    _t("egress_guard", 10, "anti-spoofing: source MAC/IP/ARP/ND must be the VM's",
       "in_port eth_src eth_type ip_proto ipv4_src ipv6_src arp_spa arp_sha udp_src "
       "udp_dst icmpv6_type ipv6_nd_target", "egress_ct ingress_classify"),
    _t("egress_ct", 20, "stateless allow rules pass; everything else: conntrack in the "
       "source VM's zone", f"{STATELESS_MATCH}", "egress_state ingress_classify"),
    _t("egress_state", 30, "+inv drop; replies and related pass; the original direction is judged",
       f"{CT_MATCH} {_ZONE}", "ingress_classify rules egress_action punt_log"),
    _t("egress_action", 35, "act on the verdict: commit, drop, reject or log punt",
       f"{_ZONE} {_REG0} eth_type {CT_MATCH}", "ingress_classify punt_log punt_reject"),
    _t("ingress_classify", 40, "eth_dst -> protected VM on this switch; else forward",
       "eth_dst eth_type ip_proto icmpv6_type", "ingress_ct forward"),
    _t("ingress_ct", 45, "stateless allow rules pass; everything else: conntrack in the "
       "destination VM's zone", f"{STATELESS_MATCH}",
       "ingress_state"),
    _t("ingress_state", 50, "+inv drop; replies and related pass; the original direction is judged",
       f"{CT_MATCH} {_ZONE}", "rules ingress_action punt_log"),
    _t("ingress_action", 55, "act on the verdict: commit and output, drop, reject, log",
       f"{_ZONE} {_REG0} eth_type {CT_MATCH}", "punt_log punt_reject"),
    _t("rules", 60, "the policy: one conjunction per rule (VMs x peers x ports); the "
       "first tier", f"{_ZONE} {_REG0} conj_id ct_state {RULE_L3L4}", "rules_t1"),
    *(_t(f"rules_t{i}", 60 + i, f"tier {i} of the policy (settings.tiers), as 60",
         f"{_ZONE} {_REG0} conj_id ct_state {RULE_L3L4}",
         f"rules_t{i + 1}" if i + 1 < TIER_TABLES else "") for i in range(1, TIER_TABLES)),
    _t("forward", 90, "plain L2 forwarding", "", ""),
    _t("punt_log", 100, "metered copy to the controller for the log, one meter per VM",
       "reg4", ""),
    _t("punt_reject", 101, "metered copy to the controller, which answers RST/ICMP", "", ""),
    _t("punt_unknown", 102, "metered copy of unknown-port traffic for identification", "",
       ""),
]
BY_NAME = {t.name: t for t in TABLES}
BY_ID = {t.id: t for t in TABLES}
T = {t.name: t.id for t in TABLES}


@dataclass(frozen=True)
class Punt:
    """One reason to copy a packet to the controller: its table, meter and copy length."""
    purpose: str
    table_name: str
    meter: int
    max_len: int
    why: str

    @property
    def table(self) -> int:
        """The punt table's id; the packet-in's table_id tells the controller the purpose."""
        return T[self.table_name]


# Ryu 4.34 drops NXT_PACKET_IN2 userdata, so the table is how a packet-in says why it
# came; each purpose has its own meter so a flood of one cannot starve the others.
PUNTS: tuple[Punt, ...] = (
    # 128 bytes hold every header a log record reads (Ethernet, IPv6, TCP).
    Punt("log", "punt_log", 1, 128, "a log copy of a verdict with `log`"),
    Punt("reject", "punt_reject", 2, 256, "a rejected new connection: answer RST/ICMP"),
    Punt("unknown", "punt_unknown", 3, 65535,
         "traffic of an unknown port: identify it (the whole packet, to re-inject it)"),
)
PUNT_BY_PURPOSE: dict[str, Punt] = {p.purpose: p for p in PUNTS}
PUNT_BY_TABLE: dict[int, Punt] = {p.table: p for p in PUNTS}
PUNT_BY_METER: dict[int, Punt] = {p.meter: p for p in PUNTS}
METER_LOG, METER_REJECT, METER_UNKNOWN = (PUNT_BY_PURPOSE[n].meter
                                          for n in ("log", "reject", "unknown"))
# Log copies are metered per VM (a noisy VM spends its own budget): meter BASE + zone.
LOG_METER_BASE = 1024


def log_meter(zone: int) -> int:
    """The meter of one VM's log copies."""
    return LOG_METER_BASE + zone


RULE_TABLES: tuple[str, ...] = tuple(["rules"] + [f"rules_t{i}" for i in range(1, TIER_TABLES)])


def tier_table(tier: int) -> str:
    """The rules table of a tier (0: table 60)."""
    return RULE_TABLES[tier]


def check(flows: list[Flow]) -> list[str]:
    """Problems with flows against the declared pipeline (empty when all is well)."""
    problems = []
    for f in flows:
        table = BY_ID.get(f.table)
        if table is None:
            problems.append(f"undeclared table {f.table}: {f.body}")
            continue
        for name, _ in f.match:
            if name not in table.matches:
                problems.append(f"{table.name} does not declare match {name}: {f.body}")
        allowed = {T[n] for n in table.next}
        for target in f.targets():
            if target not in allowed:
                problems.append(f"{table.name} may not continue in table {target}: {f.body}")
    return problems
