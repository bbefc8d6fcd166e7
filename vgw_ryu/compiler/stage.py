"""The two stages a packet can be judged in, as data, so one builder serves both.

Egress judges a packet in the zone of the VM that sent it, ingress in the zone of the
VM it is for. They differ only in the tables they use, the direction bit the rules see
and what "pass" means at the end: egress goes on to ingress_classify (the destination
may be a protected VM too), ingress outputs to the VM's port.
"""

from __future__ import annotations

from dataclasses import dataclass

from vgw_ryu.pipeline import fields as F  # noqa: N812 - F.<field> reads like a register map
from vgw_ryu.pipeline.flows import Action, OutputReg, Resubmit
from vgw_ryu.pipeline.tables import T


@dataclass(frozen=True)
class Stage:
    """One stage's tables, its direction value and how it lets a packet pass."""
    name: str
    ct: str                          # conntrack table
    state: str                       # ct state table: replies pass, originals are judged
    action: str                      # acts on the verdict the rules loaded into reg0
    direction: int                   # DIRECTION field value while this stage's rules run
    default: str                     # settings attribute with the stage's default verdict
    pass_actions: tuple[Action, ...]  # "pass" as the last thing a flow does ...
    pass_goto: str | None             # ... with this goto
    pass_then: tuple[Action, ...]     # "pass" that more actions may follow (a log punt)


EGRESS = Stage("egress", "egress_ct", "egress_state", "egress_action", F.DIR_EGRESS,
               "default_egress", (), "ingress_classify", (Resubmit(T["ingress_classify"]),))
INGRESS = Stage("ingress", "ingress_ct", "ingress_state", "ingress_action", F.DIR_INGRESS,
                "default_ingress", (OutputReg(F.OUT_PORT.reg),), None,
                (OutputReg(F.OUT_PORT.reg),))
STAGES: tuple[Stage, ...] = (EGRESS, INGRESS)
