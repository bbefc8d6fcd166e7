"""The SQLite store: round trips, revisions, If-Match, metadata and refusing bad files."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from vgw_ryu.runtime.store import SCHEMA_VERSION, ConflictError, Store, StoreError

STATE = {"vms": {"web1": {"ips": ["10.0.0.11"]}}, "groups": {}, "policies": {}}
IDS = {"zones": {"web1": 1}, "rules": {}}


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state.db")
    yield s
    s.close()


def reopen(store: Store) -> Store:
    store.close()
    return Store(store.path)


def test_new_store_is_empty(store):
    assert store.load() == ({}, 0, {})
    assert store.revision() == 0
    assert store.meta("seed-sha256") is None


def test_parent_directories_are_created(tmp_path):
    s = Store(tmp_path / "a" / "b" / "state.db")
    assert s.path.exists() and s.load()[1] == 0
    s.close()


def test_empty_file_is_initialised(tmp_path):
    (tmp_path / "state.db").write_bytes(b"")
    s = Store(tmp_path / "state.db")
    assert s.load() == ({}, 0, {})
    s.close()


def test_write_load_round_trip(store):
    assert store.write(STATE, IDS) == 1
    assert store.load() == (STATE, 1, IDS)
    again = reopen(store)
    assert again.load() == (STATE, 1, IDS)
    again.close()


def test_revision_increments_per_write(store):
    revs = [store.write({"n": i}, {}) for i in range(1, 5)]
    assert revs == [1, 2, 3, 4]
    assert store.revision() == 4 and store.load()[0] == {"n": 4}


def test_if_match_current_revision_commits(store):
    store.write(STATE, IDS)
    assert store.write({"n": 2}, {}, if_match=1) == 2
    assert store.load() == ({"n": 2}, 2, {})


@pytest.mark.parametrize("stale", [0, 2, 99])
def test_if_match_stale_raises_and_leaves_data(store, stale):
    store.write(STATE, IDS, extra={"k": "v1"})
    with pytest.raises(ConflictError) as e:
        store.write({"n": 2}, {"zones": {}}, if_match=stale, extra={"k": "v2"})
    assert (e.value.expected, e.value.current) == (stale, 1)
    assert f"revision {stale} is stale; current revision is 1" in str(e.value)
    assert store.load() == (STATE, 1, IDS)
    assert store.meta("k") == "v1"
    assert store.write({"n": 3}, {}) == 2     # no transaction left open


def test_failed_write_rolls_back(store):
    store.write(STATE, IDS)
    with pytest.raises(TypeError):
        store.write({"bad": {1, 2}}, {})          # not JSON: fails inside the transaction
    with pytest.raises(TypeError):
        store.write(STATE, {"bad": object()}, extra={"k": "v"})   # after the state update
    assert store.load() == (STATE, 1, IDS)
    assert store.meta("k") is None
    assert store.write({"n": 2}, {}) == 2
    assert reopen(store).load() == ({"n": 2}, 2, {})


def test_extra_keys_are_metadata_in_their_own_namespace(store):
    store.write(STATE, IDS, extra={"seed-sha256": "abc", "revision": "99", "state": "x"})
    assert store.meta("seed-sha256") == "abc"
    assert store.meta("revision") == "99"
    # The reserved keys are untouched by same-named extras.
    assert store.load() == (STATE, 1, IDS)
    store.write(STATE, IDS, extra={"seed-sha256": "def"})
    assert store.meta("seed-sha256") == "def"
    assert store.meta("revision") == "99"   # kept when not written again
    assert reopen(store).meta("seed-sha256") == "def"


def test_write_ids_alone(store):
    store.write(STATE, IDS)
    store.write_ids({"zones": {"web1": 1, "db1": 2}, "rules": {}})
    assert store.load() == (STATE, 1, {"zones": {"web1": 1, "db1": 2}, "rules": {}})
    assert reopen(store).load()[2]["zones"] == {"web1": 1, "db1": 2}


def test_concurrent_if_match_writers_one_wins(store):
    store.write(STATE, IDS)
    results: list[str] = []
    barrier = threading.Barrier(8)

    def writer(n: int) -> None:
        barrier.wait()
        try:
            store.write({"n": n}, {}, if_match=1)
            results.append("ok")
        except ConflictError:
            results.append("conflict")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["conflict"] * 7 + ["ok"]
    assert store.revision() == 2


def test_not_a_database_is_refused_and_untouched(tmp_path):
    db = tmp_path / "bad.db"
    db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError) as e:
        Store(db)
    assert "cannot use database" in str(e.value) and str(db) in str(e.value)
    assert "Refusing to start over it" in str(e.value)
    assert db.read_bytes() == b"this is not sqlite" * 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.db"]


def _foreign_db(path, rows=(("a",), ("b",))) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (x TEXT)")
    con.executemany("INSERT INTO t VALUES (?)", rows)
    con.commit()
    con.close()


def _rows(path) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT x FROM t ORDER BY x").fetchall()
    finally:
        con.close()


def test_other_sqlite_database_is_refused_and_its_data_kept(tmp_path):
    db = tmp_path / "other.db"
    _foreign_db(db)
    with pytest.raises(StoreError) as e:
        Store(db)
    assert "not a vgw_ryu database" in str(e.value)
    assert _rows(db) == [("a",), ("b",)]


def test_other_sqlite_database_is_byte_for_byte_untouched(tmp_path):
    db = tmp_path / "other.db"
    _foreign_db(db)
    before = db.read_bytes()
    with pytest.raises(StoreError):
        Store(db)
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


@pytest.mark.parametrize("meta,why", [
    ({"schema": "1", "revision": "0", "state": "{}"}, "no 'ids'"),
    ({"revision": "0", "state": "{}", "ids": "{}"}, "no 'schema'"),
    ({"schema": str(SCHEMA_VERSION + 1), "revision": "0", "state": "{}", "ids": "{}"},
     "schema version"),
    pytest.param({"schema": "1", "revision": "0", "state": "{not json", "ids": "{}"},
                 "Expecting"),
    pytest.param({"schema": "one", "revision": "0", "state": "{}", "ids": "{}"},
                 "schema"),
])
def test_damaged_vgw_database_is_refused(tmp_path, meta, why):
    db = tmp_path / "state.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    con.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
    con.commit()
    con.close()
    with pytest.raises(StoreError) as e:
        Store(db)
    assert why in str(e.value)
    con = sqlite3.connect(db)
    assert dict(con.execute("SELECT key, value FROM meta").fetchall()) == meta
    con.close()


def test_truncated_database_is_refused(tmp_path, store):
    store.write(STATE, IDS)
    store.close()
    data = store.path.read_bytes()
    bad = tmp_path / "cut.db"
    bad.write_bytes(data[:100] + b"\x00" * 50)
    with pytest.raises(StoreError):
        Store(bad)


def test_unopenable_path_is_a_store_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError) as e:
        Store(tmp_path / "file" / "state.db")
    assert "cannot open database" in str(e.value)
