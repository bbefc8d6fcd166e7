"""Every flow priority, named and grouped by the tables it is used in.

Within a table a higher priority wins, so the order of the names below *is* the
behaviour of that table; flows/PIPELINE.md's priority table is generated from
``PRIORITIES``. The compiler uses only these names.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Priority:
    """A named priority: the tables it is used in, its value and why it sits there."""
    name: str
    tables: tuple[str, ...]
    value: int
    meaning: str


PRIORITIES: list[Priority] = []


def _p(name: str, tables: str, value: int, meaning: str) -> int:
    PRIORITIES.append(Priority(name, tuple(tables.split()), value, meaning))
    return value


STATE_TABLES = "egress_state ingress_state"
ACTION_TABLES = "egress_action ingress_action"

CLASSIFY_PORT = _p("CLASSIFY_PORT", "classify", 100,
                   "known ports: protected VM, unprotected VM or uplink, silent unknown port")
CLASSIFY_UNKNOWN = _p("CLASSIFY_UNKNOWN", "classify", 1, "any other port: punt to identify it")
CLASSIFY_DROP = _p("CLASSIFY_DROP", "classify", 0,
                   "drop: a bridge forwards nothing it was not told to")

GUARD_CONTROL = _p("GUARD_CONTROL", "egress_guard", 110,
                   "own ARP, DHCP, RS/NS/MLD and adverts for own addresses skip the policy")
GUARD_SPOOF = _p("GUARD_SPOOF", "egress_guard", 105,
                 "any other advert, router advert or redirect: drop")
GUARD_OWN_IP = _p("GUARD_OWN_IP", "egress_guard", 100, "own source IPs go on to conntrack")

CT_STATELESS = _p("CT_STATELESS", "egress_ct ingress_ct", 200,
                  "stateless allow rules (conjunctions): pass without conntrack")
CT_TRACK = _p("CT_TRACK", "egress_ct ingress_ct", 100, "IPv4 and IPv6 into conntrack")

STATE_INVALID_VM = _p("STATE_INVALID_VM", STATE_TABLES, 310,
                      "`+inv` in a protected VM's zone: drop, counted per VM (the controller "
                      "reports ports whose traffic conntrack finds invalid)")
STATE_INVALID = _p("STATE_INVALID", STATE_TABLES, 300, "`+inv`: drop")
STATE_BLOCKED_REPLY = _p("STATE_BLOCKED_REPLY", STATE_TABLES, 220,
                         "replies of a blocked connection: drop")
STATE_RELATED = _p("STATE_RELATED", STATE_TABLES, 210, "`+rel` (ICMP errors): pass")
STATE_REPLY = _p("STATE_REPLY", STATE_TABLES, 150, "replies: pass, never judged")
STATE_JUDGE = _p("STATE_JUDGE", STATE_TABLES, 100,
                 "original direction, new or established: the rules, then the action table")

ACTION_ALLOW_LOG = _p("ACTION_ALLOW_LOG", ACTION_TABLES, 110,
                      "allow + log, new: commit, pass, then a log copy")
ACTION_VM_LOG_ALLOW = _p("ACTION_VM_LOG_ALLOW", ACTION_TABLES, 108,
                         "a VM logging all: allow new, commit, pass, then a log copy")
ACTION_UNBLOCK = _p("ACTION_UNBLOCK", ACTION_TABLES, 105,
                    "allow of a blocked connection: commit with the blocked bit cleared")
ACTION_COMMIT = _p("ACTION_COMMIT", ACTION_TABLES, 100,
                   "allow new: commit; deny/reject established: commit as blocked")
ACTION_ALLOW = _p("ACTION_ALLOW", ACTION_TABLES, 99, "allow established: pass")
ACTION_PUNT = _p("ACTION_PUNT", ACTION_TABLES, 95,
                 "deny + log: log copy; reject of a new connection: reject punt")
ACTION_VM_LOG_DROP = _p("ACTION_VM_LOG_DROP", ACTION_TABLES, 96,
                        "a VM logging drops: deny with a log copy, reject punt marked logged")
ACTION_DROP = _p("ACTION_DROP", ACTION_TABLES, 90, "deny or reject: drop")

INGRESS_ND = _p("INGRESS_ND", "ingress_classify", 110,
                "neighbour solicitations/adverts to a VM: forward, not tracked")
INGRESS_VM = _p("INGRESS_VM", "ingress_classify", 100,
                "IP to a protected VM here: load its zone and port, go to conntrack")
INGRESS_OTHER = _p("INGRESS_OTHER", "ingress_classify", 1, "anything else: forward")

RULES_BASE = 1000  # the rule band starts above every default
RULE_PRIORITY_MAX = 1000  # highest priority a policy rule may have (policy.parse checks it)
ACTION_RANKS = 4  # room per rule priority for deny (3) > reject (2) > pass (1) > allow (0)
RULE_TABLES = "rules " + " ".join(f"rules_t{i}" for i in range(1, 8))
RULES_DEFAULT = _p("RULES_DEFAULT", RULE_TABLES, 1,
                   "the defaults from settings, per direction (in the last tier's table)")
RULES_TIER_MISS = _p("RULES_TIER_MISS", RULE_TABLES, 0,
                     "nothing in this tier decided: on to the next tier's table")
RULES_BAND = _p("RULES_BAND", RULE_TABLES, RULES_BASE,
                "base of the rule band: a rule gets 1000 + 4 x its priority (1-1000) + "
                "(3 deny, 2 reject, 1 pass, 0 allow), so 1004-5003")

FORWARD = _p("FORWARD", "forward", 1, "`NORMAL`")
PUNT_VM = _p("PUNT_VM", "punt_log", 10, "a VM's log copy through its own meter "
             "(reg4: its zone)")
PUNT = _p("PUNT", "punt_log punt_reject punt_unknown", 1, "metered copy to the controller")


def rule_priority(rule_priority: int, action_rank: int) -> int:
    """OpenFlow priority of a rule: higher rule priority first, then deny > reject > allow."""
    if not 0 <= action_rank < ACTION_RANKS:
        raise ValueError(f"action rank {action_rank} outside 0..{ACTION_RANKS - 1}")
    return RULES_BASE + rule_priority * ACTION_RANKS + action_rank


def for_table(table: str) -> list[Priority]:
    """The named priorities used in one table, highest first."""
    return sorted((p for p in PRIORITIES if table in p.tables), key=lambda p: -p.value)
