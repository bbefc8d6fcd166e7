"""The policy database with real ovsdb-server processes: durable writes, row diffs,
optimistic concurrency, request ids, outages, refusing foreign files, importing SQLite."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid

import ovs.db.idl
import pytest

from vgw_ryu.policy import model
from vgw_ryu.runtime.engine import Engine
from vgw_ryu.store import ovsdb
from vgw_ryu.store.local import LocalDatabase, import_legacy
from vgw_ryu.store.ovsdb import (
    ConflictError,
    OvsdbStore,
    StaleError,
    StoreError,
    StoreUnavailableError,
)
from vgw_ryu.store.server import DbError
from vgw_ryu.store.zonefile import ZoneFile

DOC = {"vms": {"web1": {"ips": ["10.0.0.11"], "mac": "02:00:00:00:00:11"},
               "db1": {"ips": ["10.0.0.21"], "mac": "02:00:00:00:00:21"}},
       "policies": {"web-in": {"applied_to": ["vm:web1"], "rules": [
           {"id": "http", "direction": "ingress", "action": "allow", "protocol": "tcp",
            "ports": "80"},
           {"id": "ssh", "direction": "ingress", "action": "allow", "protocol": "tcp",
            "ports": "22"}]}}}


@pytest.fixture
def db(tmp_path):
    made: list[LocalDatabase] = []

    def start(name: str = "state.db") -> LocalDatabase:
        d = LocalDatabase(tmp_path / name)
        d.open()
        made.append(d)
        return d

    yield start
    for d in made:
        d.close()


@pytest.fixture
def stores():
    made: list[OvsdbStore] = []

    def connect(remote: str, timeout: float = 5.0) -> OvsdbStore:
        made.append(OvsdbStore(remote, timeout=timeout))
        return made[-1]

    yield connect
    for s in made:
        s.close()


def _row_uuids(store: OvsdbStore, table: str) -> dict[str, str]:
    store.poll()
    return {r.name: str(r.uuid) for r in store.idl.tables[table].rows.values()}


def test_a_write_survives_the_server_and_reads_back_identically(db, stores):
    d = db()
    s = stores(d.remote)
    e = Engine(s)
    assert e.apply_document(json.loads(json.dumps(DOC))) == 1
    before = e.state_document()
    s.close()
    d.close()                       # the server stops; the file holds the commit
    d.open()
    again = Engine(stores(d.remote))
    assert again.state_document() == before
    assert again.ids.rule("web-in", "http") == e.ids.rule("web-in", "http")
    assert again.ids.rule("web-in", "ssh") == e.ids.rule("web-in", "ssh")


def test_only_the_changed_rows_are_written(db, stores):
    s = stores(db().remote)
    e = Engine(s)
    e.apply_document(json.loads(json.dumps(DOC)))
    vms_before = _row_uuids(s, "VM")
    doc = json.loads(json.dumps(DOC))
    doc["vms"]["db1"]["ips"] = ["10.0.0.22"]
    e.apply_document(doc)
    s.poll()
    assert _row_uuids(s, "VM") == vms_before           # updated in place, web1 untouched
    rows = {r.name: r.doc for r in s.idl.tables["VM"].rows.values()}
    assert json.loads(rows["db1"])["ips"] == ["10.0.0.22"]
    # Rules keep their order and numbers through a reorder.
    doc["policies"]["web-in"]["rules"].reverse()
    e.apply_document(doc)
    assert [r["id"] for r in s.load().doc["policies"]["web-in"]["rules"]] == ["ssh", "http"]
    assert s.load().rules == {"web-in/http": 1, "web-in/ssh": 2}


def test_one_object_writes_touch_only_their_rows_and_read_back_as_a_whole(db, stores):
    s = stores(db().remote)
    e = Engine(s)
    e.apply_document(json.loads(json.dumps(DOC)))
    doc = e.state_document()
    del doc["revision"]
    before = {t: _row_uuids(s, t) for t in ("VM", "Policy")}
    # Another agent's replica, kept from the start: it adopts each write by the rows
    # that changed (its load() re-reads only those; refresh() applies the objects).
    other = Engine(stores(s.remote))

    def write(kind: str, name: str, body: dict | None) -> None:
        new = (model.remove_object(e.state, kind, name) if body is None
               else model.replace_object(e.state, kind, name, body))
        e.replace_state(new, touched={kind: {name}})
        if body is None:
            doc[kind].pop(name)
        else:
            doc[kind][name] = model.object_doc(kind, getattr(new, kind)[name])
            doc[kind] = dict(sorted(doc[kind].items()))
        deadline = time.monotonic() + 10
        while not other.refresh() and time.monotonic() < deadline:
            other.store.wait(0.1)
        assert other.revision == e.revision
        assert other.state_document() == e.state_document()

    write("vms", "app1", {"ips": ["10.0.0.31"], "mac": "02:00:00:00:00:31"})
    write("vms", "db1", {"ips": ["10.0.0.22"], "mac": "02:00:00:00:00:21"})
    rules = doc["policies"]["web-in"]["rules"]
    # a rule added, one removed, the rest reordered: rows follow, numbers stay
    write("policies", "web-in", {"applied_to": ["vm:web1", "vm:app1"], "rules": [
        {"id": "https", "direction": "ingress", "action": "allow", "protocol": "tcp",
         "ports": "443"}, rules[0]]})
    write("vms", "db1", None)
    write("policies", "app-out", {"applied_to": ["vm:app1"], "rules": [rules[1]]})
    write("policies", "app-out", None)
    loaded = s.load()
    assert loaded.revision == e.revision == 7
    assert model.state_doc(model.parse_state(loaded.doc)) == doc
    assert loaded.rules == e.ids.rule_numbers() and set(loaded.rules) == {"web-in/http",
                                                                          "web-in/https"}
    assert {r.policy for r in s.idl.tables["Rule"].rows.values()} == {"web-in"}
    vms = _row_uuids(s, "VM")
    assert set(vms) == {"web1", "app1"} and vms["web1"] == before["VM"]["web1"]
    assert _row_uuids(s, "Policy") == before["Policy"]      # updated in place
    # A fresh replica (another process) reads the same state.
    assert Engine(stores(s.remote)).state_document() == e.state_document()


def _names(store: OvsdbStore, table: str) -> list[str]:
    store.poll()
    return sorted(r.name for r in store.idl.tables[table].rows.values())


def test_one_object_writes_find_their_rows_after_other_writers_and_a_restart(db, stores):
    """Each replica finds an object's rows by its key index, kept from the rows the
    server sends: rows another writer made or deleted, and a replica refilled after
    the server restarted, are found (updated in place, never duplicated)."""
    d = db()
    s = stores(d.remote)
    e = Engine(s)
    e.apply_document(json.loads(json.dumps(DOC)))
    other = Engine(stores(s.remote))

    def write(eng: Engine, kind: str, name: str, body: dict | None) -> None:
        eng.refresh()
        new = (model.remove_object(eng.state, kind, name) if body is None
               else model.replace_object(eng.state, kind, name, body))
        eng.replace_state(new, touched={kind: {name}})

    web1 = {"ips": ["10.0.0.11"], "mac": "02:00:00:00:00:11"}
    write(e, "vms", "db1", None)
    write(other, "vms", "db1", {"ips": ["10.0.0.23"], "mac": "02:00:00:00:00:21"})
    write(e, "vms", "db1", {"ips": ["10.0.0.24"], "mac": "02:00:00:00:00:21"})
    write(other, "vms", "web1", {**web1, "labels": {"tier": "web"}})
    write(e, "policies", "web-in", {"applied_to": ["vm:db1"], "rules": []})
    write(other, "policies", "web-in", {"applied_to": ["vm:web1"], "rules": [
        DOC["policies"]["web-in"]["rules"][1]]})
    assert _names(s, "VM") == ["db1", "web1"]
    assert [(r.policy, r.rule_id) for r in s.idl.tables["Rule"].rows.values()] == \
        [("web-in", "ssh")]
    # A row renamed by a writer that is not an engine: db1's row is db9's now.
    with other.store._lock:
        txn = ovs.db.idl.Transaction(other.store.idl)
        next(r for r in other.store.idl.tables["VM"].rows.values() if r.name == "db1"
             ).name = "db9"
        assert other.store._commit(txn, time.monotonic() + 10) == txn.SUCCESS
    write(e, "vms", "db1", {"ips": ["10.0.0.25"], "mac": "02:00:00:00:00:25"})
    assert _names(s, "VM") == ["db1", "db9", "web1"]
    write(e, "vms", "db9", None)
    write(e, "vms", "db1", None)
    rows = _row_uuids(s, "VM")
    assert set(rows) == {"web1"}
    d.close()
    d.open()                          # the replica is emptied and filled again
    e.store.wait_connected(20)
    write(e, "vms", "web1", web1)
    write(e, "vms", "db1", {"ips": ["10.0.0.26"], "mac": "02:00:00:00:00:26"})
    after = _row_uuids(s, "VM")
    assert set(after) == {"db1", "web1"} and after["web1"] == rows["web1"]
    fresh = Engine(stores(s.remote))
    assert fresh.state_document() == e.state_document()
    assert not fresh.state.vms["web1"].labels


def test_request_ids_are_kept_to_the_newest_few(db, stores, monkeypatch):
    monkeypatch.setattr(ovsdb, "KEEP_REQUESTS", 5)
    s = stores(db().remote)
    e = Engine(s)
    e.apply_document(json.loads(json.dumps(DOC)))
    ids = [uuid.uuid4().hex for _ in range(8)]
    for k, rid in enumerate(ids):
        new = model.replace_object(e.state, "vms", "db1",
                                   {"ips": [f"10.0.1.{k}"], "mac": "02:00:00:00:00:21"})
        assert e.replace_state(new, request_id=rid, touched={"vms": {"db1"}}) == k + 2
    s.poll()
    held = dict(next(iter(s.idl.tables["Global"].rows.values())).requests)
    assert held == {rid: k + 2 for k, rid in list(enumerate(ids))[-5:]}
    assert s.request_revision(ids[-1]) == 9 and s.request_revision(ids[0]) is None


def test_a_second_writer_is_stale_until_it_refreshes(db, stores):
    d = db()
    a, b = Engine(stores(d.remote)), Engine(stores(d.remote))
    assert a.apply_document(json.loads(json.dumps(DOC))) == 1
    doc = json.loads(json.dumps(DOC))
    doc["vms"]["app1"] = {"ips": ["10.0.0.31"]}
    with pytest.raises(StaleError):
        b.apply_document(doc)
    deadline = time.monotonic() + 5
    while not b.refresh():
        assert time.monotonic() < deadline, "b never saw revision 1"
        b.store.wait(0.1)
    assert b.revision == 1
    assert b.apply_document(doc) == 2
    with pytest.raises(ConflictError):
        a.apply_document(doc, if_match=1)
    assert a.store.revision() == 2


def test_a_request_id_is_applied_once(db, stores):
    s = stores(db().remote)
    rid = uuid.uuid4().hex
    assert s.write(json.loads(json.dumps(DOC)), {"web-in/http": 1, "web-in/ssh": 2}, 0,
                   request_id=rid) == 1
    # A client retrying the same request after losing the answer: no second revision.
    assert s.write(json.loads(json.dumps(DOC)), {"web-in/http": 1, "web-in/ssh": 2}, 0,
                   request_id=rid) == 1
    assert s.revision() == 1
    assert s.request_revision(rid) == 1


def test_no_commit_in_time_is_unavailable_and_changes_nothing(db, stores):
    d = db()
    s = stores(d.remote, timeout=1.0)
    e = Engine(s)
    e.apply_document(json.loads(json.dumps(DOC)))
    d.close()
    doc = json.loads(json.dumps(DOC))
    doc["vms"]["app1"] = {"ips": ["10.0.0.31"]}
    t0 = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="did not commit within 1 s"):
        e.apply_document(doc)
    assert time.monotonic() - t0 < 3.0
    assert e.revision == 1 and "app1" not in e.state.vms      # nothing changed
    assert s.health()["connected"] is False
    d.open()
    s.wait_connected(10)
    assert e.apply_document(doc) == 2
    assert s.health()["connected"] is True




def test_whole_state_writes_rename_move_and_empty_read_back_everywhere(db, stores):
    """Whole-state writes whose rows are deleted and inserted under one key in one
    transaction (a VM renamed, a rule moved to another policy keeping its id and
    number, everything deleted) read back the same in the writer, in a replica kept
    from the start and in a fresh one."""
    s = stores(db().remote)
    e = Engine(s)
    other = Engine(stores(s.remote))
    doc = json.loads(json.dumps(DOC))
    docs = [doc]
    renamed = json.loads(json.dumps(doc))
    renamed["vms"]["web2"] = renamed["vms"].pop("web1")
    renamed["policies"]["web-in"]["applied_to"] = ["vm:web2"]
    docs.append(renamed)
    moved = json.loads(json.dumps(renamed))
    ssh = moved["policies"]["web-in"]["rules"].pop()
    moved["policies"]["admin-in"] = {"applied_to": ["vm:db1"], "rules": [ssh]}
    docs.append(moved)
    docs.append({})
    docs.append(json.loads(json.dumps(DOC)))
    for k, d in enumerate(docs, 1):
        assert e.apply_document(json.loads(json.dumps(d))) == k
        want = e.state_document()
        assert model.state_doc(model.parse_state(d)) == {x: v for x, v in want.items()
                                                         if x != "revision"}
        deadline = time.monotonic() + 10
        while other.revision != k and time.monotonic() < deadline:
            if not other.refresh():
                other.store.wait(0.1)
        assert other.state_document() == want
        assert Engine(stores(s.remote)).state_document() == want
        loaded = s.load()
        assert loaded.rules == e.ids.rule_numbers()
        assert len(s.idl.tables["Rule"].rows) == sum(
            len(p.get("rules", [])) for p in d.get("policies", {}).values())

def test_a_first_write_the_server_refuses_is_a_store_error_not_an_outage(db, stores):
    # A rule number outside the schema's range (1..1048575), on an empty database: the
    # server refuses the whole transaction. Not another writer's race (nothing shows
    # up), not an outage: said as the refusal, and nothing is written.
    s = stores(db().remote, timeout=1.0)
    doc = json.loads(json.dumps(DOC))
    with pytest.raises(StoreError, match="refused the write") as got:
        s.write(doc, {"web-in/http": 0, "web-in/ssh": 2}, 0)
    assert not isinstance(got.value, StoreUnavailableError)
    assert s.revision() == 0 and s.load().doc["vms"] == {}
    assert s.write(doc, {"web-in/http": 1, "web-in/ssh": 2}, 0) == 1

def test_a_file_that_is_not_a_database_is_refused_and_untouched(tmp_path):
    path = tmp_path / "state.db"
    path.write_bytes(b"not a database at all\n" * 10)
    before = path.read_bytes()
    with pytest.raises(DbError, match="Refusing to start over it"):
        LocalDatabase(path).open()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.db"]


def _old_sqlite(path, state, revision, ids) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for k, v in (("schema", "1"), ("revision", str(revision)), ("state", json.dumps(state)),
                 ("ids", json.dumps(ids))):
        db.execute("INSERT INTO meta VALUES (?, ?)", (k, v))
    db.commit()
    db.close()


def test_an_older_sqlite_database_is_imported_with_revision_rules_and_zones(tmp_path,
                                                                            stores):
    path = tmp_path / "state.db"
    _old_sqlite(path, DOC, 7, {"zones": {"web1": 5, "db1": 2},
                               "rules": {"web-in/http": 9, "web-in/ssh": 4}})
    d = LocalDatabase(path)
    try:
        d.open()
        s = stores(d.remote)
        zones = ZoneFile(tmp_path / "zones.json")
        assert import_legacy(s, zones, d.legacy) == 7
        e = Engine(s, zones)
        assert e.revision == 7
        assert e.ids.zone("web1") == 5 and e.ids.zone("db1") == 2
        assert e.ids.rule("web-in", "http") == 9
        assert (tmp_path / "state.db.sqlite-imported").exists()
        assert s.meta("source") == "sqlite-import"
        assert import_legacy(s, zones, d.legacy) is None     # never twice
    finally:
        d.close()


def test_a_damaged_sqlite_database_is_refused_and_kept(tmp_path):
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE other (x)")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(DbError, match=r"not a .*vgw_ryu database"):
        LocalDatabase(path).open()
    assert path.read_bytes() == before


def test_the_refresh_bench_adopts_every_write_both_ways():
    """``python -m vgw_lab.bench.refresh``, tiny: every write adopted by object and by a
    whole parse ends in the writer's state (checked inside, write by write)."""
    from vgw_lab.bench.refresh import run_refresh
    out = run_refresh(vms=30, writes=3)
    assert out["vms"] == 30 and out["writes"] == 3
    assert 0 < out["by_object"]["p50_ms"] <= out["by_object"]["p99_ms"]
    assert 0 < out["whole"]["p50_ms"] <= out["whole"]["p99_ms"]
