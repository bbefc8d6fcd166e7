"""Agents' Chassis rows in a real ovsdb-server: what report_chassis writes (whole
values, or a map's changed keys alone) is what a fresh replica reads, and reads of
unchanged columns are not converted again."""

from __future__ import annotations

import time

import pytest

from vgw_ryu.store.columns import update_column
from vgw_ryu.store.local import LocalDatabase
from vgw_ryu.store.ovsdb import OvsdbStore


def _fields(ports: dict[str, str], revision: int, unknown: set[str]) -> dict:
    return {"hostname": "h1", "applied_revision": revision, "bridges": {"br0": "00ab"},
            "vm_ports": ports, "unknown_ports": unknown, "heartbeat": 1000 + revision,
            "started": 7, "version": "1.0"}


def _as_read(fields: dict) -> dict:
    return {**fields, "name": "a1", "unknown_ports": sorted(fields["unknown_ports"]),
            "external_ids": {}}


@pytest.fixture
def database(tmp_path):
    db = LocalDatabase(tmp_path / "state.db")
    remote = db.open()
    stores: list[OvsdbStore] = []

    def store() -> OvsdbStore:
        stores.append(OvsdbStore(remote))
        return stores[-1]

    yield store
    for s in stores:
        s.close()
    db.close()


def test_reports_read_back_from_a_fresh_replica(database):
    agent = database()
    ports = {f"vm{i}": f"br0:p{i}" for i in range(200)}
    steps = [
        (dict(ports), 1, set()),                                       # the row made
        ({**ports, "new": "br0:pn"}, 2, set()),                        # a key added
        ({k: v for k, v in ports.items() if k != "vm7"}, 3, {"br0:u"}),  # one gone
        ({**ports, "vm9": "br0:moved"}, 4, {"br0:u"}),                # a value changed
        ({f"x{i}": "br0:q" for i in range(150)}, 5, set()),            # most changed
        ({}, 6, {"br0:u", "br0:v"}),                                   # emptied
    ]
    for ports_now, rev, unknown in steps:
        fields = _fields(ports_now, rev, unknown)
        assert agent.report_chassis("a1", fields)
        (mine,) = agent.chassis()
        assert mine == _as_read(fields), f"step {rev}: this agent's replica"
        fresh = database()
        (row,) = fresh.chassis()
        assert row == _as_read(fields), f"step {rev}: a fresh replica"
        fresh.close()


def test_a_column_is_converted_again_only_when_it_changed(database):
    agent = database()
    fields = _fields({f"vm{i}": "br0:p" for i in range(50)}, 1, set())
    assert agent.report_chassis("a1", fields)
    row = next(iter(agent.idl.tables["Chassis"].rows.values()))
    ports, beat = agent._columns.get(row, "vm_ports"), agent._columns.get(row, "heartbeat")
    assert agent.report_chassis("a1", {**fields, "heartbeat": 99_999})
    assert agent._columns.get(row, "vm_ports") is ports      # kept
    assert (beat, agent._columns.get(row, "heartbeat")) == (1001, 99_999)
    assert agent.report_chassis("a1", {**fields, "vm_ports": {"vm0": "br0:q"}})
    assert agent._columns.get(row, "vm_ports") == {"vm0": "br0:q"}   # changed: again
    # Another writer's change (a fresh replica writing the row) is seen too.
    other = database()
    assert other.report_chassis("a1", {**fields, "hostname": "h2"})
    deadline = time.monotonic() + 10
    while agent.chassis()[0]["hostname"] != "h2":
        assert time.monotonic() < deadline, "the other writer's change never showed"
        agent.poll()
        time.sleep(0.01)


class _Row:
    """Records what update_column asks of an IDL row."""

    def __init__(self) -> None:
        self.__dict__["calls"] = []

    def setkey(self, column: str, key: str, value: str) -> None:
        self.calls.append(("setkey", key, value))

    def delkey(self, column: str, key: str) -> None:
        self.calls.append(("delkey", key))

    def __setattr__(self, column: str, value) -> None:
        self.calls.append(("set", column))


@pytest.mark.parametrize(("old", "new", "calls"), [
    ({"a": "1", "b": "2", "c": "3"}, {"a": "1", "b": "2", "c": "3"}, []),
    ({"a": "1", "b": "2", "c": "3"}, {"a": "1", "b": "2", "c": "3", "d": "4"},
     [("setkey", "d", "4")]),
    ({"a": "1", "b": "2", "c": "3"}, {"a": "1", "b": "2"}, [("delkey", "c")]),
    ({"a": "1", "b": "2", "c": "3"}, {"a": "1", "b": "2", "c": "9"},
     [("setkey", "c", "9")]),
    ({"a": "1", "b": "2"}, {"x": "1", "y": "2"}, [("set", "m")]),   # most changed
    (["u", "v"], {"v", "u"}, []),                                    # a set, read as a list
    (["u"], {"u", "w"}, [("set", "m")]),
    (3, 4, [("set", "m")]),
])
def test_update_column_writes_only_what_differs(old, new, calls):
    row = _Row()
    update_column(row, "m", old, new)
    assert row.calls == calls
