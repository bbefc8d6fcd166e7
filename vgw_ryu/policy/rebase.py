"""A state document read back from the database, applied to the state held by the
objects that differ, as one-object writes, instead of parsed whole.

A fleet agent or API server adopts every other writer's revision from its replica.
Re-reading every row and parsing the whole document cost ~70 ms a revision at 1,000 VMs
(``python -m vgw_lab.bench.refresh``), for writes that usually change one object.
``rebase`` applies only the VMs, groups and policies whose documents differ
(``replace_object``/``remove_object`` validate exactly as a whole parse would), sharing
every other object with the state held. No Ryu here.
"""

from __future__ import annotations

from typing import Any

from vgw_ryu.policy.docs import object_doc, settings_doc
from vgw_ryu.policy.edits import remove_object, replace_object
from vgw_ryu.policy.objects import State, ValidationError

SECTIONS = ("vms", "groups", "policies")
# Beyond this many changed objects one whole parse costs less than applying each.
MAX_OBJECTS = 64


class DocCache:
    """Each object's canonical document, kept while the state shares the object."""

    def __init__(self) -> None:
        self._docs: dict[str, dict[str, tuple[Any, dict[str, Any]]]] = {k: {} for k in SECTIONS}

    def doc(self, kind: str, name: str, obj: Any) -> dict[str, Any]:
        had = self._docs[kind].get(name)
        if had is not None and had[0] is obj:
            return had[1]
        d = object_doc(kind, obj)
        self._docs[kind][name] = (obj, d)
        return d

    def forget(self, kind: str, names: set[str]) -> None:
        for name in names:
            self._docs[kind].pop(name, None)


def changes(state: State, doc: dict[str, Any], cache: DocCache
            ) -> list[tuple[str, str, Any]] | None:
    """(section, name, document or None for removed) of each object ``doc`` has other
    than ``state``; None when more than the objects differ (settings, assertions) or
    too many objects do."""
    if (doc.get("settings") or {}) != settings_doc(state.settings):
        return None
    if (doc.get("expectations") or []) != [e.doc() for e in state.expectations]:
        return None
    out: list[tuple[str, str, Any]] = []
    for kind in SECTIONS:
        held = getattr(state, kind)
        section = doc.get(kind) or {}
        gone = held.keys() - section.keys()
        out += [(kind, name, None) for name in sorted(gone)]
        for name, body in section.items():
            obj = held.get(name)
            if obj is None or cache.doc(kind, name, obj) != body:
                out.append((kind, name, body))
        cache.forget(kind, gone)
        if len(out) > MAX_OBJECTS:
            return None
    return out


def rebase(state: State, doc: dict[str, Any], cache: DocCache) -> State | None:
    """The state of ``doc`` derived from ``state`` by its changed objects (the very
    state held when nothing differs); None when it must be parsed whole: more than
    objects differ, or a step on the way is invalid (a whole parse then says whether
    the document is)."""
    todo = changes(state, doc, cache)
    if todo is None:
        return None
    # Objects come before what may name them, removals after what stopped naming them.
    order = {kind: i for i, kind in enumerate(SECTIONS)}
    added = sorted((c for c in todo if c[2] is not None), key=lambda c: order[c[0]])
    removed = sorted((c for c in todo if c[2] is None), key=lambda c: -order[c[0]])
    try:
        for kind, name, body in added:
            state = replace_object(state, kind, name, body)
        for kind, name, _ in removed:
            state = remove_object(state, kind, name)
    except ValidationError:
        return None
    return state
