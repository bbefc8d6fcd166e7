"""A punt's table and registers, decoded without Ryu; the log record it becomes."""

from __future__ import annotations

import pytest

from vgw_ryu.pipeline import tables as pl
from vgw_ryu.policy.ids import Ids
from vgw_ryu.runtime.puntregs import PuntRegs, decode_registers, log_record, reg_value

LOG_T, REJECT_T, UNKNOWN_T = pl.T["punt_log"], pl.T["punt_reject"], pl.T["punt_unknown"]


def test_not_a_punt_table():
    assert decode_registers(pl.T["rules"], {"reg0": 1}) is None
    assert decode_registers(0, {}) is None


@pytest.mark.parametrize(("reg0", "verdict", "direction", "log"), [
    (pl.VERDICT_ALLOW | pl.LOG_BIT, "allow", "egress", True),
    (pl.VERDICT_DENY | pl.DIR_BIT | pl.LOG_BIT, "deny", "ingress", True),
    (pl.VERDICT_REJECT | pl.DIR_BIT, "reject", "ingress", False),
    (0, None, "egress", False),
])
def test_reg0_bits(reg0, verdict, direction, log):
    r = decode_registers(LOG_T, {"in_port": 5, "reg0": reg0, "reg3": 7, "reg4": 9})
    assert r == PuntRegs("log", 5, verdict, direction, 7, 9, log)


def test_masked_values_and_missing_registers():
    r = decode_registers(REJECT_T, {"in_port": 2, "reg0": (pl.VERDICT_REJECT, 0xFF)})
    assert r == PuntRegs("reject", 2, "reject", "egress", 0, 0, False)
    assert reg_value({"reg0": (0x8, 0xF)}, "reg0") == 8
    assert reg_value({}, "reg0") == 0


def test_unknown_port_punts_carry_no_verdict_or_direction():
    r = decode_registers(UNKNOWN_T, {"in_port": 4, "reg0": pl.VERDICT_DENY | pl.DIR_BIT})
    assert (r.purpose, r.in_port, r.verdict, r.direction) == ("unknown", 4, None, None)


def test_log_record_names_the_vm_and_rule():
    ids = Ids({"web": 3}, {"p/http": 12})
    regs = PuntRegs("log", 5, "allow", "ingress", 12, 3, True)
    rec = log_record(0x2A, regs, ids, {"src": "10.0.0.9", "dport": 80}, 74)
    assert rec == {"switch": "000000000000002a", "port": 5, "vm": "web",
                   "direction": "ingress", "verdict": "allow", "policy": "p",
                   "rule": "http", "src": "10.0.0.9", "dport": 80, "length": 74}


def test_log_record_of_a_default_and_of_a_forgotten_rule():
    ids = Ids({"web": 3}, {})
    rec = log_record(1, PuntRegs("log", 1, "deny", "egress", 0, 0, True), ids, {}, 60)
    assert (rec["vm"], rec["policy"], rec["rule"]) == (None, None, "default")
    rec = log_record(1, PuntRegs("log", 1, "deny", "egress", 44, 3, True), ids, {}, 60)
    assert (rec["vm"], rec["policy"], rec["rule"]) == ("web", None, None)


def test_revocation_punt_becomes_a_revoked_record_with_the_revision():
    from vgw_ryu.pipeline import fields as F  # noqa: N812
    from vgw_ryu.policy.model import parse_state

    st = parse_state({"vms": {"a": {}}, "policies": {"p": {"applied_to": ["vm:a"], "rules": [
        {"id": "no", "direction": "egress", "action": "deny"}]}}})
    ids = Ids()
    ids.sync(st)
    reg0 = pl.VERDICT_DENY | F.REVOKE.mask
    r = decode_registers(LOG_T, {"in_port": 5, "reg0": reg0, "reg3": ids.rule("p", "no"),
                                 "reg4": ids.zone("a")})
    assert r.revoke and r.verdict == "deny" and not r.log
    rec = log_record(0xAB, r, ids, {"src": "10.0.0.1", "dport": 80}, 74, revision=12)
    assert (rec["event"], rec["revision"], rec["vm"], rec["policy"], rec["rule"]) == \
        ("revoked", 12, "a", "p", "no")
    plain = decode_registers(LOG_T, {"reg0": pl.VERDICT_DENY, "reg4": 1})
    assert "event" not in log_record(1, plain, ids, {}, 60, revision=12)
