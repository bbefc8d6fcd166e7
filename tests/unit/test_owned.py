"""The per-owner bookkeeping under the incremental compiler: what a result says was
added and removed is counted by (table, cookie), the sync's key, even when two flows
under different keys share one."""

from __future__ import annotations

from vgw_ryu.compiler.owned import VM, FlowList, OwnedFlows, Owner
from vgw_ryu.pipeline.flows import Flow, Normal


class Owned(OwnedFlows):
    """OwnedFlows driven by hand: each step sets some owners' flows."""

    def __init__(self) -> None:
        self._reset_owned()

    def step(self, owners: dict[Owner, list[Flow]], gone: tuple[Owner, ...] = ()
             ) -> FlowList:
        self._before = {}
        self._streaming(None, None)
        for owner, flows in owners.items():
            self._own(owner, flows)
        for owner in gone:
            self._drop(owner)
        return self._result()


def test_two_keys_with_one_sync_key_are_counted_as_two():
    a = Flow.make(1, 10, {"in_port": 1}, [Normal()])
    # Another key (match) with a's cookie: what the switch would see as one flow.
    b = Flow.from_fields({**a.__dict__, "match": (("in_port", 2),)})
    assert a.key != b.key and (a.table, a.cookie) == (b.table, b.cookie)
    owned = Owned()
    owned.step({})
    both = owned.step({(VM, "a"): [a], (VM, "b"): [b]})
    assert [(f.table, f.cookie) for f in both.added] == [(a.table, a.cookie)]
    # One of the two goes: the other still wants (table, cookie) on the switch.
    one = owned.step({}, gone=((VM, "a"),))
    assert one.added == [] and one.removed == []
    none = owned.step({}, gone=((VM, "b"),))
    assert none.removed == [(a.table, a.cookie)]
