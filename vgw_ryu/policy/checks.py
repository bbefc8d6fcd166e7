"""Checks across objects of a parsed state: every name a policy or group uses exists,
tiers are known, no two VMs claim one MAC or IP. ``check_identity`` checks one
changed VM against a valid state's address book instead of every VM again. No Ryu here.
"""

from __future__ import annotations

from vgw_ryu.policy.fields import _Ctx
from vgw_ryu.policy.objects import IpAddr, State


def check_references(ctx: _Ctx, state: State) -> None:
    """Every name a policy or group uses exists; identities are not shared."""
    check_members(ctx, state)
    check_policies(ctx, state)
    _check_identities(ctx, state)


def check_members(ctx: _Ctx, state: State) -> None:
    """Every member a group names is a VM."""
    for gname, g in state.groups.items():
        for i, m in enumerate(g.members):
            if m not in state.vms:
                ctx.err(f"groups.{gname}.members[{i}]", f"vm {m!r} does not exist")


def check_policies(ctx: _Ctx, state: State) -> None:
    """Each policy's tier exists (no pass rule in the last), and so does each VM or
    group it is applied to or names as a peer."""
    tiers = state.settings.tiers
    for pname, pol in state.policies.items():
        if pol.tier is not None and pol.tier not in tiers:
            ctx.err(f"policies.{pname}.tier", f"{pol.tier!r} is not one of settings.tiers "
                    f"({', '.join(tiers)})")
        elif state.settings.tier_of(pol.tier) == len(tiers) - 1:
            for i, r in enumerate(pol.rules):
                if r.action == "pass":
                    ctx.err(f"policies.{pname}.rules[{i}].action", "pass in the last tier: "
                            "there is no next tier to hand the decision to")
        for i, a in enumerate(pol.applied_to):
            kind, _, name = a.partition(":")
            table = state.vms if kind == "vm" else state.groups
            if name not in table:
                ctx.err(f"policies.{pname}.applied_to[{i}]", f"{kind} {name!r} does not exist")
        for i, r in enumerate(pol.rules):
            if r.peer.kind in ("vm", "group"):
                table = state.vms if r.peer.kind == "vm" else state.groups
                if r.peer.value not in table:
                    ctx.err(f"policies.{pname}.rules[{i}].peer",
                            f"{r.peer.kind} {r.peer.value!r} does not exist")


def _check_identities(ctx: _Ctx, state: State) -> tuple[dict[str, str], dict[IpAddr, str]]:
    before = len(ctx.errors)
    macs: dict[str, str] = {}
    ips: dict[IpAddr, str] = {}
    for name, vm in state.vms.items():
        if vm.mac is not None:
            if vm.mac in macs:
                ctx.err(f"vms.{name}.mac", f"{vm.mac} is also the MAC of vm {macs[vm.mac]!r}")
            macs.setdefault(vm.mac, name)
        for i, ip in enumerate(vm.ips):
            if ip in ips and ips[ip] != name:
                ctx.err(f"vms.{name}.ips[{i}]", f"{ip} is also an address of vm {ips[ip]!r}")
            ips.setdefault(ip, name)
    if len(ctx.errors) == before:
        object.__setattr__(state, "_identities", (macs, ips))
    return macs, ips


def _identities(state: State) -> tuple[dict[str, str], dict[IpAddr, str]]:
    """Which VM holds each MAC and IP of a valid state (computed once per state)."""
    return state.__dict__.get("_identities") or _check_identities(_Ctx(), state)


def check_identity(ctx: _Ctx, old: State, new: State, name: str) -> None:
    """``_check_identities`` of ``new``, which differs from the valid ``old`` in VM
    ``name`` alone: that VM's addresses against the others' (a clash is reported by
    the full check, with its exact messages)."""
    macs, ips = _identities(old)
    was, vm = old.vms.get(name), new.vms.get(name)
    macs, ips = dict(macs), dict(ips)
    if was is not None:
        if was.mac is not None and macs.get(was.mac) == name:
            del macs[was.mac]
        for ip in was.ips:
            if ips.get(ip) == name:
                del ips[ip]
    if vm is not None:
        if (vm.mac is not None and vm.mac in macs) or any(ip in ips for ip in vm.ips):
            _check_identities(ctx, new)
            return
        if vm.mac is not None:
            macs[vm.mac] = name
        for ip in vm.ips:
            ips.setdefault(ip, name)
    object.__setattr__(new, "_identities", (macs, ips))
