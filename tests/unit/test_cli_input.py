"""What vgwctl reads (vgw_ryu.cli.files): apply files, diffs and --since values."""

from __future__ import annotations

import pytest

from vgw_ryu.cli import files as ci
from vgw_ryu.cli.files import CliError
from vgw_ryu.policy import model

STATE = {"vms": {"web1": {"ips": ["10.0.0.11"], "labels": {"tier": "web"}}},
         "groups": {"web": {"match_labels": {"tier": "web"}}}}


def write(tmp_path, text):
    f = tmp_path / "f.yaml"
    f.write_text(text)
    return str(f)


# --- documents ---------------------------------------------------------------------------
def test_whole_state_documents():
    for doc in (STATE, {"vms": {}, "revision": 3}, {}):
        assert ci.is_state(doc)
    state, objects = ci.plan([{**STATE, "revision": 9}])
    assert objects == [] and state == model.state_doc(model.parse_state(STATE))


def test_one_object():
    assert ci.plan([{"kind": "vm", "name": "a", "ips": ["10.0.0.1"]}]) == \
        (None, [("vms", "a", {"ips": ["10.0.0.1"]})])


def test_list_of_objects_keeps_order_and_maps_kinds():
    _, got = ci.plan([[{"kind": "policy", "name": "p", "rules": []},
                       {"kind": "group", "name": "g", "members": []},
                       {"kind": "vm", "name": "v"}]])
    assert [(c, n) for c, n, _ in got] == [("policies", "p"), ("groups", "g"), ("vms", "v")]
    assert got[2][2] == {}


@pytest.mark.parametrize("doc", [
    [{"kind": "host", "name": "a"}],
    [{"kind": "vm"}],
    [{"kind": "vm", "name": 3}],
    ["vm a"],
    [{"name": "a"}],
    {"kind": "vm"},
    "just text",
])
def test_bad_object_files_are_named(doc):
    with pytest.raises(CliError, match=r"^item \d+: expected \{kind: vm\|group\|policy"):
        ci.plan([doc])


@pytest.mark.parametrize(("doc", "field"), [
    ({"polices": {}}, "polices: unknown field (allowed: settings, vms, groups, policies"),
    ({"something": "else"}, "something: unknown field"),
    ({"vms": {"a": {"ips": ["nope"]}}}, "vms.a.ips[0]"),
])
def test_a_mapping_without_kind_is_validated_as_a_state(doc, field):
    with pytest.raises(CliError) as e:
        ci.plan([doc])
    assert str(e.value).startswith("invalid: " + field), str(e.value)


def test_multi_document_objects_are_collected_in_order(tmp_path):
    docs = ci.load_documents(write(tmp_path, "kind: vm\nname: a\n---\n"
                                   "- {kind: vm, name: b}\n- {kind: group, name: g}\n---\n"))
    assert docs[-1] is None                 # the trailing '---' is an empty document
    state, objects = ci.plan(docs)
    assert state is None and [n for _, n, _ in objects] == ["a", "b", "g"]


def test_multi_document_state_with_objects_merges_into_one_state(tmp_path):
    docs = ci.load_documents(write(tmp_path, "vms: {web1: {ips: [10.0.0.11]}}\n---\n"
                                   "kind: vm\nname: web1\nips: [10.0.0.12]\n---\n"
                                   "kind: vm\nname: db1\n"))
    state, objects = ci.plan(docs)
    assert objects == []
    assert state["vms"]["web1"]["ips"] == ["10.0.0.12"] and "db1" in state["vms"]


def test_two_whole_states_are_refused_naming_the_document():
    with pytest.raises(CliError, match=r"^document 3: a second whole state document "
                                       r"\(document 1 is one\)"):
        ci.plan([STATE, {"kind": "vm", "name": "a"}, {"vms": {}}])


def test_errors_in_a_later_document_name_it():
    with pytest.raises(CliError, match=r"^document 2: item 1: expected"):
        ci.plan([STATE, [{"kind": "vm", "name": "a"}, {"kind": "nope"}]])
    with pytest.raises(CliError, match=r"^document 2: invalid: vms\.a\.ips\[0\]"):
        ci.plan([{"kind": "vm", "name": "b"}, {"kind": "vm", "name": "a", "ips": ["x"]}])
    with pytest.raises(CliError, match=r"^document 2: invalid: polices: unknown field"):
        ci.plan([{"kind": "vm", "name": "b"}, {"polices": {}}])


def test_an_object_given_twice_is_refused():
    with pytest.raises(CliError, match=r"^document 2: vm a is also in document 1"):
        ci.plan([{"kind": "vm", "name": "a"}, {"kind": "vm", "name": "a"}])


def test_load_yaml_file_and_errors(tmp_path):
    assert ci.load_documents(write(tmp_path, "kind: vm\nname: a\n")) == \
        [{"kind": "vm", "name": "a"}]
    with pytest.raises(CliError, match=r"missing\.yaml: No such file"):
        ci.load_documents(str(tmp_path / "missing.yaml"))
    with pytest.raises(CliError, match="not YAML/JSON"):
        ci.load_documents(write(tmp_path, "a: [1, 2\n"))
    with pytest.raises(CliError, match="no documents: nothing to apply"):
        ci.load_documents(write(tmp_path, "---\n---\n"))
    (tmp_path / "bin").write_bytes(b"\xff\xfe")
    with pytest.raises(CliError, match="not UTF-8"):
        ci.load_documents(str(tmp_path / "bin"))


# --- diffs -------------------------------------------------------------------------------
def test_diff_equal_new_removed():
    assert ci.diff("vm a", {"x": 1}, {"x": 1}) == []
    assert ci.diff("vm a", None, {"x": 1}) == ["+ vm a (new)"]
    assert ci.diff("vm a", {"x": 1}, None) == ["- vm a (removed)"]


def test_diff_changed_shows_unified_lines():
    lines = ci.diff("policy p", {"a": 1, "b": 2}, {"a": 1, "b": 3})
    assert lines[0] == "~ policy p"
    assert "    -  \"b\": 2" in lines and "    +  \"b\": 3" in lines
    assert all(ln.startswith("    ") for ln in lines[1:])
    assert not any("---" in ln or "+++" in ln for ln in lines)


def test_diff_state_of_objects_and_of_a_state():
    current = {**model.state_doc(model.parse_state(STATE)), "revision": 1}
    assert ci.diff_state(current, None, [("vms", "db1", {})]) == ["+ vms db1 (new)"]
    assert ci.diff_state(current, None, [("vms", "web1", STATE["vms"]["web1"])]) == []
    assert ci.diff_state(current, model.state_doc(model.parse_state({}))) == \
        ["- vm web1 (removed)", "- group web (removed)"]


def test_canonical_fills_defaults_and_validates():
    assert ci.canonical("vms", "a", {"ips": ["10.0.0.1"]}) == \
        {"ips": ["10.0.0.1"], "labels": {}}
    with pytest.raises(CliError, match=r"^invalid: vms\.a\.ips\[0\]"):
        ci.canonical("vms", "a", {"ips": ["nope"]})


# --- --since ---------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "ago"), [("30s", 30), ("5m", 300), ("2h", 7200),
                                           ("1d", 86400), ("1h30m", 5400), ("1.5m", 90),
                                           (" 5M ", 300)])
def test_since_durations_are_seconds_ago(text, ago):
    assert float(ci.since_value(text, 100000.0)) == 100000.0 - ago


@pytest.mark.parametrize("text", ["1714557600", "1714557600.25", "2024-05-01T10:00:00Z",
                                  "2024-05-01T10:00:00+02:00"])
def test_since_unix_and_iso_pass_through(text):
    assert ci.since_value(text, 0.0) == text


@pytest.mark.parametrize("text", ["5 minutes", "m5", "5x", "", "yesterday", "5m ago"])
def test_since_nonsense_names_the_option(text):
    with pytest.raises(CliError, match=r"^--since: .* is not a duration \(30s, 5m, 2h, 1d\)"):
        ci.since_value(text, 0.0)
