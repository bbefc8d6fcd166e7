"""The pipeline declarations: register fields, ct states, priorities, cookies, punts."""

import dataclasses
import itertools
import re
from pathlib import Path

import pytest
import yaml

from vgw_ryu.compiler import PortFacts, SwitchFacts, compile_switch
from vgw_ryu.compiler.stage import STAGES
from vgw_ryu.pipeline import cookies, ctstate, priorities, tables, wire
from vgw_ryu.pipeline import fields as F  # noqa: N812
from vgw_ryu.pipeline import flows as flowmod
from vgw_ryu.pipeline.flows import Controller, Ct, Flow
from vgw_ryu.policy.ids import Ids
from vgw_ryu.policy.model import parse_state

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_NAMES = ["three_tier", "single_vm", "ipv6"]


def compiled(name):
    doc = yaml.safe_load((ROOT / "flows" / "examples" / f"{name}.yaml").read_text())
    state = parse_state(doc["state"])
    ids = Ids()
    ids.sync(state)
    facts = SwitchFacts(tuple(PortFacts(**p) for p in doc["switch"]["ports"]))
    return compile_switch(state, facts, ids)


# -- register fields ---------------------------------------------------------------

@pytest.mark.parametrize(("field", "value", "entry"), [
    (F.VERDICT, F.VERDICT_ALLOW, ("reg0", (0x1, 0x3))),
    (F.VERDICT, F.VERDICT_REJECT, ("reg0", (0x3, 0x3))),
    (F.LOG, 1, ("reg0", (0x4, 0x4))),
    (F.DIRECTION, F.DIR_EGRESS, ("reg0", (0x0, 0x8))),
    (F.DIRECTION, F.DIR_INGRESS, ("reg0", (0x8, 0x8))),
    (F.ZONE, 7, ("reg6", 7)),
    (F.OUT_PORT, 3, ("reg5", 3)),
    (F.BLOCKED, 1, ("ct_mark", (0x80000000, 0x80000000))),
])
def test_field_match(field, value, entry):
    assert field.match(value) == entry


@pytest.mark.parametrize(("action", "text"), [
    (F.VERDICT.load(F.VERDICT_DENY), "load:0x2->NXM_NX_REG0[0..1]"),
    (F.DIRECTION.load(1), "load:0x1->NXM_NX_REG0[3]"),
    (F.RULE.load(12), "load:0xc->NXM_NX_REG3[]"),
    (F.ZONE.load(5), "load:0x5->NXM_NX_REG6[]"),
    (F.load((F.VERDICT, F.VERDICT_DENY), (F.LOG, 1)), "load:0x6->NXM_NX_REG0[0..2]"),
    (F.load((F.LOG, 0), (F.VERDICT, F.VERDICT_ALLOW)), "load:0x1->NXM_NX_REG0[0..2]"),
    (F.copy(F.ZONE, F.PUNT_ZONE), "move:NXM_NX_REG6[]->NXM_NX_REG4[]"),
])
def test_field_load_text(action, text):
    assert action.text() == text


@pytest.mark.parametrize(("field", "value"), [(F.VERDICT, 4), (F.LOG, 2), (F.DIRECTION, -1),
                                              (F.BLOCKED, 2)])
def test_field_rejects_a_value_that_does_not_fit(field, value):
    with pytest.raises(ValueError):
        field.match(value)
    with pytest.raises(ValueError):
        field.load(value)


def test_no_two_fields_overlap_in_one_register():
    for a, b in itertools.combinations(F.FIELDS, 2):
        if a.reg == b.reg:
            assert not a.mask & b.mask, (a.name, b.name)
    assert len(F.BY_NAME) == len(F.FIELDS)


def test_merged_matches_and_their_misuse():
    assert F.match(F.VERDICT.match(2), F.LOG.match(1), ("eth_type", 0x800)) == \
        {"reg0": (0x6, 0x7), "eth_type": 0x800}
    with pytest.raises(ValueError):
        F.match(F.VERDICT.match(1), F.VERDICT.match(2))  # one field twice
    with pytest.raises(ValueError):
        F.load((F.VERDICT, 1), (F.DIRECTION, 1))  # not adjacent: bit 2 in between
    with pytest.raises(ValueError):
        F.copy(F.VERDICT, F.PUNT_ZONE)


def test_compatibility_names_keep_their_values():
    assert (tables.REG_VERDICT, tables.REG_RULE, tables.REG_PUNT_ZONE, tables.REG_OUT_PORT,
            tables.REG_ZONE) == ("reg0", "reg3", "reg4", "reg5", "reg6")
    assert (tables.VERDICT_MASK, tables.LOG_BIT, tables.DIR_BIT) == (0x3, 0x4, 0x8)
    assert tables.MARK_BLOCKED == 0x80000000
    assert (tables.VERDICT_ALLOW, tables.VERDICT_DENY, tables.VERDICT_REJECT) == (1, 2, 3)
    assert (tables.METER_LOG, tables.METER_REJECT, tables.METER_UNKNOWN) == (1, 2, 3)


def test_conntrack_zone_is_the_zone_field():
    assert Ct().zone_reg == F.ZONE.reg


def test_compiler_names_no_register_by_hand():
    for path in (ROOT / "vgw_ryu" / "compiler").glob("*.py"):
        src = path.read_text()
        assert not re.search(r"[\"']reg\d+[\"']", src), path.name
        assert "ct_mark\"" not in src, path.name


# -- ct_state ----------------------------------------------------------------------

@pytest.mark.parametrize(("text", "value", "mask", "canonical"), [
    ("+inv+trk", 0x30, 0x30, "+inv+trk"),
    ("+rel-inv+trk", 0x24, 0x34, "+rel-inv+trk"),
    ("+est+rpl-inv+trk", 0x2A, 0x3A, "+est+rpl-inv+trk"),
    ("+trk-rpl-inv", 0x20, 0x38, "-rpl-inv+trk"),
    ("+new+trk", 0x21, 0x21, "+new+trk"),
])
def test_ct_state_parse_and_render(text, value, mask, canonical):
    assert ctstate.parse_ct_state(text) == (value, mask)
    assert ctstate.ct_state_text(value, mask) == canonical
    assert ctstate.ct_state(text) == ("ct_state", (value, mask))


@pytest.mark.parametrize("bad", ["est", "+foo", "+est+est", "+es"])
def test_ct_state_rejects_bad_text(bad):
    with pytest.raises(ValueError):
        ctstate.parse_ct_state(bad)


def test_ct_flags_are_declared_once():
    assert flowmod.CT_FLAGS is ctstate.CT_FLAGS
    assert flowmod.ct_state_text is ctstate.ct_state_text


# -- priorities --------------------------------------------------------------------

@pytest.mark.parametrize("table", [t.name for t in tables.TABLES])
def test_priority_names_are_distinct_values_within_a_table(table):
    used = priorities.for_table(table)
    assert used, f"{table} has no named priority"
    values = [p.value for p in used]
    assert len(values) == len(set(values)), [(p.name, p.value) for p in used]


def test_priorities_name_declared_tables_and_module_constants():
    names = [p.name for p in priorities.PRIORITIES]
    assert len(names) == len(set(names))
    for p in priorities.PRIORITIES:
        assert set(p.tables) <= set(tables.BY_NAME), p
        assert getattr(priorities, p.name) == p.value
        assert 0 <= p.value <= 0xFFFF


def test_rules_band_is_above_every_default_and_fits_openflow():
    lowest = priorities.rule_priority(1, 0)
    highest = priorities.rule_priority(priorities.RULE_PRIORITY_MAX, 2)
    others = [p.value for p in priorities.for_table("rules") if p.name != "RULES_BAND"]
    assert lowest > max(others)
    assert highest <= 0xFFFF
    # deny > reject > allow at one priority; a higher rule priority beats any action.
    assert priorities.rule_priority(5, 2) > priorities.rule_priority(5, 1) > \
        priorities.rule_priority(5, 0)
    assert priorities.rule_priority(6, 0) > priorities.rule_priority(5, 2)
    with pytest.raises(ValueError):
        priorities.rule_priority(5, priorities.ACTION_RANKS)


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_compiled_priority_is_a_declared_one(name):
    band = range(priorities.rule_priority(1, 0),
                 priorities.rule_priority(priorities.RULE_PRIORITY_MAX, 2) + 1)
    for f in compiled(name):
        table = tables.BY_ID[f.table].name
        declared = {p.value for p in priorities.for_table(table) if p.name != "RULES_BAND"}
        assert f.priority in declared or (table == "rules" and f.priority in band), f.body


# -- cookies -----------------------------------------------------------------------

@pytest.mark.parametrize("kind", [k.value for k in cookies.KINDS])
@pytest.mark.parametrize("owner", [0, 1, 4242, 0xFFFFF])
def test_cookie_round_trip(kind, owner):
    c = cookies.owner_bits(kind, owner) | 0xDEADBEEF
    assert cookies.split_cookie(c) == (kind, owner, 0xDEADBEEF)
    value, mask = cookies.owner_match(kind, owner)
    assert c & mask == value
    assert (cookies.owner_bits(kind, owner ^ 1) | 5) & mask != value


def test_foreign_cookies_and_kind_table():
    assert cookies.split_cookie(0) is None
    assert cookies.split_cookie(0x7700000000000001) is None
    assert len({k.name for k in cookies.KINDS}) == len(cookies.KINDS)
    assert all(0 < k.value < 1 << cookies.KIND_BITS for k in cookies.KINDS)
    assert tables.KIND_NAMES is cookies.KIND_NAMES
    assert flowmod.split_cookie is cookies.split_cookie
    # PIPELINE.md's example of a VM's masked delete: cookie=0x762<zone>00000000
    assert f"{cookies.owner_bits(cookies.KIND_VM, 0x15):#x}" == "0x7620001500000000"


def test_flow_cookie_is_owner_and_a_digest_of_what_the_switch_gets():
    f = Flow.make(tables.T["forward"], 1, {}, [flowmod.Normal()], kind=cookies.KIND_PORT,
                  owner=9)
    enc = wire.encode(f)
    ins = enc.add[wire.FLOW_MOD_FIXED.size + len(enc.match):]
    assert f.cookie == cookies.make_cookie(cookies.KIND_PORT, 9, f.table, f.priority,
                                           enc.match, ins)
    assert cookies.split_cookie(f.cookie)[:2] == (cookies.KIND_PORT, 9)
    # Whatever the switch would get differently changes the cookie; the same flow made
    # again (another compile, another process) has the same one.
    same = Flow.make(tables.T["forward"], 1, {}, [flowmod.Normal()], kind=cookies.KIND_PORT,
                     owner=9)
    assert same.cookie == f.cookie
    others = [Flow.make(tables.T["forward"], 2, {}, [flowmod.Normal()],
                        kind=cookies.KIND_PORT, owner=9),
              Flow.make(tables.T["forward"], 1, {"in_port": 3}, [flowmod.Normal()],
                        kind=cookies.KIND_PORT, owner=9),
              Flow.make(tables.T["forward"], 1, {}, [flowmod.Controller()],
                        kind=cookies.KIND_PORT, owner=9),
              Flow.make(tables.T["forward"], 1, {}, [flowmod.Normal()], meter=3,
                        kind=cookies.KIND_PORT, owner=9)]
    assert len({o.cookie for o in others} | {f.cookie}) == 5


# -- punts and stages --------------------------------------------------------------

def test_punt_map_is_consistent():
    punt_tables = {t.id for t in tables.TABLES if t.name.startswith("punt_")}
    assert set(tables.PUNT_BY_TABLE) == punt_tables
    assert len(tables.PUNT_BY_METER) == len(tables.PUNTS) == len(tables.PUNT_BY_PURPOSE)
    for p in tables.PUNTS:
        assert tables.BY_NAME[p.table_name].id == p.table
        assert p.meter > 0 and 0 < p.max_len <= 0xFFFF


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_punt_tables_are_metered_as_declared(name):
    per_vm = 0
    for f in compiled(name):
        punt = tables.PUNT_BY_TABLE.get(f.table)
        if punt is None:
            assert f.meter is None, f.body
            continue
        assert f.actions == (Controller(punt.max_len),), f.body
        zone = dict(f.match).get("reg4")
        if zone is None:
            assert f.meter == punt.meter, f.body
        else:   # a VM's own log meter
            assert punt.purpose == "log" and f.meter == tables.log_meter(zone), f.body
            per_vm += 1
    assert per_vm >= 1


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_stage_tables_are_declared_and_chained(stage):
    ct, state, action = (tables.BY_NAME[n] for n in (stage.ct, stage.state, stage.action))
    assert stage.state in ct.next and stage.action in state.next
    if stage.pass_goto:
        assert stage.pass_goto in state.next and stage.pass_goto in action.next
    assert {s.direction for s in STAGES} == {F.DIR_EGRESS, F.DIR_INGRESS}


def test_a_made_flow_has_every_field_and_equals_the_dataclass_built_one():
    f = Flow.make(3, 100, {"reg6": 5, "in_port": 1}, [Ct(table=4)], goto=7, meter=2,
                  kind=cookies.KIND_VM, owner=5)
    assert set(vars(f)) == {x.name for x in dataclasses.fields(Flow)}
    same = Flow(3, 100, (("in_port", 1), ("reg6", 5)), (Ct(table=4),), 7, 2,
                cookies.KIND_VM, 5)
    assert f == same and hash(f) == hash(same) and f.key == same.key
    assert f.body == same.body and f.ofctl().startswith(f"cookie={f.cookie:#018x},")


def test_kind_mask_selects_one_kind_of_cookie_whatever_its_owner_and_content():
    for kind in cookies.KINDS:
        want = cookies.owner_bits(kind.value, 0)
        for owner, content in ((0, b""), (7, b"x"), (0xFFFFF, b"\xff" * 9)):
            for other in cookies.KINDS:
                cookie = cookies.make_cookie(other.value, owner, 3, 100, content, b"")
                assert (cookie & cookies.kind_mask() == want) == (other is kind)
    assert cookies.kind_mask() & 0xFFFFFFFF == 0    # the content hash is not looked at
