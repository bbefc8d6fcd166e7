"""Compiler: deterministic, minimal change, declared pipeline, linear growth."""

import copy
import random
from pathlib import Path

import pytest
import yaml

from vgw_ryu.compiler import PortFacts, SwitchFacts, compile_switch, link_local, port_masks
from vgw_ryu.compiler.vm import link_local_text
from vgw_ryu.pipeline import cookies
from vgw_ryu.pipeline import doc as flowdoc
from vgw_ryu.pipeline import tables as pipeline
from vgw_ryu.pipeline.flows import Flow, Resubmit, split_cookie
from vgw_ryu.policy.ids import Ids
from vgw_ryu.policy.model import parse_state
from vgw_ryu.policy.ruleset import effective_rules, evaluate, group_members

EXAMPLES = Path(__file__).resolve().parents[2] / "flows" / "examples"


def example(name):
    doc = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    return doc["state"], SwitchFacts(tuple(PortFacts(**p) for p in doc["switch"]["ports"]))


def compile_doc(doc, facts, ids=None):
    state = parse_state(doc)
    ids = ids or Ids()
    ids.sync(state)
    return compile_switch(state, facts, ids), ids


def test_reference_dumps_are_current():
    assert flowdoc.main(["--check"]) == 0, "run: python -m vgw_ryu.pipeline.doc"


@pytest.mark.parametrize("name", ["three_tier", "single_vm", "ipv6"])
def test_compiled_flows_follow_the_declared_pipeline(name):
    flows, _ = compile_doc(*example(name))
    assert pipeline.check(flows) == []


def test_undeclared_jump_or_match_is_caught():
    bad_jump = Flow.make(pipeline.T["classify"], 5, {"in_port": 1},
                         [Resubmit(pipeline.T["rules"])])
    bad_match = Flow.make(pipeline.T["forward"], 5, {"in_port": 1})
    problems = pipeline.check([bad_jump, bad_match])
    assert any("may not continue in table 60" in p for p in problems)
    assert any("does not declare match in_port" in p for p in problems)


def test_deterministic():
    doc, facts = example("three_tier")
    a, _ = compile_doc(doc, facts)
    b, _ = compile_doc(copy.deepcopy(doc), SwitchFacts(tuple(reversed(facts.ports))))
    assert [f.ofctl() for f in a] == [f.ofctl() for f in b]


def test_every_cookie_is_ours_and_unique():
    flows, _ = compile_doc(*example("three_tier"))
    cookies = [f.cookie for f in flows]
    assert len(set(cookies)) == len(cookies)
    assert all(split_cookie(c) is not None for c in cookies)
    keys = [f.key for f in flows]
    assert len(set(keys)) == len(keys)


def _diff(a, b):
    sa, sb = {f.ofctl() for f in a}, {f.ofctl() for f in b}
    return sa - sb, sb - sa


def test_changing_one_vms_rule_changes_only_its_flows():
    doc, facts = example("three_tier")
    before, ids = compile_doc(doc, facts)
    doc2 = copy.deepcopy(doc)
    # db-in applies only to db1 (zone 2 here); change its pg rule's port.
    doc2["policies"]["db-in"]["rules"][0]["ports"] = "5433"
    after, _ = compile_doc(doc2, facts, ids)
    removed, added = _diff(before, after)
    zone_db1 = ids.zone("db1")
    pg = ids.rule("db-in", "pg")
    for line in removed | added:
        f = next(f for f in before + after if f.ofctl() == line)
        kind, owner, _ = split_cookie(f.cookie)
        assert (kind, owner) in {(cookies.KIND_VM, zone_db1), (cookies.KIND_RULE, pg),
                                 (cookies.KIND_PEER, 0)}, line
        if kind == cookies.KIND_PEER:
            assert f"conjunction({pg}," in line or "tcp_dst=0x1538" in line \
                or "tcp_dst=0x1539" in line, line
    assert added and removed
    # Nothing of web1 or app1 moved.
    for vm in ("web1", "app1"):
        z = ids.zone(vm)
        assert not [ln for ln in removed | added
                    if split_cookie(int(ln.split(",")[0][7:], 16))[:2] == (cookies.KIND_VM, z)]


def test_zones_are_stable_across_recompiles_and_new_vms():
    doc, facts = example("three_tier")
    _, ids = compile_doc(doc, facts)
    zones = ids.zones()
    doc2 = copy.deepcopy(doc)
    doc2["vms"]["aaa"] = {"mac": "02:00:00:00:aa:aa", "ips": ["10.0.0.200"]}
    _, ids2 = compile_doc(doc2, facts, Ids.from_doc(ids.to_doc()))
    for vm, z in zones.items():
        assert ids2.zone(vm) == z
    assert ids2.zone("aaa") not in zones.values()


def _scale_doc(n_vms: int, group_size: int):
    vms = {f"vm{i}": {"mac": f"02:00:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
                      "ips": [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"],
                      "labels": {"g": f"g{i // group_size}"}}
           for i in range(1, n_vms + 1)}
    n_groups = n_vms // group_size + 1
    groups = {f"g{g}": {"match_labels": {"g": f"g{g}"}} for g in range(n_groups)}
    rules = []
    for r in range(20):
        rules.append({"id": f"r{r}", "direction": "ingress" if r % 2 else "egress",
                      "action": "allow" if r % 5 else "deny", "protocol": "tcp",
                      "ports": f"{1000 + r}-{1003 + r}", "peer": f"group:g{r % n_groups}",
                      "priority": 100 + r % 3})
    policies = {"p": {"applied_to": [f"group:g{g}" for g in range(n_groups)],
                      "rules": rules}}
    facts = SwitchFacts(tuple(PortFacts(i, f"t{i}", "vm", f"vm{i}")
                              for i in range(1, n_vms + 1)))
    return {"vms": vms, "groups": groups, "policies": policies}, facts


def test_flows_grow_with_members_plus_rules_not_their_product():
    counts = {}
    for n in (50, 100, 200):
        doc, facts = _scale_doc(n, 25)
        flows, _ = compile_doc(doc, facts)
        counts[n] = len(flows)
    # At most linear in VMs (each rule's peers are whole groups, so peer flows are
    # bounded by the VM count too) ...
    assert counts[200] <= 2.05 * counts[100] and counts[100] <= 2.05 * counts[50], counts
    # ... a small constant per VM, far below the product VMs x rules x peers
    # (200 x 20 x 25 = 100,000 for the largest case).
    assert counts[200] / 200 < 45, counts


def test_port_masks_cover_exactly():
    for lo, hi in ((1, 65535), (80, 80), (1000, 1999), (8000, 8010), (1, 1), (65535, 65535)):
        covered = set()
        for value, mask in port_masks(lo, hi):
            size = (~mask & 0xFFFF) + 1
            assert value & ~mask & 0xFFFF == 0
            covered.update(range(value, value + size))
        assert covered == set(range(lo, hi + 1)), (lo, hi)
    assert len(port_masks(1, 65535)) == 16


def test_link_local_is_eui64():
    assert str(link_local("02:00:00:00:01:01")) == "fe80::ff:fe00:101"


def test_link_local_text_is_how_ipaddress_writes_it():
    rng = random.Random(7)
    # Zero groups where they can be: the 4th (02:00:..), the last, and neither.
    macs = ["02:00:00:00:00:00", "00:00:00:00:00:00", "02:00:ff:ff:00:00",
            "fe:ff:ff:ff:ff:ff", "02:01:00:00:05:01", "aa:bb:cc:dd:ee:ff"]
    macs += [":".join(f"{rng.randrange(256):02x}" for _ in range(6)) for _ in range(2000)]
    macs += [f"0{rng.choice('02')}:00:{rng.randrange(256):02x}:00:00:00" for _ in range(50)]
    for mac in macs:
        assert link_local_text(mac) == str(link_local(mac)), mac


def test_effective_rules_order_and_membership():
    doc, _ = example("three_tier")
    state = parse_state(doc)
    assert group_members(state, "web") == ["web1", "web2"]
    assert group_members(state, "admins") == ["jump1"]
    eff = effective_rules(state)
    order = [(e.policy, e.rule.id) for e in eff["web1"]]
    assert order == [("web-in", "no-smtp"), ("web-in", "http"), ("web-in", "ssh")]
    assert eff["jump1"] == []
    ssh = eff["web1"][2]
    assert [str(n) for n in ssh.peers] == ["10.0.0.91/32", "192.0.2.0/24"]


def test_equal_priority_deny_beats_allow():
    doc = {"vms": {"a": {"ips": ["10.0.0.1"]}},
           "policies": {"p": {"applied_to": ["vm:a"], "rules": [
               {"id": "ok", "direction": "ingress", "action": "allow", "protocol": "tcp"},
               {"id": "no", "direction": "ingress", "action": "deny", "protocol": "tcp",
                "ports": "22"}]}}}
    state = parse_state(doc)
    rules = effective_rules(state)["a"]
    import ipaddress
    v = evaluate(state, rules, "ingress", ipaddress.ip_address("10.9.9.9"), "tcp", 22)
    assert (v.verdict, v.rule) == ("deny", "no")
    v = evaluate(state, rules, "ingress", ipaddress.ip_address("10.9.9.9"), "tcp", 80)
    assert (v.verdict, v.rule) == ("allow", "ok")
    v = evaluate(state, rules, "ingress", ipaddress.ip_address("10.9.9.9"), "udp", 80)
    assert (v.verdict, v.policy) == ("deny", None)
