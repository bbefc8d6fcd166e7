"""vgwctl's pure parts: object files, diff lines, tables, log lines; a fake server for apply."""

from __future__ import annotations

import socket

import pytest
import yaml

from vgw_ryu import cli
from vgw_ryu.policy import model

STATE = {
    "settings": {"default_ingress": "deny"},
    "vms": {"web1": {"mac": "02:00:00:00:01:01", "ips": ["10.0.0.11"],
                     "labels": {"tier": "web"}}},
    "groups": {"web": {"match_labels": {"tier": "web"}}},
    "policies": {"web-in": {"applied_to": ["group:web"], "rules": [
        {"id": "http", "direction": "ingress", "action": "allow", "protocol": "tcp",
         "ports": "80"}]}},
}


def canonical(doc):
    return model.state_doc(model.parse_state(doc))


class FakeClient:
    """Answers GET /v1/state with a canonical state; records writes."""

    def __init__(self, state):
        self.state = {**canonical(state), "revision": 4}
        self.writes = []

    def call(self, method, path, body=None):
        if method == "GET" and path == "/v1/state":
            return self.state
        self.writes.append((method, path, body))
        return {"revision": 5}


def test_whole_state_document_is_not_objects():
    assert cli._objects(STATE) is None
    assert cli._objects({"vms": {}, "revision": 3}) is None
    assert cli._objects({}) is None


def test_one_object():
    got = cli._objects({"kind": "vm", "name": "a", "ips": ["10.0.0.1"]})
    assert got == [("vms", "a", {"ips": ["10.0.0.1"]})]


def test_list_of_objects_keeps_order_and_maps_kinds():
    got = cli._objects([{"kind": "policy", "name": "p", "rules": []},
                        {"kind": "group", "name": "g", "members": []},
                        {"kind": "vm", "name": "v"}])
    assert [(c, n) for c, n, _ in got] == [("policies", "p"), ("groups", "g"), ("vms", "v")]
    assert got[2][2] == {}


@pytest.mark.parametrize("doc", [
    [{"kind": "host", "name": "a"}],
    [{"kind": "vm"}],
    [{"kind": "vm", "name": 3}],
    ["vm a"],
    [{"name": "a"}],
    {"something": "else"},
])
def test_bad_object_files_are_named(doc):
    with pytest.raises(cli.CliError, match=r"item \d+: expected \{kind: vm\|group\|policy"):
        cli._objects(doc)


def test_diff_equal_new_removed():
    assert cli._diff("vm a", {"x": 1}, {"x": 1}) == []
    assert cli._diff("vm a", None, {"x": 1}) == ["+ vm a (new)"]
    assert cli._diff("vm a", {"x": 1}, None) == ["- vm a (removed)"]


def test_diff_changed_shows_unified_lines():
    lines = cli._diff("policy p", {"a": 1, "b": 2}, {"a": 1, "b": 3})
    assert lines[0] == "~ policy p"
    assert "    -  \"b\": 2" in lines and "    +  \"b\": 3" in lines
    assert all(ln.startswith("    ") for ln in lines[1:])
    assert not any("---" in ln or "+++" in ln for ln in lines)


def test_canonical_fills_defaults_and_validates():
    doc = cli._canonical("vms", "a", {"ips": ["10.0.0.1"]})
    assert doc == {"ips": ["10.0.0.1"], "labels": {}, "protected": True}
    with pytest.raises(cli.CliError, match=r"^invalid: vms\.a\.ips\[0\]"):
        cli._canonical("vms", "a", {"ips": ["nope"]})


def test_load_yaml_file_and_errors(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("kind: vm\nname: a\n")
    assert cli._load(str(f)) == {"kind": "vm", "name": "a"}
    with pytest.raises(cli.CliError, match=r"missing\.yaml: No such file"):
        cli._load(str(tmp_path / "missing.yaml"))
    f.write_text("a: [1, 2\n")
    with pytest.raises(cli.CliError, match="not YAML/JSON"):
        cli._load(str(f))


def test_table_aligns_and_strips():
    out = cli._table([["web1", None, 3], ["a", "x", 12]], ["NAME", "MAC", "N"])
    assert out.splitlines() == ["NAME  MAC  N", "web1       3", "a     x    12"]


def test_log_line():
    rec = {"time": "2026-01-01T00:00:00Z", "verdict": "deny", "direction": "ingress",
           "vm": "web1", "protocol": "tcp", "src": "10.0.0.9", "sport": 40000,
           "dst": "10.0.0.11", "dport": 22, "policy": None, "rule": None, "count": 3}
    assert cli._log_line(rec) == ("2026-01-01T00:00:00Z deny   ingress vm=web1 tcp "
                                  "10.0.0.9:40000 -> 10.0.0.11:22 rule=-/- x3")


def test_apply_dry_run_whole_state(tmp_path, capsys):
    new = {**STATE, "vms": {**STATE["vms"], "db1": {"ips": ["10.0.0.31"]}}}
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(new))
    c = FakeClient(STATE)
    assert cli.cmd_apply(c, cli.build_parser().parse_args(["apply", "-f", str(f),
                                                          "--dry-run"])) == 0
    assert capsys.readouterr().out == "+ vm db1 (new)\n"
    assert c.writes == []


def test_apply_dry_run_no_changes(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(STATE))
    cli.cmd_apply(FakeClient(STATE), cli.build_parser().parse_args(
        ["apply", "-f", str(f), "--dry-run"]))
    assert capsys.readouterr().out == "no changes\n"


def test_apply_objects_puts_each(tmp_path, capsys):
    f = tmp_path / "o.yaml"
    f.write_text("- {kind: vm, name: db1, ips: [10.0.0.31]}\n"
                 "- {kind: group, name: web, match_labels: {tier: web}}\n")
    c = FakeClient(STATE)
    cli.cmd_apply(c, cli.build_parser().parse_args(["apply", "-f", str(f)]))
    assert [(m, p) for m, p, _ in c.writes] == [("PUT", "/v1/vms/db1"),
                                                ("PUT", "/v1/groups/web")]
    assert capsys.readouterr().out == "applied 2 object(s): revision 5\n"


def test_parser_choices_come_from_the_model():
    ap = cli.build_parser()
    a = ap.parse_args(["trace", "web1", "egress", "10.0.0.1", "icmpv6"])
    assert (a.direction, a.protocol, a.port) == ("egress", "icmpv6", None)
    with pytest.raises(SystemExit):
        ap.parse_args(["trace", "web1", "sideways", "10.0.0.1", "tcp", "80"])
    with pytest.raises(SystemExit):
        ap.parse_args(["trace", "web1", "ingress", "10.0.0.1", "any"])
    assert ap.parse_args(["logs", "--verdict", "reject"]).verdict == "reject"


def test_main_reports_unreachable_server(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert cli.main(["--url", f"http://127.0.0.1:{port}", "stats"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"vgwctl: cannot reach http://127.0.0.1:{port}: ")
