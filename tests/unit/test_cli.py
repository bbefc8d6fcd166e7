"""vgwctl's commands against a fake client: apply, get, delete, output, exit codes.

The parsing of apply files and --since values is in tests/unit/test_cli_input.py.
"""

from __future__ import annotations

import json
import socket

import pytest
import yaml

from vgw_ryu import cli
from vgw_ryu.api.client import ApiError
from vgw_ryu.cli import output as cliout
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
SWITCHES = {"revision": 4, "switches": [
    {"dpid": "00000000000000ab", "bridge": "br-int", "of_version": 5, "applied_revision": 4,
     "flows": 40, "vm_ports": [{"ofport": 5, "name": "tap-web1", "kind": "vm",
                                "vm": "web1"}],
     "uplinks": [{"ofport": 1, "name": "eth0", "kind": "uplink", "vm": None}],
     "unknown_ports": [{"ofport": 7, "name": "tap9", "kind": "unknown", "vm": None,
                        "vm_id": "web-1"}]},
    {"dpid": "0000000000000100", "of_version": 5, "applied_revision": None, "flows": 0,
     "vm_ports": [], "uplinks": [], "unknown_ports": []}]}


def canonical(doc):
    return model.state_doc(model.parse_state(doc))


NO_IMPACT = {"connections_judged": 0, "cut_total": 0, "cut": [], "cut_truncated": False,
             "newly_allowed_total": 0, "newly_allowed": [], "newly_allowed_truncated": False}


class FakeClient:
    """Answers GETs from ``answers`` (path -> body); records writes; a write answers
    ``write_answer`` (``{"revision": 5}`` unless set). A ``?preview=impact`` PUT is
    recorded in ``previews`` and answers ``preview_answer`` (by default: nothing cut,
    no violations, ``changed`` as ``write_answer`` says)."""

    def __init__(self, state=STATE, write_answer=None, preview_answer=None):
        self.answers = {"/v1/state": {**canonical(state), "revision": 4},
                        "/v1/switches": SWITCHES,
                        "/v1/vms/web1": {"name": "web1", "ips": ["10.0.0.11"], "revision": 4}}
        self.write_answer = write_answer or {"revision": 5}
        self.preview_answer = preview_answer or {
            "preview": "impact", "revision": 4,
            "changed": self.write_answer.get("changed", True), "impact": NO_IMPACT,
            "violations": []}
        self.writes = []
        self.previews = []
        self.gets = []

    def call(self, method, path, body=None):
        if method == "GET":
            self.gets.append(path)
            if path not in self.answers:
                raise ApiError(404, "not_found", f"no such path: {path}")
            return self.answers[path]
        if path.endswith("?preview=impact"):
            self.previews.append((method, path, body))
            return self.preview_answer
        self.writes.append((method, path, body))
        return self.write_answer


def run(c, *argv):
    a = cli.build_parser().parse_args(list(argv))
    return a.fn(c, a)


# --- apply ----------------------------------------------------------------------------
def test_apply_dry_run_whole_state(tmp_path, capsys):
    new = {**STATE, "vms": {**STATE["vms"], "db1": {"ips": ["10.0.0.31"]}}}
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(new))
    c = FakeClient()
    assert run(c, "apply", "-f", str(f), "--dry-run") == 0
    assert capsys.readouterr().out == "+ vm db1 (new)\n"
    assert c.writes == []


def test_apply_dry_run_no_changes(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(STATE))
    run(FakeClient(), "apply", "-f", str(f), "--dry-run")
    assert capsys.readouterr().out == "no changes\n"


def test_apply_state_that_changes_nothing_says_so(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(STATE))
    c = FakeClient(write_answer={"revision": 4, "changed": False})
    assert run(c, "apply", "-f", str(f)) == 0
    assert capsys.readouterr().out == "no changes: revision 4\n"
    # The preview said nothing would change: nothing is written.
    assert [(m, p) for m, p, _ in c.previews] == [("PUT", "/v1/state?preview=impact")]
    assert c.writes == []


def test_apply_state_sends_the_canonical_state_without_revision(tmp_path, capsys):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump({**STATE, "revision": 2}))
    c = FakeClient()
    run(c, "apply", "-f", str(f))
    assert c.writes == [("PUT", "/v1/state", canonical(STATE))]
    assert capsys.readouterr().out == "applied: revision 5\n"


def test_apply_objects_puts_each(tmp_path, capsys):
    f = tmp_path / "o.yaml"
    f.write_text("- {kind: vm, name: db1, ips: [10.0.0.31]}\n"
                 "- {kind: group, name: web, match_labels: {tier: web}}\n")
    c = FakeClient()
    run(c, "apply", "-f", str(f))
    assert [(m, p) for m, p, _ in c.writes] == [("PUT", "/v1/vms/db1"),
                                                ("PUT", "/v1/groups/web")]
    assert capsys.readouterr().out == "applied 2 object(s): revision 5\n"


def test_apply_objects_unchanged(tmp_path, capsys):
    f = tmp_path / "o.yaml"
    f.write_text("kind: vm\nname: web1\nips: [10.0.0.11]\n")
    c = FakeClient(write_answer={"revision": 4, "changed": False, "created": False,
                                 "name": "web1"})
    run(c, "apply", "-f", str(f))
    assert capsys.readouterr().out == "no changes: revision 4\n"


def test_apply_multi_document_state_and_object_is_one_put(tmp_path, capsys):
    f = tmp_path / "m.yaml"
    f.write_text(yaml.safe_dump(STATE) + "---\nkind: vm\nname: db1\nips: [10.0.0.31]\n")
    c = FakeClient()
    run(c, "apply", "-f", str(f), "--dry-run")
    assert capsys.readouterr().out == "+ vm db1 (new)\n"
    run(c, "apply", "-f", str(f))
    [(method, path, body)] = c.writes
    assert (method, path) == ("PUT", "/v1/state")
    assert set(body["vms"]) == {"web1", "db1"}


def test_apply_typo_at_top_level_names_the_field(tmp_path, capsys):
    f = tmp_path / "t.yaml"
    f.write_text("polices: {}\n")
    assert cli.main(["apply", "-f", str(f)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("vgwctl: invalid: polices: unknown field (allowed: settings, vms")


# --- get, delete -------------------------------------------------------------------------
@pytest.mark.parametrize(("word", "coll"), [("vm", "vms"), ("vms", "vms"), ("VMs", "vms"),
                                            ("group", "groups"), ("groups", "groups"),
                                            ("policy", "policies"),
                                            ("policies", "policies"),
                                            ("switch", "switches"), ("switches", "switches"),
                                            ("state", "state")])
def test_get_takes_singular_and_plural(word, coll):
    assert cli.build_parser().parse_args(["get", word]).what == coll


@pytest.mark.parametrize(("word", "coll"), [("vm", "vms"), ("vms", "vms"),
                                            ("group", "groups"), ("groups", "groups"),
                                            ("policy", "policies"),
                                            ("policies", "policies")])
def test_delete_takes_singular_and_plural(word, coll, capsys):
    c = FakeClient()
    assert run(c, "delete", word, "x") == 0
    assert c.writes == [("DELETE", f"/v1/{coll}/x", None)]
    assert capsys.readouterr().out == f"deleted {cli.SINGULAR[coll]} x: revision 5\n"


@pytest.mark.parametrize("argv", [["delete", "switch", "x"], ["delete", "state", "x"],
                                  ["get", "hosts"]])
def test_unknown_kinds_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.build_parser().parse_args(argv)
    assert e.value.code == 2
    assert "must be one of" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--json", "get", "vm", "web1"],
                                  ["get", "vm", "web1", "--json"],
                                  ["get", "--json", "vm", "web1"]])
def test_json_before_or_after_the_command(argv, capsys):
    assert run(FakeClient(), *argv) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "web1"


def test_url_and_token_after_the_command_win_and_default_stays():
    ap = cli.build_parser()
    a = ap.parse_args(["--url", "http://a:1", "stats"])
    assert (a.url, a.json) == ("http://a:1", False)
    a = ap.parse_args(["stats", "--url", "http://b:2", "--token", "t"])
    assert (a.url, a.token) == ("http://b:2", "t")
    assert ap.parse_args(["--json", "stats"]).json is True


def test_get_state_prints_yaml_or_json(capsys):
    run(FakeClient(), "get", "state")
    doc = yaml.safe_load(capsys.readouterr().out)
    assert doc["revision"] == 4 and set(doc["vms"]) == {"web1"}
    run(FakeClient(), "get", "state", "--json")
    assert json.loads(capsys.readouterr().out)["policies"]["web-in"]["rules"][0]["id"] == "http"


def test_get_state_takes_no_name(capsys):
    assert cli.main(["get", "state", "x", "--url", "http://127.0.0.1:9"]) == 1
    assert "get state takes no name" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["br-int", "00000000000000ab", "ab", "0xAB"])
def test_get_switch_by_bridge_or_dpid(name, capsys):
    run(FakeClient(), "get", "switch", name, "--json")
    assert json.loads(capsys.readouterr().out)["dpid"] == "00000000000000ab"


def test_get_unknown_switch_lists_the_known_ones():
    with pytest.raises(cli.CliError, match=r"no switch 'br-x' .*known: br-int, "
                                           r"0000000000000100"):
        run(FakeClient(), "get", "switches", "br-x")


def test_switch_table_shows_bridges_and_unknown_ports_vm_ids(capsys):
    run(FakeClient(), "get", "switches")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["DPID", "BRIDGE", "REVISION", "FLOWS", "VMS", "UPLINKS",
                                "UNKNOWN"]
    assert lines[1].split() == ["00000000000000ab", "br-int", "4", "40", "web1@5", "1",
                                "tap9@7(vm-id=web-1)"]
    assert lines[2].split() == ["0000000000000100", "-", "0", "-", "0", "-"]


def test_table_aligns_and_strips():
    out = cliout.table([["web1", None, 3], ["a", "x", 12]], ["NAME", "MAC", "N"])
    assert out.splitlines() == ["NAME  MAC  N", "web1       3", "a     x    12"]


def test_log_line():
    rec = {"time": "2026-01-01T00:00:00Z", "verdict": "deny", "direction": "ingress",
           "vm": "web1", "protocol": "tcp", "src": "10.0.0.9", "sport": 40000,
           "dst": "10.0.0.11", "dport": 22, "policy": None, "rule": None, "count": 3}
    assert cliout.log_line(rec) == ("2026-01-01T00:00:00Z deny   ingress vm=web1 tcp "
                                  "10.0.0.9:40000 -> 10.0.0.11:22 rule=-/- x3")


def test_logs_since_duration_becomes_a_unix_time(monkeypatch):
    c = FakeClient()
    c.answers["/v1/logs?since=1000.000000"] = {"logs": [], "revision": 4}
    monkeypatch.setattr(cli.time, "time", lambda: 1300.0)
    assert run(c, "logs", "--since", "5m") == 0
    assert c.gets == ["/v1/logs?since=1000.000000"]


def test_parser_choices_come_from_the_model():
    ap = cli.build_parser()
    a = ap.parse_args(["trace", "web1", "egress", "10.0.0.1", "icmpv6"])
    assert (a.direction, a.protocol, a.port) == ("egress", "icmpv6", None)
    with pytest.raises(SystemExit):
        ap.parse_args(["trace", "web1", "sideways", "10.0.0.1", "tcp", "80"])
    with pytest.raises(SystemExit):
        ap.parse_args(["trace", "web1", "ingress", "10.0.0.1", "any"])
    assert ap.parse_args(["logs", "--verdict", "reject"]).verdict == "reject"


@pytest.mark.parametrize("cmd", ["apply", "get", "delete", "stats", "logs", "trace"])
def test_every_command_help_names_the_environment(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        cli.build_parser().parse_args([cmd, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "VGW_URL" in out and "VGW_TOKEN" in out and "--json" in out


def test_help_states_the_formats(capsys):
    ap = cli.build_parser()
    for cmd, words in (("logs", ["30s", "5m", "2h", "1d", "ISO 8601", "UNIX time"]),
                       ("apply", ["---", "kind: vm|group|policy", "whole state"]),
                       ("get", ["bridge name", "datapath id", "policy|policies"])):
        with pytest.raises(SystemExit):
            ap.parse_args([cmd, "--help"])
        out = capsys.readouterr().out
        assert all(w in out for w in words), (cmd, out)


# --- main: errors and closed pipes ---------------------------------------------------------
def test_main_reports_unreachable_server(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert cli.main(["--url", f"http://127.0.0.1:{port}", "stats"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"vgwctl: cannot reach http://127.0.0.1:{port}: ")


class ClosedPipe:
    """A stdout whose reader went away; fileno() is a scratch file to be redirected."""

    def __init__(self, f):
        self.f = f

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        pass

    def fileno(self):
        return self.f.fileno()


def test_main_exits_quietly_when_stdout_closes(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cli, "Client", lambda url, token: FakeClient())
    with open(tmp_path / "out", "w") as f:
        monkeypatch.setattr(cli.sys, "stdout", ClosedPipe(f))
        assert cli.main(["get", "switches"]) == cli.EPIPE_EXIT
    assert capsys.readouterr().err == ""
