"""One-object writes: a VM, group or policy parsed alone and put into a valid state,
checked only for what that one change can break, exactly as parsing the whole document
with it would check it (tests/unit/test_object_writes.py holds the two equal). No Ryu
here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from vgw_ryu.policy import expectations
from vgw_ryu.policy.checks import check_identity, check_members, check_policies
from vgw_ryu.policy.fields import _Ctx, _name
from vgw_ryu.policy.objects import FieldError, Group, Policy, State, ValidationError, Vm
from vgw_ryu.policy.parse import (
    _parse_cached,
    parse_group,
    parse_policy,
    parse_vm,
    resolve_protection,
)
from vgw_ryu.policy.ruleset import keep_members, members_after

_PARSERS = {"vms": parse_vm, "groups": parse_group, "policies": parse_policy}


def replace_object(state: State, kind: str, name: str, body: Any) -> State:
    """``state`` with one VM, group or policy (``kind`` is its section) written.

    Validated exactly as ``parse_state`` would validate the whole document with that
    one change (the object itself, then every cross-object check), without parsing
    the other objects again: a one-object write costs that object. Raises
    ValidationError.
    """
    ctx = _Ctx()
    path = f"{kind}.{name}"
    obj = _parse_cached(ctx, kind, path, name, body, _PARSERS[kind]) \
        if _name(ctx, path, name) else None
    if ctx.errors or obj is None:
        raise ValidationError(ctx.errors or [FieldError(path, "invalid")])
    section = dict(getattr(state, kind))
    had = name in section
    section[name] = obj
    return _with_section(ctx, state, kind, name,
                         section if had else dict(sorted(section.items())))


def remove_object(state: State, kind: str, name: str) -> State:
    """``state`` without one VM, group or policy, validated as ``replace_object``."""
    section = dict(getattr(state, kind))
    section.pop(name, None)
    return _with_section(_Ctx(), state, kind, name, section)


def _with_section(ctx: _Ctx, state: State, kind: str, name: str,
                  section: dict[str, Any]) -> State:
    # The other objects were valid on their own and with each other; what one change
    # can break is what crosses objects from it: protection (a VM's own; every VM's
    # when a group changes), references, shared addresses.
    new = dataclasses.replace(state, **{kind: section})
    if kind == "vms":
        # Memberships follow from the one VM's labels (the others' are unchanged).
        memo = members_after(state, name, section.get(name))
        new = keep_members(resolve_protection(keep_members(new, memo), only=name), memo)
    elif kind == "groups":
        new = resolve_protection(new)
    elif new.vms is state.vms and new.groups is state.groups:
        # A policy: the same VMs and groups, the same memberships (kept per state).
        memo = state.__dict__.get("_group_members")
        if memo is not None:
            object.__setattr__(new, "_group_members", memo)
    if kind != "policies":
        check_members(ctx, new)
    check_policies(ctx, new)
    if kind == "vms":
        check_identity(ctx, state, new, name)
    expectations.check_references(ctx, new, new.expectations)
    if ctx.errors:
        raise ValidationError(ctx.errors)
    return new


def parse_object(kind: str, name: str, body: Any) -> Vm | Group | Policy:
    """Validate one VM, group or policy document (without cross-references)."""
    ctx = _Ctx()
    path = f"{kind}.{name}"
    obj = _PARSERS[kind](ctx, path, name, body) if _name(ctx, path, name) else None
    if ctx.errors or obj is None:
        raise ValidationError(ctx.errors or [FieldError(path, "invalid")])
    return obj
