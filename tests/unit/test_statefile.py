"""The state file: when a reload is due, what loading does with good and bad files, and
the two models: --vgw-state (the file is the source of truth) and --vgw-seed (first fill)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from vgw_ryu.runtime import statefile

GOOD = {"vms": {"a": {"mac": "02:00:00:00:00:01", "ips": ["10.0.0.1"]}}}


@pytest.fixture
def engine(make_engine):
    return make_engine()


def write(path: Path, doc, mtime: float | None = None) -> None:
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    if mtime is not None:
        os.utime(path, (mtime, mtime))


@pytest.mark.parametrize(("requested", "current", "loaded", "due"), [
    (False, (1.0, 10), (1.0, 10), False),   # unchanged
    (False, (2.0, 10), (1.0, 10), True),    # touched
    (False, (1.0, 11), (1.0, 10), True),    # same mtime, other size
    (False, None, (1.0, 10), False),        # gone: keep what runs
    (True, None, (1.0, 10), True),          # SIGHUP always reloads
    (True, (1.0, 10), (1.0, 10), True),
    (False, (1.0, 10), None, True),         # never read
])
def test_reload_due(requested, current, loaded, due):
    assert statefile.reload_due(requested, current, loaded) is due


def test_initial_load_applies_and_a_second_check_does_nothing(tmp_path, engine):
    f = tmp_path / "state.yaml"
    write(f, GOOD, 1000.0)
    w = statefile.StateFileWatcher(str(f), engine)
    assert w.load(initial=True) == 1
    assert w.loaded == (1000.0, f.stat().st_size)
    assert w.check() is False
    assert engine.snapshot().revision == 1


def test_a_changed_file_is_reloaded_and_identical_content_is_not_reapplied(tmp_path, engine):
    f = tmp_path / "state.yaml"
    write(f, GOOD, 1000.0)
    w = statefile.StateFileWatcher(str(f), engine)
    w.load(initial=True)
    write(f, GOOD, 2000.0)                       # touched, same text: equal, no revision
    assert w.check() is True and engine.snapshot().revision == 1
    write(f, {"vms": {**GOOD["vms"], "b": {"ips": ["10.0.0.2"]}}}, 3000.0)
    assert w.check() is True and engine.snapshot().revision == 2
    assert set(engine.snapshot().state.vms) == {"a", "b"}


def test_sighup_forces_one_reload(tmp_path, engine, monkeypatch):
    f = tmp_path / "state.yaml"
    write(f, GOOD, 1000.0)
    w = statefile.StateFileWatcher(str(f), engine)
    w.load(initial=True)
    loads = []
    monkeypatch.setattr(w, "load", lambda initial=False: loads.append(initial))
    w.request_reload()
    assert w.check() is True and loads == [False]
    assert w.check() is False and loads == [False]


@pytest.mark.parametrize("text", ["vms: [unclosed", "vms: {a: {ips: [not-an-ip]}}"])
def test_a_bad_file_at_start_with_nothing_stored_is_fatal(tmp_path, engine, text):
    f = tmp_path / "state.yaml"
    write(f, text)
    with pytest.raises(statefile.StateFileFatalError, match=r"state file .* rejected"):
        statefile.StateFileWatcher(str(f), engine).load(initial=True)


def test_a_missing_file_at_start_is_fatal(tmp_path, engine):
    w = statefile.StateFileWatcher(str(tmp_path / "nope.yaml"), engine)
    with pytest.raises(statefile.StateFileFatalError):
        w.load(initial=True)


def test_a_bad_file_later_keeps_the_running_revision(tmp_path, engine, caplog):
    f = tmp_path / "state.yaml"
    write(f, GOOD, 1000.0)
    w = statefile.StateFileWatcher(str(f), engine)
    w.load(initial=True)
    write(f, "vms: [unclosed", 2000.0)
    assert w.check() is True
    assert engine.snapshot().revision == 1
    assert "rejected, keeping revision 1" in caplog.text
    assert w.check() is False          # the bad version is not retried until it changes
    # At start, a bad file with a stored state is not fatal either.
    assert statefile.StateFileWatcher(str(f), engine).load(initial=True) is None


def test_load_state_file_parses_yaml_and_json(tmp_path):
    f = tmp_path / "s.json"
    f.write_text('{"vms": {}}')
    assert statefile.load_state_file(str(f)) == ('{"vms": {}}', {"vms": {}})
    f.write_text("")
    assert statefile.load_state_file(str(f)) == ("", {})
    f.write_text("a: [")
    with pytest.raises(ValueError, match="not YAML/JSON"):
        statefile.load_state_file(str(f))


def _drift(engine) -> None:
    doc = {k: v for k, v in engine.state_document().items() if k != "revision"}
    doc["vms"]["rest"] = {"ips": ["10.0.0.9"]}
    engine.apply_document(doc)


def test_state_mode_sighup_restores_drift_even_with_an_unchanged_file(tmp_path, engine):
    f = tmp_path / "state.yaml"
    write(f, GOOD, 1000.0)
    w = statefile.StateFileWatcher(str(f), engine, "state")
    assert w.load(initial=True) == 1
    _drift(engine)                                   # e.g. written before a restart
    assert w.check() is False                        # the file did not change...
    w.request_reload()                               # ...but SIGHUP re-applies it
    assert w.check() is True
    assert set(engine.snapshot().state.vms) == {"a"} and engine.revision == 3


def test_state_mode_at_start_replaces_a_stored_state_that_differs(tmp_path, engine):
    f = tmp_path / "state.yaml"
    write(f, GOOD)
    engine.apply_document({"vms": {"old": {"ips": ["10.0.0.7"]}}})
    assert statefile.StateFileWatcher(str(f), engine, "state").load(initial=True) == 2
    assert set(engine.snapshot().state.vms) == {"a"}


def test_state_mode_is_read_only_for_rest_and_names_the_file(tmp_path, engine):
    w = statefile.StateFileWatcher(str(tmp_path / "s.yaml"), engine, "state")
    reason = w.read_only_reason()
    assert str(tmp_path / "s.yaml") in reason and "--vgw-state" in reason
    assert statefile.StateFileWatcher("x.yaml", engine, "seed").read_only_reason() is None


def test_seed_mode_applies_only_to_an_empty_store_and_is_never_reloaded(tmp_path, engine):
    f = tmp_path / "seed.yaml"
    write(f, GOOD, 1000.0)
    w = statefile.StateFileWatcher(str(f), engine, "seed")
    assert w.load(initial=True) == 1
    _drift(engine)                                   # REST owns the state now
    write(f, {"vms": {}}, 2000.0)                    # edits are not read
    w.request_reload()
    assert w.check() is False and engine.revision == 2
    # A restart with the seed option over a non-empty store leaves it alone.
    again = statefile.StateFileWatcher(str(f), engine, "seed")
    assert again.load(initial=True) is None
    assert set(engine.snapshot().state.vms) == {"a", "rest"}


def test_seed_mode_bad_file_on_an_empty_store_is_fatal(tmp_path, engine):
    f = tmp_path / "seed.yaml"
    write(f, "vms: [unclosed")
    with pytest.raises(statefile.StateFileFatalError, match=r"seed\.yaml"):
        statefile.StateFileWatcher(str(f), engine, "seed").load(initial=True)


def test_unknown_mode_is_refused(engine):
    with pytest.raises(ValueError, match="mode"):
        statefile.StateFileWatcher("x", engine, "both")


def test_a_rejected_edit_is_a_problem_until_a_good_version_is_applied(tmp_path, engine):
    f = tmp_path / "state.yaml"
    write(f, GOOD, 1000.0)
    w = statefile.StateFileWatcher(str(f), engine)
    w.load(initial=True)
    assert w.problems() == []
    write(f, "vms: {a: {ips: [not-an-ip]}}", 2000.0)
    assert w.check() is True
    (p,) = w.problems()
    assert p["code"] == "state_file_rejected"
    assert str(f) in p["message"] and "revision 1" in p["message"]
    assert "vms.a.ips" in p["message"] and p["since"].endswith("Z")
    since = p["since"]
    write(f, "vms: [still bad", 3000.0)
    assert w.check() is True
    assert w.problems()[0]["since"] == since           # the same episode
    assert "not YAML" in w.problems()[0]["message"]
    write(f, {"vms": {**GOOD["vms"], "b": {"ips": ["10.0.0.2"]}}}, 4000.0)
    assert w.check() is True
    assert w.problems() == [] and engine.revision == 2
