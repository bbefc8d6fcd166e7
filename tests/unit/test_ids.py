"""Stable numbers: zones per protected VM, numbers per rule, lowest free, persisted."""

from __future__ import annotations

import pytest

from vgw_ryu.policy import ids as ids_mod
from vgw_ryu.policy.ids import RULE_MAX, ZONE_MAX, Ids
from vgw_ryu.policy.model import parse_state

RULE = {"direction": "ingress", "action": "allow", "protocol": "tcp", "ports": "80"}


def state(vms=(), unprotected=(), rules=None):
    doc = {"vms": {n: {"ips": []} for n in vms}}
    doc["vms"].update({n: {"ips": [], "protected": False} for n in unprotected})
    if rules:
        doc["policies"] = {p: {"rules": [{**RULE, "id": r} for r in rs]}
                           for p, rs in rules.items()}
    return parse_state(doc)


def synced(st, ids=None) -> Ids:
    ids = ids or Ids()
    ids.sync(st)
    return ids


def test_limits_fit_the_datapath():
    assert ZONE_MAX == 0xFFFF      # 16-bit ct zone
    assert RULE_MAX == 0xFFFFF     # 20-bit cookie owner field


def test_zones_numbered_from_one_in_name_order():
    ids = synced(state(["web2", "app1", "db1"]))
    assert ids.zones() == {"app1": 1, "db1": 2, "web2": 3}
    assert ids.zone("db1") == 2


def test_same_history_same_numbers():
    a = synced(state(["c", "a", "b"]))
    b = synced(state(["b", "c", "a"]))
    assert a.to_doc() == b.to_doc()


def test_numbers_are_stable_when_vms_are_added():
    ids = synced(state(["m", "n"]))
    assert ids.sync(state(["a", "m", "n"])) is True
    assert ids.zones() == {"m": 1, "n": 2, "a": 3}   # a sorts first but gets a new number


def test_sync_reports_whether_anything_changed():
    st = state(["a"], rules={"p": ["r1"]})
    ids = Ids()
    assert ids.sync(st) is True
    assert ids.sync(st) is False
    assert ids.sync(state(["a"])) is True           # rule gone


def test_release_on_delete_and_lowest_free_number():
    ids = synced(state(["a", "b", "c", "d"]))
    ids.sync(state(["a", "c", "d"]))
    assert "b" not in ids.zones()
    assert ids.zone("b") is None
    assert ids.vm_of_zone(2) is None
    assert ids.flushing() == {2}
    assert ids.zones_flushed({2}) is True and ids.flushing() == set()
    ids.sync(state(["a", "c", "d", "x", "y"]))
    assert ids.zone("x") == 2          # the freed (and flushed) number first
    assert ids.zone("y") == 5
    assert ids.zones() == {"a": 1, "c": 3, "d": 4, "x": 2, "y": 5}


def test_freed_zone_is_not_reused_until_flushed():
    ids = synced(state(["a", "b"]))
    ids.sync(state(["a"]))
    ids.sync(state(["a", "x"]))
    assert ids.zone("x") == 3, "a zone that may still hold entries was handed out"
    assert ids.flushing() == {2}
    back = Ids.from_doc(ids.to_doc())          # the hold survives a restart
    assert back.flushing() == {2}
    back.sync(state(["a", "x", "y"]))
    assert back.zone("y") == 4
    assert back.zones_flushed({2}) and not back.zones_flushed({2})
    back.sync(state(["a", "x", "y", "z"]))
    assert back.zone("z") == 2


def test_unprotected_vms_get_no_zone():
    ids = synced(state(["a"], unprotected=["b"]))
    assert ids.zones() == {"a": 1}
    ids.sync(state(["a", "b"]))      # b becomes protected
    assert ids.zone("b") == 2
    ids.sync(state(["a"], unprotected=["b"]))
    assert ids.zones() == {"a": 1}


def test_rule_numbers_and_owners():
    ids = synced(state(rules={"web-in": ["ssh", "http"], "db-in": ["pg"]}))
    assert ids.rule("db-in", "pg") == 1
    assert ids.rule("web-in", "http") == 2 and ids.rule("web-in", "ssh") == 3
    assert ids.rule_owner(3) == ("web-in", "ssh")
    assert ids.rule_owner(1) == ("db-in", "pg")
    assert ids.rule_owner(4) is None and ids.rule_owner(0) is None


def test_rule_numbers_independent_of_zones():
    ids = synced(state(["a", "b"], rules={"p": ["r"]}))
    assert ids.zone("a") == 1 and ids.rule("p", "r") == 1


def test_renamed_rule_gets_a_new_number_and_old_is_released():
    ids = synced(state(rules={"p": ["a", "b"]}))
    ids.sync(state(rules={"p": ["b", "c"]}))
    assert ids.rule_owner(1) == ("p", "c")      # "a"'s number reused, lowest free
    assert ids.rule("p", "b") == 2


def test_vm_of_zone():
    ids = synced(state(["web1", "db1"]))
    assert ids.vm_of_zone(1) == "db1" and ids.vm_of_zone(2) == "web1"
    assert ids.vm_of_zone(0) is None and ids.vm_of_zone(3) is None


def test_to_doc_from_doc_round_trip():
    ids = synced(state(["a", "b", "c"], rules={"p": ["x", "y"]}))
    ids.sync(state(["a", "c"], rules={"p": ["y"]}))
    doc = ids.to_doc()
    assert doc == {"zones": {"a": 1, "c": 3}, "rules": {"p/y": 2}, "flushing": [2]}
    back = Ids.from_doc(doc)
    assert back.to_doc() == doc
    assert back.sync(state(["a", "c"], rules={"p": ["y"]})) is False
    back.zones_flushed({2})
    back.sync(state(["a", "c", "z"], rules={"p": ["y"]}))
    assert back.zone("z") == 2


@pytest.mark.parametrize("doc", [None, {}, {"zones": None}])
def test_from_empty_doc(doc):
    ids = Ids.from_doc(doc)
    assert ids.to_doc() == {"zones": {}, "rules": {}}


def test_to_doc_is_a_copy():
    ids = synced(state(["a"]))
    doc = ids.to_doc()
    doc["zones"]["a"] = 99
    assert ids.zone("a") == 1


def test_running_out_of_zones():
    ids = Ids(zone_range=(1, 2))
    ids.sync(state(["a", "b"]))
    with pytest.raises(ids_mod.OutOfNumbersError, match="out of numbers: 1-2 all taken"):
        ids.sync(state(["a", "b", "c"]))
    ids2 = Ids(zone_range=(1, 2))
    ids2.sync(state(["a", "b"]))
    ids2.sync(state(["b"]))
    ids2.zones_flushed({1})
    ids2.sync(state(["b", "c"]))      # a freed its number, flushed: fits again
    assert ids2.zones() == {"b": 2, "c": 1}


def test_running_out_of_rule_numbers(monkeypatch):
    monkeypatch.setattr(ids_mod, "RULE_MAX", 3)
    ids = Ids()
    ids.sync(state(rules={"p": ["a", "b", "c"]}))
    with pytest.raises(ValueError, match="limit 3"):
        ids.sync(state(rules={"p": ["a", "b", "c", "d"]}))


def test_zones_come_from_the_range_and_survive_a_copy():
    ids = Ids(zone_range=(100, 102))
    ids.sync(state(["b", "a"]))
    assert ids.zones() == {"a": 100, "b": 101}
    copy = Ids.from_doc(ids.to_doc())
    copy.sync(state(["a", "b", "c"]))
    assert copy.zones()["c"] == 102
    with pytest.raises(ids_mod.OutOfNumbersError):
        copy.sync(state(["a", "b", "c", "d"]))


def test_a_zone_outside_a_new_range_is_renumbered_and_flushed():
    # The file was written with the whole range; the operator narrowed it.
    ids = Ids(zones={"a": 5, "b": 200}, flushing=[7], zone_range=(200, 299))
    assert ids.zone("a") is None and ids.flushing() == {5, 7}
    ids.sync(state(["a", "b"]))
    assert ids.zones() == {"a": 201, "b": 200}
    # 5 is outside the range: once flushed it is simply gone, never handed out.
    ids.zones_flushed({5, 7})
    assert ids.flushing() == set()


def test_an_agent_leaves_vms_without_a_zone_when_its_range_is_full():
    ids = Ids(zone_range=(10, 11))
    ids.sync(state(["a", "b", "c", "d"]), local={"a", "c", "d"})
    assert ids.zones() == {"a": 10, "c": 11}
    assert ids.unnumbered == {"d"}
    ids.sync(state(["c", "d"]), local={"a", "c", "d"})   # a deleted: 10 held
    assert ids.unnumbered == {"d"}
    ids.zones_flushed({10})
    ids.sync(state(["c", "d"]), local={"a", "c", "d"})
    assert ids.zones() == {"c": 11, "d": 10} and ids.unnumbered == set()


@pytest.mark.parametrize("text, why", [
    ("5", "not LO-HI"), ("a-b", "not LO-HI"), ("0-10", "need 1 <= LO"),
    ("10-5", "need 1 <= LO"), ("1-65536", "need 1 <= LO"), ("-3-4", "not LO-HI"),
    ("\u0661-5", "not LO-HI")])
def test_bad_zone_ranges_say_why(text, why):
    with pytest.raises(ValueError, match=why):
        ids_mod.parse_zone_range(text)


def test_zone_ranges():
    assert ids_mod.parse_zone_range("1-65535") == (1, 65535)
    assert ids_mod.parse_zone_range(" 7 - 7 ") == (7, 7)
