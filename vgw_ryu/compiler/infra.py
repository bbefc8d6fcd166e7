"""The fixed flows every bridge has: classify defaults, conntrack, the state and action
tables of each stage, the rules defaults, forwarding and the punt tables."""

from __future__ import annotations

from collections.abc import Sequence

from vgw_ryu.compiler.builder import FlowSet, Match
from vgw_ryu.compiler.proto import IP_FAMILIES
from vgw_ryu.compiler.stage import STAGES, Stage
from vgw_ryu.pipeline import fields as F  # noqa: N812 - F.<field> reads like a register map
from vgw_ryu.pipeline import priorities as P  # noqa: N812 - P.<name> reads like a band table
from vgw_ryu.pipeline.cookies import KIND_DEFAULT
from vgw_ryu.pipeline.ctstate import ct_state
from vgw_ryu.pipeline.flows import Action, Controller, Ct, Normal, Resubmit
from vgw_ryu.pipeline.tables import PUNT_BY_PURPOSE, PUNTS, T, tier_table
from vgw_ryu.policy.model import Settings

NEW = ct_state("+new+trk")
EST = ct_state("+est+trk")
BLOCKED = F.BLOCKED.match(1)
ALLOW = F.VERDICT.match(F.VERDICT_ALLOW)
# Before a punt the deciding VM's zone is kept in reg4: the controller needs it, and an
# egress pass to table 40 reloads reg6 for the destination before the punt runs.
KEEP_ZONE = F.copy(F.ZONE, F.PUNT_ZONE)
COMMIT_NEW = Ct(commit=True, label_reg=F.RULE.reg)


def _passes(b: FlowSet, stage: Stage, table: str, priority: int, match: Match,
            first: Sequence[Action] = ()) -> None:
    """A flow that does ``first`` and then lets the packet pass the stage."""
    b.add(table, priority, match, [*first, *stage.pass_actions], goto=stage.pass_goto)


def _punt_table(purpose: str) -> int:
    return PUNT_BY_PURPOSE[purpose].table


def _punt(purpose: str) -> list[Action]:
    return [KEEP_ZONE, Resubmit(_punt_table(purpose))]


def build_classify_defaults(b: FlowSet, settings: Settings) -> None:
    """classify: ports nobody told us about, and the drop below everything."""
    # classify: an unknown port is punted for identification and forwarded only if
    # settings allow it; the punt comes last so its meter drops no forwarded copy.
    forward = [Resubmit(T["ingress_classify"])] if settings.unknown_ports == "allow" else []
    b.add("classify", P.CLASSIFY_UNKNOWN, {},
          [*forward, Resubmit(_punt_table("unknown"))])
    # classify: a bridge forwards nothing it was not told to.
    b.add("classify", P.CLASSIFY_DROP, {}, [])


def build_conntrack(b: FlowSet, stage: Stage) -> None:
    """*_ct: track IP in the zone the classifier loaded into reg6."""
    # *_ct: ct() needs an IP prerequisite, hence one flow per family.
    for eth in IP_FAMILIES:
        b.add(stage.ct, P.CT_TRACK, {"eth_type": eth}, [Ct(table=T[stage.state])])


def build_state(b: FlowSet, stage: Stage) -> None:
    """*_state: what passes on its conntrack state alone, and what is judged."""
    # *_state: invalid packets never pass.
    b.add(stage.state, P.STATE_INVALID, dict([ct_state("+inv+trk")]), [])
    # *_state: related packets (ICMP errors of a known connection) always do.
    _passes(b, stage, stage.state, P.STATE_RELATED, dict([ct_state("+rel-inv+trk")]))
    # *_state: replies are never judged (their connection was, on its original
    # direction); they stop once a policy change blocked the connection.
    reply = ct_state("+est+rpl-inv+trk")
    b.add(stage.state, P.STATE_BLOCKED_REPLY, F.match(reply, BLOCKED), [])
    _passes(b, stage, stage.state, P.STATE_REPLY, dict([reply]))
    # *_state: every packet in the original direction, new or established, is judged
    # by this stage's rules and then acted on, so policy changes reach live connections.
    b.add(stage.state, P.STATE_JUDGE, dict([ct_state("+trk-rpl-inv")]),
          [F.DIRECTION.load(stage.direction), Resubmit(T["rules"]), Resubmit(T[stage.action])])


def build_allow(b: FlowSet, stage: Stage) -> None:
    """*_action, allow: commit what is new (or was blocked) and pass."""
    for eth in IP_FAMILIES:  # ct() needs an IP prerequisite in the match
        # *_action: a new allowed connection is committed so its replies pass.
        # The admitting rule goes into ct_label, so the connection can be shown with it.
        _passes(b, stage, stage.action, P.ACTION_COMMIT, F.match(ALLOW, ("eth_type", eth), NEW),
                [COMMIT_NEW])
        # *_action: with log, the log copy goes out after the forwarding actions; the
        # zone is kept first because passing egress reloads reg6 for the destination.
        allow_log = F.match(ALLOW, F.LOG.match(1), ("eth_type", eth), NEW)
        b.add(stage.action, P.ACTION_ALLOW_LOG, allow_log,
              [COMMIT_NEW, KEEP_ZONE, *stage.pass_then, Resubmit(_punt_table("log"))])
        # *_action: a blocked connection allowed again is committed with the bit cleared.
        _passes(b, stage, stage.action, P.ACTION_UNBLOCK,
                F.match(ALLOW, ("eth_type", eth), EST, BLOCKED), [Ct(commit=True, mark=0)])
    # *_action: an established allowed connection just passes.
    _passes(b, stage, stage.action, P.ACTION_ALLOW, dict([ALLOW]))


def build_deny_and_reject(b: FlowSet, stage: Stage) -> None:
    """*_action, deny and reject: drop, block established connections, punt."""
    for verdict in (F.VERDICT_DENY, F.VERDICT_REJECT):
        hit = F.VERDICT.match(verdict)
        # *_action: what the policy refuses is dropped.
        b.add(stage.action, P.ACTION_DROP, dict([hit]), [])
        # *_action: an established connection it now refuses is committed as blocked,
        # which stops its replies too (see *_state); the first packet that blocks it
        # also goes to the log as the connection's revocation record.
        for eth in IP_FAMILIES:
            b.add(stage.action, P.ACTION_COMMIT,
                  F.match(hit, ("eth_type", eth), EST, F.BLOCKED.match(0)),
                  [Ct(commit=True, mark=F.BLOCKED.mask), F.REVOKE.load(1), *_punt("log")])
    # *_action: deny with log sends a copy to the log.
    b.add(stage.action, P.ACTION_PUNT,
          F.match(F.VERDICT.match(F.VERDICT_DENY), F.LOG.match(1)), _punt("log"))
    # *_action: reject of a new connection goes to the controller, which answers it.
    b.add(stage.action, P.ACTION_PUNT, F.match(F.VERDICT.match(F.VERDICT_REJECT), NEW),
          _punt("reject"))


def build_rule_default(b: FlowSet, stage: Stage, settings: Settings) -> None:
    """rules: the stage's default verdict from settings, below every rule."""
    verdict = getattr(settings, stage.default)
    log = verdict == "deny" and settings.log_default_deny
    # rules (the last tier's table): rule number 0 tells a punt that no rule decided.
    # New and established packets count apart: the new ones are the connection
    # decisions (sessions).
    last = tier_table(len(settings.tiers) - 1)
    for state in (ct_state("+new+trk"), ct_state("-new+trk")):
        b.add(last, P.RULES_DEFAULT, F.match(F.DIRECTION.match(stage.direction), state),
              [F.load((F.VERDICT, F.VERDICTS[verdict]), (F.LOG, int(log))), F.RULE.load(0)],
              kind=KIND_DEFAULT)


def build_tiers(b: FlowSet, settings: Settings) -> None:
    """rules_t*: a tier where no rule decided hands the packet to the next one."""
    for i in range(len(settings.tiers) - 1):
        # rules (tier i): nothing here decided; the next tier judges.
        b.add(tier_table(i), P.RULES_TIER_MISS, {}, [Resubmit(T[tier_table(i + 1)])])


def build_forward_and_punts(b: FlowSet) -> None:
    """ingress_classify's fallback, forward and the metered punt tables."""
    # ingress_classify: traffic for no protected VM here is plain forwarding.
    b.add("ingress_classify", P.INGRESS_OTHER, {}, goto="forward")
    # forward: the switch's own L2 learning.
    b.add("forward", P.FORWARD, {}, [Normal()])
    # punt_*: the meter protects the controller; it drops only the controller's copy.
    for punt in PUNTS:
        b.add(punt.table_name, P.PUNT, {}, [Controller(punt.max_len)], meter=punt.meter)


def build_infra(b: FlowSet, settings: Settings) -> None:
    """All fixed flows: they depend only on the settings."""
    build_classify_defaults(b, settings)
    for stage in STAGES:
        build_conntrack(b, stage)
        build_state(b, stage)
        build_allow(b, stage)
        build_deny_and_reject(b, stage)
        build_rule_default(b, stage, settings)
    build_tiers(b, settings)
    build_forward_and_punts(b)
