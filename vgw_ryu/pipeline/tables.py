"""The pipeline declared as data: tables, what each may match, where each may jump.

``check()`` rejects a flow in an undeclared table, matching an undeclared field or
continuing in an undeclared next table; the compiler's output is checked by a unit
test. flows/PIPELINE.md explains every table, register and bit in prose.
"""

from __future__ import annotations

from dataclasses import dataclass

from vgw_ryu.pipeline.flows import Flow


@dataclass(frozen=True)
class Table:
    name: str
    id: int
    purpose: str
    matches: frozenset[str]
    next: frozenset[str]


def _t(name: str, tid: int, purpose: str, matches: str, nxt: str) -> Table:
    return Table(name, tid, purpose, frozenset(matches.split()), frozenset(nxt.split()))


# Register map (antrea-style: one place names every bit the pipeline uses).
REG_VERDICT = "reg0"     # [0..1] verdict, [2] log, [3] connection direction
REG_RULE = "reg3"        # number of the deciding rule (0: a default)
REG_PUNT_ZONE = "reg4"   # zone of the VM whose policy decided, kept for punts
REG_OUT_PORT = "reg5"    # ofport of the destination VM (ingress output)
REG_ZONE = "reg6"        # conntrack zone of the VM this stage works for

VERDICT_ALLOW, VERDICT_DENY, VERDICT_REJECT = 1, 2, 3
VERDICT_MASK = 0x3
LOG_BIT = 0x4
DIR_BIT = 0x8            # set: the connection was opened by the peer (ingress rules)

# ct_mark: bit 31 blocked (a changed policy denied the connection's original direction).
MARK_BLOCKED = 0x80000000

# Cookie owner kinds (flows.owner_bits).
KIND_INFRA, KIND_VM, KIND_RULE, KIND_PEER, KIND_PORT, KIND_DEFAULT = 1, 2, 3, 4, 5, 6
KIND_NAMES = {KIND_INFRA: "infra", KIND_VM: "vm", KIND_RULE: "rule", KIND_PEER: "peer",
              KIND_PORT: "port", KIND_DEFAULT: "default"}

# Meters, one per punt purpose.
METER_LOG, METER_REJECT, METER_UNKNOWN = 1, 2, 3

CT_MATCH = "ct_state ct_mark"
TABLES = [
    _t("classify", 0, "in_port -> protected VM (load zone), unprotected/uplink, unknown",
       "in_port", "egress_guard ingress_classify forward punt_unknown"),
    _t("egress_guard", 10, "anti-spoofing: source MAC/IP/ARP/ND must be the VM's",
       "in_port eth_src eth_type ip_proto ipv4_src ipv6_src arp_spa arp_sha udp_src "
       "udp_dst icmpv6_type ipv6_nd_target", "egress_ct ingress_classify"),
    _t("egress_ct", 20, "conntrack in the source VM's zone", "eth_type", "egress_state"),
    _t("egress_state", 30, "+inv drop; replies and related pass; the original direction is judged",
       f"{CT_MATCH}", "ingress_classify rules egress_action"),
    _t("egress_action", 35, "act on the verdict: commit, drop, reject or log punt",
       f"reg0 eth_type {CT_MATCH}", "ingress_classify punt_log punt_reject"),
    _t("ingress_classify", 40, "eth_dst -> protected VM on this switch; else forward",
       "eth_dst eth_type ip_proto icmpv6_type", "ingress_ct forward"),
    _t("ingress_ct", 45, "conntrack in the destination VM's zone", "eth_type",
       "ingress_state"),
    _t("ingress_state", 50, "+inv drop; replies and related pass; the original direction is judged",
       f"{CT_MATCH}", "rules ingress_action"),
    _t("ingress_action", 55, "act on the verdict: commit and output, drop, reject, log",
       f"reg0 eth_type {CT_MATCH}", "punt_log punt_reject"),
    _t("rules", 60, "the policy: one conjunction per rule (VMs x peers x ports)",
       "reg6 reg0 conj_id eth_type ip_proto ipv4_src ipv4_dst ipv6_src ipv6_dst tcp_dst "
       "udp_dst", ""),
    _t("forward", 90, "plain L2 forwarding", "", ""),
    _t("punt_log", 100, "metered copy to the controller for the log", "", ""),
    _t("punt_reject", 101, "metered copy to the controller, which answers RST/ICMP", "", ""),
    _t("punt_unknown", 102, "metered copy of unknown-port traffic for identification", "",
       ""),
]
BY_NAME = {t.name: t for t in TABLES}
BY_ID = {t.id: t for t in TABLES}
T = {t.name: t.id for t in TABLES}


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
