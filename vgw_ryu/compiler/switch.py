"""The compiler: (desired state, facts of one switch) -> the complete desired flow set.

A pure, deterministic function. The app diffs its output against the switch. How the
flows work together is written down in flows/PIPELINE.md; the short version:

* classify by in_port; protected VMs get their zone in reg6;
* egress: anti-spoofing, ``ct`` in the source VM's zone, then ``egress_state``;
* ingress: by eth_dst of a protected VM on this switch, ``ct`` in its zone;
* ``*_state``: replies pass (unless their connection is blocked); every packet in a
  connection's original direction is judged by ``rules`` (the megaflow cache makes
  that free for established traffic), so a changed policy applies to established
  connections at their next packet, in the datapath, without the controller;
* ``*_action``: allow commits new connections; deny drops, and an established
  connection it now denies is marked blocked in ct_mark, which stops its replies too;
  reject and log add a metered punt placed after the forwarding actions.

The flows are built per concern: infra.py (fixed flows, per Stage), vm.py (a VM's
own flows), rules.py (the policy); this module adds the ports and puts them together.
It is the reference: the controller compiles with incremental.SwitchCompiler, which
keeps these flows per owner between changes and must give exactly the same set.
"""

from __future__ import annotations

from vgw_ryu.compiler.builder import FlowSet
from vgw_ryu.compiler.facts import SwitchFacts
from vgw_ryu.compiler.infra import build_infra
from vgw_ryu.compiler.proto import IP_FAMILIES
from vgw_ryu.compiler.rules import build_rule
from vgw_ryu.compiler.vm import build_vm
from vgw_ryu.pipeline import priorities as P  # noqa: N812 - P.<name> reads like a band table
from vgw_ryu.pipeline.cookies import KIND_PORT
from vgw_ryu.pipeline.flows import Flow
from vgw_ryu.policy.ids import Ids
from vgw_ryu.policy.model import State
from vgw_ryu.policy.ruleset import EffectiveRule, effective_rules, log_level


def build_ports(b: FlowSet, state: State, facts: SwitchFacts, ids: Ids) -> None:
    """classify: the ports that are not protected VMs, and those of protected VMs
    without a zone here (cookie kind port, owner ofport)."""
    for p in facts.ports:
        if p.kind == "vm" and p.vm in state.vms and state.vms[p.vm].protected \
                and ids.zone(p.vm) is None:
            # classify: a protected VM this hypervisor found no free zone for (its zone
            # range is full) cannot be judged: its traffic is dropped, never let through.
            b.add("classify", P.CLASSIFY_PORT, {"in_port": p.ofport}, [], kind=KIND_PORT,
                  owner=p.ofport)
            mac = state.vms[p.vm].mac or p.mac
            for eth in IP_FAMILIES if mac else ():
                # ingress_classify: nor is IP to it let through unjudged.
                b.add("ingress_classify", P.INGRESS_VM, {"eth_dst": mac, "eth_type": eth},
                      [], kind=KIND_PORT, owner=p.ofport)
    for p in facts.ports:
        if p.kind == "uplink" or (p.kind == "vm" and p.vm in state.vms
                                  and not state.vms[p.vm].protected):
            # classify: uplinks and unprotected VMs skip the egress stages; traffic to
            # a protected VM is still judged by that VM's ingress stage.
            b.add("classify", P.CLASSIFY_PORT, {"in_port": p.ofport}, goto="ingress_classify",
                  kind=KIND_PORT, owner=p.ofport)
    for p in facts.ports:
        if p.kind == "unknown" and p.mac:
            # classify: an unknown port that has spoken (or carries a MAC) and is still no
            # VM gets the default without further punts: it is punted once, not forever.
            fwd = {"goto": "ingress_classify"} if state.settings.unknown_ports == "allow" \
                else {}
            b.add("classify", P.CLASSIFY_PORT, {"in_port": p.ofport}, [], kind=KIND_PORT,
                  owner=p.ofport, **fwd)


def build_vms(b: FlowSet, state: State, facts: SwitchFacts, ids: Ids,
              cache: dict | None) -> list[str]:
    """The own flows of the protected VMs on this switch; returns their names, sorted."""
    vm_ports = facts.vm_ports()
    local_protected: list[str] = []
    for name in sorted(vm_ports):
        if name not in state.vms or not state.vms[name].protected \
                or ids.zone(name) is None:
            continue
        local_protected.append(name)
        level = log_level(state, name)
        key = (state.vms[name], vm_ports[name], ids.zone(name), level)
        if cache is not None and key in cache:
            b.add_flows(cache[key])
            continue
        vb = FlowSet()
        build_vm(vb, state.vms[name], vm_ports[name], ids.zone(name), level)
        own = list(vb.flows.values())
        if cache is not None:
            cache[key] = own
        b.add_flows(own)
    return local_protected


def build_rules(b: FlowSet, local_protected: list[str], ids: Ids,
                effective: dict[str, list[EffectiveRule]]) -> None:
    """rules: each rule once, its first clause listing the local VMs it applies to."""
    by_rule: dict[tuple[str, str], tuple[EffectiveRule, list[int]]] = {}
    for name in local_protected:
        for eff in effective[name]:
            by_rule.setdefault(eff.key, (eff, []))[1].append(ids.zone(name))
    for key in sorted(by_rule):
        eff, zones = by_rule[key]
        if eff.peers is not None and not eff.peers:
            continue  # the peer set is empty: the rule can match nothing
        build_rule(b, eff, ids.rule(*key), sorted(zones))


def compile_switch(state: State, facts: SwitchFacts, ids: Ids,
                   effective: dict[str, list[EffectiveRule]] | None = None,
                   cache: dict | None = None) -> list[Flow]:
    """All flows one switch should have, sorted; ``ids`` must be synced with ``state``.

    ``cache`` (any dict the caller keeps) memoises each VM's own flows, which depend
    only on the VM, its port, its zone and its log level. The full compile, from
    scratch: the reference for incremental.SwitchCompiler, and what tools and tests use.
    """
    b = FlowSet()
    build_infra(b, state.settings)
    effective = effective if effective is not None else effective_rules(state)
    build_ports(b, state, facts, ids)
    local_protected = build_vms(b, state, facts, ids, cache)
    build_rules(b, local_protected, ids, effective)
    return b.result()


def render(flows: list[Flow]) -> str:
    """The flows as an ``ovs-ofctl add-flows`` file."""
    return "".join(f.ofctl() + "\n" for f in flows)
