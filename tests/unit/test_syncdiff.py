"""The sync diff: desired flows keyed by (table, cookie) against what a switch has."""

from __future__ import annotations

from vgw_ryu.pipeline import tables as pl
from vgw_ryu.pipeline.flows import Flow, Normal, Resubmit
from vgw_ryu.runtime import syncdiff

CLASSIFY, FORWARD = pl.T["classify"], pl.T["forward"]


def flow(port: int, table: int = CLASSIFY, priority: int = 100) -> Flow:
    return Flow.make(table, priority, {"in_port": port}, [Resubmit(FORWARD)])


def installed(*flows: Flow) -> syncdiff.Installed:
    return syncdiff.index_installed((f.table, f.cookie, f.priority, f"m{f.cookie}")
                                    for f in flows)


def test_everything_is_added_to_an_empty_switch():
    want = [flow(1), flow(2), Flow.make(FORWARD, 0, {}, [Normal()])]
    d = syncdiff.diff(want, {})
    assert d.adds == want and d.dels == [] and d


def test_unchanged_switch_needs_nothing():
    want = [flow(1), flow(2)]
    d = syncdiff.diff(want, installed(*want))
    assert d.adds == [] and d.dels == [] and not d


def test_a_flow_no_longer_desired_is_deleted_with_its_priority_and_match():
    a, b = flow(1), flow(2, priority=50)
    d = syncdiff.diff([a], installed(a, b))
    assert d.adds == []
    assert d.dels == [((b.table, b.cookie), (50, f"m{b.cookie}"))]


def test_a_changed_flow_is_an_add_and_a_delete():
    old = flow(1)
    new = Flow.make(CLASSIFY, 100, {"in_port": 1}, [Resubmit(pl.T["egress_guard"])])
    d = syncdiff.diff([new], installed(old))
    assert d.adds == [new]
    assert [k for k, _ in d.dels] == [(old.table, old.cookie)]


def test_every_duplicate_installed_entry_of_a_stale_key_is_deleted():
    a = flow(1)
    known = syncdiff.index_installed([(a.table, a.cookie, 100, "x"),
                                      (a.table, a.cookie, 90, "y")])
    assert known == {(a.table, a.cookie): [(100, "x"), (90, "y")]}
    d = syncdiff.diff([], known)
    assert d.dels == [((a.table, a.cookie), (100, "x")), ((a.table, a.cookie), (90, "y"))]


def test_duplicate_installed_entries_of_a_desired_key_are_left_alone():
    a = flow(1)
    known = syncdiff.index_installed([(a.table, a.cookie, 100, "x"),
                                      (a.table, a.cookie, 100, "x")])
    assert not syncdiff.diff([a], known)


def test_duplicate_desired_flows_are_added_once():
    a = flow(1)
    d = syncdiff.diff([a, a], {})
    assert d.adds == [a]


def test_same_cookie_in_another_table_is_another_flow():
    a = flow(1)
    known = syncdiff.index_installed([(FORWARD, a.cookie, 100, "x")])
    d = syncdiff.diff([a], known)
    assert d.adds == [a] and [k for k, _ in d.dels] == [(FORWARD, a.cookie)]


def test_flows_in_foreign_tables_are_not_ours():
    a = flow(1)
    foreign = 250
    assert foreign not in pl.BY_ID
    known = syncdiff.index_installed([(a.table, a.cookie, 100, "x"),
                                      (foreign, 0x1, 0, "other controller")])
    assert set(known) == {(a.table, a.cookie)}
    assert not syncdiff.diff([a], known)


def test_record_makes_the_next_diff_empty():
    a, b, c = flow(1), flow(2), flow(3)
    known = installed(a, b)
    d = syncdiff.diff([a, c], known)
    syncdiff.record(known, d, lambda f: f"m{f.cookie}")
    assert set(known) == {(a.table, a.cookie), (c.table, c.cookie)}
    assert known[(c.table, c.cookie)] == [(c.priority, f"m{c.cookie}")]
    assert not syncdiff.diff([a, c], known)
