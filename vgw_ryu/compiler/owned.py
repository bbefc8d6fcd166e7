"""Flows kept per owner: the bookkeeping under the incremental compiler.

Each owner (the fixed flows, the ports, a VM, a rule, a shared clause) has its flows
and the inputs they came from; ``_owner`` rebuilds an owner's flows only when its inputs
changed. Flows are the switch's by key (table, priority, match): when two owners build
a flow with one key, a later VM's replaces it and anyone else must build the same flow
(else ``FlowConflictError``: the caller compiles in full). Every result says what
changed since the one before (``FlowList.added``/``removed``, as the sync compares
flows: by table and cookie). A compile can also hand out, while it runs, the flows it
adds under keys the previous result did not have (``_stream``): a switch holding exactly
that result can take them before the compile ends. No Ryu here.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

from vgw_ryu.compiler.builder import FlowSet
from vgw_ryu.pipeline.flows import Flow

FlowKey = tuple[int, int, tuple]     # Flow.key: (table, priority, match), the switch's identity
SyncKey = tuple[int, int]            # (table, cookie): what the sync diff compares
# Owner stages, in the order compile_switch adds their flows: when two owners build a
# flow with one key, a later VM replaces it and anyone else must build the same flow.
INFRA, PORTS, VM, RULE, CLAUSE = range(5)
Owner = tuple[int, Any]              # (stage, name within the stage)

_GENERATIONS = itertools.count(1)
# Flows handed to the stream at a time (at an owner's end, so a chunk can be larger).
STREAM_CHUNK = 1000
Stream = Callable[[list[Flow]], None]


def next_generation() -> int:
    """A new result's name (FlowList.gen)."""
    return next(_GENERATIONS)


class FlowList(list):
    """Desired flows (in no particular order) and what changed since an earlier result.

    ``gen`` names this result; ``added`` (flows) and ``removed`` ((table, cookie) keys)
    are relative to the result named ``base`` (None: not known, compare everything).
    ``meters``: the meters the flows name.
    """

    def __init__(self, flows: Iterable[Flow], gen: int, base: int | None = None,
                 added: list[Flow] | None = None, removed: list[SyncKey] | None = None,
                 meters: set[int] | None = None):
        super().__init__(flows)
        self.gen = gen
        self.base = base
        self.added: list[Flow] = added or []
        self.removed: list[SyncKey] = removed or []
        self.meters: set[int] = meters if meters is not None else \
            {f.meter for f in self if f.meter is not None}


class FlowConflictError(Exception):
    """Two owners build different flows under one key: the full compile decides (and
    raises, as it does for such a state)."""


def built(build: Callable[[FlowSet], None]) -> list[Flow]:
    """The flows a builder function adds to a fresh FlowSet."""
    b = FlowSet()
    build(b)
    return list(b.flows.values())


class OwnedFlows:
    """A switch's flows by owner, with what changed since the last result."""

    def _reset_owned(self) -> None:
        self.inputs: dict[Owner, Any] = {}        # owner -> the inputs of its flows
        self.owned: dict[Owner, list[Flow]] = {}
        self.out: dict[FlowKey, Flow] = {}        # the switch's flows
        self.holder: dict[FlowKey, Owner] = {}    # who built each (one owner) ...
        self.shared: dict[FlowKey, dict[Owner, Flow]] = {}   # ... or several
        self.in_sync: dict[SyncKey, int] = {}     # (table, cookie) -> flows with it
        self.meters: dict[int, int] = {}          # meter -> flows naming it
        self.gen: int | None = None
        self._before: dict[FlowKey, Flow | None] = {}
        self._stream: Stream | None = None
        self._fresh: list[Flow] = []
        self._chunk = STREAM_CHUNK

    def _streaming(self, stream: Stream | None, holds: int | None,
                   chunk: int = STREAM_CHUNK) -> None:
        """Stream this compile's new flows to ``stream``, ``chunk`` at a time, if the
        receiver ``holds`` the last result (its ``gen``); otherwise, or with None, not."""
        self._fresh = []
        self._chunk = max(1, chunk)
        self._stream = stream if holds is not None and holds == self.gen else None

    def _owner(self, owner: Owner, inputs: Any, build: Callable[[], list[Flow]]) -> None:
        """Rebuild an owner's flows if its inputs changed."""
        if owner in self.inputs and self.inputs[owner] == inputs:
            return
        self._own(owner, build())
        self.inputs[owner] = inputs

    def _own(self, owner: Owner, new: list[Flow]) -> None:
        kept = self._replace(owner, self.owned.pop(owner, []), new)
        if kept:
            self.owned[owner] = kept

    def _drop(self, owner: Owner) -> None:
        self._own(owner, [])
        self.inputs.pop(owner, None)

    def _replace(self, owner: Owner, old: list[Flow], new: list[Flow]) -> list[Flow]:
        """An owner's flows were ``old`` and are ``new``; returns them, an unchanged flow
        as its old object."""
        if not old:
            for f in new:
                self._add(owner, f)
            self._emit_if_full()
            return new
        prev = {f.key: f for f in old}
        kept: list[Flow] = []
        for f in new:
            o = prev.pop(f.key, None)
            if o is not None:
                if o.cookie == f.cookie and o == f:
                    kept.append(o)
                    continue
                self._remove(owner, o)
            self._add(owner, f)
            kept.append(f)
        for o in prev.values():
            self._remove(owner, o)
        self._emit_if_full()
        return kept

    def _emit_if_full(self) -> None:
        """Hand the streamed flows gathered so far out, once there are a chunk's worth."""
        if self._stream is not None and len(self._fresh) >= self._chunk:
            fresh, self._fresh = self._fresh, []
            self._stream(fresh)

    def _add(self, owner: Owner, f: Flow) -> None:
        # (Each lookup hashes the key's whole match: at 25,000 flows a compile makes
        # as few as it can.)
        k = f.key
        cur = self.out.get(k)
        before = self._before.setdefault(k, cur) if self.gen is not None else None
        if cur is None:
            # No owner builds this key yet (``out`` has a flow for every key held).
            self.out[k] = f
            self.holder[k] = owner
            # A key the last result did not have: the switch has no flow there. (One
            # replaced or removed later in this compile is set right by its end.) At
            # most one flow per key is streamed: its first holder streams it, and any
            # later owner makes it shared, which never streams.
            if self._stream is not None and before is None:
                self._fresh.append(f)
            return
        several = self.shared.get(k)
        if several is not None:
            several[owner] = f
            self._resolve(k)
            return
        self.shared[k] = {self.holder.pop(k): cur, owner: f}
        self._resolve(k)

    def _remove(self, owner: Owner, f: Flow) -> None:
        k = f.key
        if self.gen is not None:
            self._before.setdefault(k, self.out.get(k))
        several = self.shared.get(k)
        if several is None:
            del self.out[k]
            del self.holder[k]
            return
        del several[owner]
        if len(several) == 1:
            ((h, g),) = several.items()
            del self.shared[k]
            self.holder[k], self.out[k] = h, g
        else:
            self._resolve(k)

    def _resolve(self, k: FlowKey) -> None:
        """The flow of a key several owners build, as compile_switch ends up with it: it
        adds owners stage by stage (VMs by name), a VM's flow replaces what came before
        and any other owner must build the same flow."""
        current: Flow | None = None
        several = self.shared[k]
        for owner in sorted(several):
            f = several[owner]
            if current is not None and owner[0] != VM and f != current:
                raise FlowConflictError(f"two different flows for one match: {f.body} / "
                                        f"{current.body}")
            current = f
        self.out[k] = current

    def _result(self) -> FlowList:
        """The flows, and what changed (as the sync sees flows) since the last result."""
        if self.gen is None:
            # The first result: nothing to compare with, the sync compares everything.
            for f in self.out.values():
                sk = (f.table, f.cookie)
                self.in_sync[sk] = self.in_sync.get(sk, 0) + 1
                if f.meter is not None:
                    self.meters[f.meter] = self.meters.get(f.meter, 0) + 1
            self.gen = next_generation()
            return FlowList(self.out.values(), self.gen, meters=set(self.meters))
        change: dict[SyncKey, int] = {}
        came: dict[SyncKey, Flow] = {}
        added: list[Flow] = []
        in_sync, out_get = self.in_sync, self.out.get
        for k, before in self._before.items():
            after = out_get(k)
            if before is after:
                continue
            if before is None:
                sk = (after.table, after.cookie)
                if sk not in in_sync:
                    # A flow the switch lacks (most of a first programming): counted
                    # now. Nothing later in this loop lowers its count: a flow leaving
                    # had its (table, cookie) counted before this compile.
                    in_sync[sk] = 1
                    added.append(after)
                    self._count_meter(after.meter, 1)
                    continue
            elif after is not None and before.cookie == after.cookie:
                continue
            if before is not None:
                sk = (before.table, before.cookie)
                change[sk] = change.get(sk, 0) - 1
                self._count_meter(before.meter, -1)
            if after is not None:
                sk = (after.table, after.cookie)
                change[sk] = change.get(sk, 0) + 1
                came[sk] = after
                self._count_meter(after.meter, 1)
        removed: list[SyncKey] = []
        for sk, d in change.items():
            was = in_sync.get(sk, 0)
            now = was + d
            if now:
                in_sync[sk] = now
            else:
                in_sync.pop(sk, None)
            if not was and now:
                added.append(came[sk])
            elif was and not now:
                removed.append(sk)
        self._before = {}
        base, self.gen = self.gen, next_generation()
        return FlowList(self.out.values(), self.gen, base, added, removed, set(self.meters))

    def _count_meter(self, meter: int | None, d: int) -> None:
        if meter is not None:
            n = self.meters.get(meter, 0) + d
            if n:
                self.meters[meter] = n
            else:
                del self.meters[meter]
