"""Random policies, ports and changes for the incremental compiler's property tests,
and the check every step must pass (incremental == full, changes told truly)."""

from __future__ import annotations

import random
from typing import Any

from vgw_ryu.compiler import FlowList, PortFacts, SwitchCompiler, SwitchFacts, compile_switch
from vgw_ryu.pipeline import tables as pipeline
from vgw_ryu.policy.ids import Ids
from vgw_ryu.policy.model import ValidationError, parse_state
from vgw_ryu.policy.ruleset import effective_rules
from vgw_ryu.runtime import syncdiff

LABELS = {"role": ["web", "db", "app"], "env": ["prod", "dev"]}
SHARED_MAC = "02:aa:00:00:00:01"   # a VRRP MAC several VMs may carry as an address pair


def _vm(rng: random.Random, i: int) -> dict[str, Any]:
    vm: dict[str, Any] = {"ips": [f"10.0.{i // 250}.{i % 250 + 1}"]}
    if rng.random() < 0.9:
        vm["mac"] = f"02:00:00:00:{i // 256:02x}:{i % 256:02x}"
    if rng.random() < 0.3:
        vm["ips"].append(f"fd00::{i + 1:x}")
    vm["labels"] = {k: rng.choice(v) for k, v in LABELS.items() if rng.random() < 0.8}
    if rng.random() < 0.15:
        vm["protected"] = False
    if rng.random() < 0.2:
        vm["log"] = rng.choice(["none", "drops", "all"])
    if rng.random() < 0.15:
        vm["address_pairs"] = [{"ip": f"10.9.{i}.0/28", "mac": SHARED_MAC}]
    return vm


def _rule(rng: random.Random, rid: str, groups: list[str], vms: list[str]) -> dict[str, Any]:
    action = rng.choice(["allow", "allow", "deny", "reject", "pass"])
    proto = rng.choice(["tcp", "tcp", "udp", "icmp", "icmpv6", "any", 47])
    r: dict[str, Any] = {"id": rid, "direction": rng.choice(["ingress", "egress"]),
                         "action": action, "protocol": proto,
                         "priority": rng.choice([100, 100, 200])}
    if proto in ("tcp", "udp"):
        lo = rng.choice([22, 80, 443, 1000, 8000])
        if rng.random() < 0.8:
            r["ports"] = f"{lo}-{lo + rng.choice([0, 3, 100])}"
        if rng.random() < 0.2:
            r["src_ports"] = "1024-65535"
    if proto == "icmp" and rng.random() < 0.5:
        r["icmp_type"] = 8
    peer = rng.random()
    if peer < 0.4 and groups:
        r["peer"] = f"group:{rng.choice(groups)}"
    elif peer < 0.55 and vms:
        r["peer"] = f"vm:{rng.choice(vms)}"
    elif peer < 0.7:
        r["peer"] = rng.choice(["cidr:192.0.2.0/24", "cidr:fd00:1::/64", "cidr:0.0.0.0/0"])
    if action == "allow" and rng.random() < 0.25:
        r["stateful"] = False
    elif action != "pass" and rng.random() < 0.2:
        r["log"] = True
    return r


def _group(rng: random.Random, vms: list[str]) -> dict[str, Any]:
    g: dict[str, Any] = {}
    if rng.random() < 0.7:
        k = rng.choice(list(LABELS))
        g["match_labels"] = {k: rng.choice(LABELS[k])}
    if vms and rng.random() < 0.4:
        g["members"] = rng.sample(vms, min(len(vms), 2))
    if rng.random() < 0.3:
        g["cidrs"] = ["198.51.100.0/24"]
        if rng.random() < 0.5:
            g["except"] = ["198.51.100.128/25"]
    if rng.random() < 0.1:
        g["protected"] = rng.choice([True, False])
    return g


def _applied(rng: random.Random, groups: list[str], vms: list[str]) -> list[str]:
    out = [f"group:{g}" for g in rng.sample(groups, min(len(groups), rng.randint(0, 2)))]
    out += [f"vm:{v}" for v in rng.sample(vms, min(len(vms), rng.randint(0, 2)))]
    return out or [f"group:{groups[0]}"]


def random_doc(rng: random.Random) -> dict[str, Any]:
    vms = {f"vm{i}": _vm(rng, i) for i in range(rng.randint(3, 8))}
    names = sorted(vms)
    groups = {f"g{i}": _group(rng, names) for i in range(3)}
    policies = {}
    for p in range(rng.randint(1, 3)):
        rules = [_rule(rng, f"r{k}", list(groups), names) for k in range(rng.randint(1, 5))]
        policies[f"p{p}"] = {"applied_to": _applied(rng, list(groups), names),
                             "rules": rules}
        if rng.random() < 0.3:
            policies[f"p{p}"]["tier"] = rng.choice(["admin", "app"])
    return {"settings": {"tiers": ["admin", "app"], "default_tier": "app"},
            "vms": vms, "groups": groups, "policies": policies}


def random_ports(rng: random.Random, doc: dict[str, Any]) -> list[PortFacts]:
    ports = []
    for n, name in enumerate(sorted(doc["vms"]), 1):
        if rng.random() < 0.85:
            ports.append(PortFacts(n, f"tap{n}", "vm", name, doc["vms"][name].get("mac")))
    ports.append(PortFacts(100, "eth0", "uplink"))
    return ports


# --- changes: each edits the document and/or the ports, in place ---------------------
def _edit_rule(rng, doc, ports):
    pol = doc["policies"][rng.choice(sorted(doc["policies"]))]
    if pol["rules"]:
        i = rng.randrange(len(pol["rules"]))
        pol["rules"][i] = _rule(rng, pol["rules"][i]["id"], list(doc["groups"]),
                                sorted(doc["vms"]))


def _edit_rule_port(rng, doc, ports):
    pol = doc["policies"][rng.choice(sorted(doc["policies"]))]
    tcp = [r for r in pol["rules"] if r["protocol"] in ("tcp", "udp")]
    if tcp:
        rng.choice(tcp)["ports"] = str(rng.randint(1, 65535))


def _add_rule(rng, doc, ports):
    pol = doc["policies"][rng.choice(sorted(doc["policies"]))]
    rid = f"r{rng.randint(10, 99)}"
    if all(r["id"] != rid for r in pol["rules"]):
        pol["rules"].append(_rule(rng, rid, list(doc["groups"]), sorted(doc["vms"])))


def _delete_rule(rng, doc, ports):
    pol = doc["policies"][rng.choice(sorted(doc["policies"]))]
    if len(pol["rules"]) > 1:
        pol["rules"].pop(rng.randrange(len(pol["rules"])))


def _add_policy(rng, doc, ports):
    name = f"p{rng.randint(5, 9)}"
    doc["policies"][name] = {
        "applied_to": _applied(rng, list(doc["groups"]), sorted(doc["vms"])),
        "rules": [_rule(rng, "r0", list(doc["groups"]), sorted(doc["vms"]))]}


def _delete_policy(rng, doc, ports):
    if len(doc["policies"]) > 1:
        del doc["policies"][rng.choice(sorted(doc["policies"]))]


def _reapply_policy(rng, doc, ports):
    pol = doc["policies"][rng.choice(sorted(doc["policies"]))]
    pol["applied_to"] = _applied(rng, list(doc["groups"]), sorted(doc["vms"]))


def _relabel(rng, doc, ports):
    vm = doc["vms"][rng.choice(sorted(doc["vms"]))]
    k = rng.choice(list(LABELS))
    vm.setdefault("labels", {})[k] = rng.choice(LABELS[k])


def _edit_vm(rng, doc, ports):
    name = rng.choice(sorted(doc["vms"]))
    vm = doc["vms"][name]
    what = rng.choice(["ip", "protected", "log", "pairs", "mac"])
    if what == "ip":
        vm["ips"] = [f"10.7.{rng.randint(0, 200)}.{rng.randint(1, 250)}"]
    elif what == "protected":
        vm["protected"] = not vm.get("protected", True)
    elif what == "log":
        vm["log"] = rng.choice(["none", "drops", "all"])
    elif what == "pairs":
        vm["address_pairs"] = [] if vm.get("address_pairs") else \
            [{"ip": "10.9.200.0/28", "mac": SHARED_MAC}]
    else:
        vm.pop("mac", None)
        for i, p in enumerate(ports):
            if p.vm == name:
                ports[i] = PortFacts(p.ofport, p.name, "vm", name, None)


def _add_vm(rng, doc, ports):
    i = rng.randint(20, 60)
    name = f"vm{i}"
    if name in doc["vms"]:
        return
    doc["vms"][name] = _vm(rng, i)
    used = {p.ofport for p in ports}
    ofport = next(n for n in range(1, 100) if n not in used)
    ports.append(PortFacts(ofport, f"tap{ofport}", "vm", name, doc["vms"][name].get("mac")))


def _delete_vm(rng, doc, ports):
    name = rng.choice(sorted(doc["vms"]))
    refs = [r for p in doc["policies"].values() for r in p["rules"]
            if r.get("peer") == f"vm:{name}"]
    applied = [p for p in doc["policies"].values() if f"vm:{name}" in p["applied_to"]]
    members = [g for g in doc["groups"].values() if name in g.get("members", [])]
    if refs or applied or members or len(doc["vms"]) < 2:
        return
    del doc["vms"][name]
    ports[:] = [p for p in ports if p.vm != name]


def _port_toggle(rng, doc, ports):
    name = rng.choice(sorted(doc["vms"]))
    had = [p for p in ports if p.vm == name]
    if had:
        ports.remove(had[0])
    else:
        used = {p.ofport for p in ports}
        ofport = next(n for n in range(1, 100) if n not in used)
        ports.append(PortFacts(ofport, f"tap{ofport}", "vm", name, doc["vms"][name].get("mac")))


def _unknown_port(rng, doc, ports):
    unknown = [p for p in ports if p.kind == "unknown"]
    if unknown and rng.random() < 0.5:
        ports.remove(unknown[0])
    else:
        ofport = rng.randint(200, 210)
        if all(p.ofport != ofport for p in ports):
            mac = rng.choice([None, f"02:bb:00:00:00:{ofport - 200:02x}"])
            ports.append(PortFacts(ofport, f"x{ofport}", "unknown", None, mac))


def _edit_group(rng, doc, ports):
    doc["groups"][rng.choice(sorted(doc["groups"]))] = _group(rng, sorted(doc["vms"]))


def _edit_settings(rng, doc, ports):
    s = doc["settings"]
    what = rng.choice(["default_ingress", "default_egress", "log_default_deny",
                       "unknown_ports", "log", "default_tier", "uplinks"])
    if what in ("default_ingress", "default_egress"):
        s[what] = rng.choice(["allow", "deny"])
    elif what == "log_default_deny":
        s[what] = not s.get(what, False)
    elif what == "unknown_ports":
        s[what] = rng.choice(["allow", "drop"])
    elif what == "log":
        s[what] = rng.choice(["none", "drops", "all"])
    elif what == "default_tier":
        s[what] = rng.choice(["admin", "app"])
    else:
        s[what] = rng.choice([[], ["eth*"]])


CHANGES = [_edit_rule, _edit_rule_port, _add_rule, _delete_rule, _add_policy,
           _delete_policy, _reapply_policy, _relabel, _edit_vm, _add_vm, _delete_vm,
           _port_toggle, _unknown_port, _edit_group, _edit_settings]


def by_sync_key(flows) -> dict[tuple[int, int], str]:
    return {(f.table, f.cookie): f.ofctl() for f in flows}


def check_step(comp: SwitchCompiler, state, facts, ids, before: FlowList | None,
                known: syncdiff.Installed, chunk: int = 0) -> FlowList:
    """One compile checked; with ``chunk``, its new flows streamed as the sync does
    (``chunk`` at a time) and what the switch ends up with checked too."""
    eff = effective_rules(state)
    sent: list = []
    got = comp.compile(state, facts, ids, eff, sent.extend if chunk else None,
                       known.synced, chunk or 1)
    want = compile_switch(state, facts, ids, eff)
    # The same flows, the same cookies, nothing twice.
    assert len(got) == len(want)
    assert by_sync_key(got) == by_sync_key(want)
    assert {f.key for f in got} == {f.key for f in want}
    assert got.meters == {f.meter for f in want if f.meter is not None}
    assert pipeline.check(got) == []
    if before is not None:
        # What it says changed is what changed.
        old, new = by_sync_key(before), by_sync_key(got)
        assert got.base == before.gen
        assert {(f.table, f.cookie) for f in got.added} == new.keys() - old.keys()
        assert set(got.removed) == old.keys() - new.keys()
        # An unchanged flow is the very same object (its wire bytes stay cached).
        was = {f.key: f for f in before}
        for f in got:
            o = was.get(f.key)
            if o is not None and o.cookie == f.cookie:
                assert o is f
    # The sync diff from the changes alone equals the full diff, and leaves the switch
    # holding the desired set.
    full = syncdiff.diff(list(got), dict(known))
    d = syncdiff.diff(got, known)
    if sent:
        check_streamed(before, got, known, d, sent)
    assert {(f.table, f.cookie) for f in d.adds} == {(f.table, f.cookie) for f in full.adds}
    assert sorted(d.dels) == sorted(full.dels)
    if d:
        syncdiff.record(known, d, lambda f: f.cookie)
    assert set(known) == set(by_sync_key(got)) and known.synced == got.gen
    return got


def check_streamed(before: FlowList, got: FlowList, known: syncdiff.Installed,
                   d: syncdiff.Diff, sent: list) -> None:
    """Flows streamed during a compile: each under a key the switch had no flow at;
    with the rest of the diff after them in one bundle (adds replace a flow with their
    key; deletes are strict, by key and cookie), the switch holds the desired set."""
    had = {f.key for f in before}
    assert got.base == before.gen
    assert all(f.key not in had and (f.table, f.cookie) not in known for f in sent)
    streamed = {(f.table, f.cookie): f for f in sent}
    rest, dropped = syncdiff.after_stream(d, streamed)
    table = {f.key: f.cookie for f in before}
    by_sync = {(f.table, f.cookie): f for f in before}
    for f in [*sent, *rest]:
        table[f.key] = f.cookie
    for f in [*(by_sync[k] for k, _ in d.dels), *dropped]:
        if table.get(f.key) == f.cookie:
            del table[f.key]
    assert table == {f.key: f.cookie for f in got}


def random_start(rng: random.Random) -> tuple:
    """A random valid document, its state, ports and ids, and a compiler that compiled
    them (checked): (doc, state, ports, ids, compiler, switch's flows, flows)."""
    state = None
    while state is None:
        doc = random_doc(rng)
        try:
            state = parse_state(doc)
        except ValidationError:
            continue   # e.g. a pass rule in the last tier
    ports = random_ports(rng, doc)
    ids = Ids()
    ids.sync(state)
    comp = SwitchCompiler()
    known = syncdiff.index_installed([])
    flows = check_step(comp, state, SwitchFacts(tuple(ports)), ids, None, known)
    return doc, state, ports, ids, comp, known, flows
