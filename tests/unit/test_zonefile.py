"""The zone file and its journal: every saved change reads back from a fresh reader,
changes are appended (the file is rewritten every JOURNAL_MAX and after a start), and
what a crash leaves (a journal the file already holds, a line cut short) loads right."""

from __future__ import annotations

import json

import pytest

from vgw_ryu.store import zonefile
from vgw_ryu.store.zonefile import ZoneFile, ZoneFileError

STEPS = [
    {"zones": {"a": 1}},
    {"zones": {"a": 1, "b": 2}},
    {"zones": {"a": 1, "b": 3}},                          # b renumbered
    {"zones": {"b": 3}, "flushing": [1]},                 # a gone, its zone held
    {"zones": {"b": 3, "c": 1}},                          # zone 1 flushed, reused
    {"zones": {}},
]


def _lines(zf: ZoneFile) -> list[str]:
    return [ln for ln in zf.journal.read_text().splitlines() if ln]


def _saved(path, n: int) -> ZoneFile:
    """A zone file that saved the first ``n`` steps (the first writes the file)."""
    zf = ZoneFile(path)
    for doc in STEPS[:n]:
        zf.save(doc)
    return zf


def test_every_saved_change_reads_back_from_a_fresh_reader(tmp_path):
    zf = ZoneFile(tmp_path / "zones.json")
    assert zf.load() == {}
    for i, doc in enumerate(STEPS):
        zf.save(doc)
        assert ZoneFile(tmp_path / "zones.json").load() == doc, f"step {i}"


def test_changes_are_appended_and_the_file_rewritten_every_journal_max(tmp_path,
                                                                        monkeypatch):
    monkeypatch.setattr(zonefile, "JOURNAL_MAX", 3)
    path = tmp_path / "zones.json"
    zf = ZoneFile(path)
    zf.save(STEPS[0])                       # the first save writes the file
    inode = path.stat().st_ino
    assert _lines(zf) == []
    for n, doc in enumerate(STEPS[1:4], 1):
        zf.save(doc)
        assert path.stat().st_ino == inode and len(_lines(zf)) == n
    assert json.loads(_lines(zf)[-1])["zones"] == {"a": None}   # only what changed
    zf.save(STEPS[4])                       # the fourth change: the file again
    assert path.stat().st_ino != inode and _lines(zf) == []
    assert ZoneFile(path).load() == STEPS[4]
    zf.save(STEPS[4])                       # nothing changed: nothing written
    assert _lines(zf) == []


def test_a_start_reads_the_journal_and_its_first_save_rewrites_the_file(tmp_path):
    path = tmp_path / "zones.json"
    first = _saved(path, 3)
    assert len(_lines(first)) == 2
    again = ZoneFile(path)                  # a restart (the first one never closed)
    assert again.load() == STEPS[2]
    assert len(_lines(again)) == 2          # loading writes nothing
    again.save(STEPS[3])
    assert _lines(again) == [] and ZoneFile(path).load() == STEPS[3]


def test_a_journal_the_file_already_holds_replays_nothing_twice(tmp_path, monkeypatch):
    # A crash after the file was replaced and before its journal was emptied.
    monkeypatch.setattr(zonefile, "JOURNAL_MAX", 2)
    path = tmp_path / "zones.json"
    zf = ZoneFile(path)
    for doc in STEPS[:3]:
        zf.save(doc)
    left = zf.journal.read_bytes()          # "b": 2, then "b": 3
    zf.save(STEPS[3])                       # rewrites the file: "a" gone
    zf.journal.write_bytes(left)
    assert ZoneFile(path).load() == STEPS[3]


def test_a_last_line_cut_short_is_ignored_and_a_damaged_journal_refused(tmp_path):
    path = tmp_path / "zones.json"
    zf = ZoneFile(path)
    zf.save(STEPS[0])
    zf.save(STEPS[1])
    with zf.journal.open("ab") as f:
        f.write(b'{"seq": 9, "zon')          # a crash mid-append: never acknowledged
    again = ZoneFile(path)
    assert again.load() == STEPS[1]
    again.save(STEPS[2])                    # appends resume on a clean journal
    again.save(STEPS[3])
    assert ZoneFile(path).load() == STEPS[3]
    lines = zf.journal.read_bytes().split(b"\n")
    zf.journal.write_bytes(b"\n".join([b"garbage", *lines]))
    with pytest.raises(ZoneFileError, match=r"zones\.json\.log is damaged at line 1"):
        ZoneFile(path).load()


def test_a_file_written_before_the_journal_loads(tmp_path):
    path = tmp_path / "zones.json"
    path.write_text(json.dumps({"zones": {"web1": 4}, "flushing": [2]}))
    zf = ZoneFile(path)
    assert zf.load() == {"zones": {"web1": 4}, "flushing": [2]}
    zf.save({"zones": {"web1": 4}})
    assert ZoneFile(path).load() == {"zones": {"web1": 4}}


def test_a_clean_close_folds_the_journal_into_the_file(tmp_path):
    path = tmp_path / "zones.json"
    zf = _saved(path, 3)
    assert len(_lines(zf)) == 2
    zf.close()
    assert _lines(zf) == []
    doc = json.loads(path.read_text())   # the file alone, as an older version reads it
    assert {k: v for k, v in doc.items() if k != "seq"} == STEPS[2]
    zf.close()                                # twice: nothing more
    assert ZoneFile(path).load() == STEPS[2]


def test_a_journal_whose_file_was_removed_still_loads(tmp_path):
    path = tmp_path / "zones.json"
    zf = ZoneFile(path)
    for doc in STEPS[:3]:
        zf.save(doc)
    path.unlink()
    # Only the changes since the file was last written: "a" was in the file alone.
    assert ZoneFile(path).load() == {"zones": {"b": 3}}
