"""vgwctl apply's safe-change flow against a fake client: the impact preview, the
connectivity assertions, --impact, --yes, --force, and the terminal prompt."""

from __future__ import annotations

import copy
import io
import json

import pytest
import yaml

from tests.unit.test_cli import NO_IMPACT, STATE, FakeClient, canonical, run
from vgw_ryu import cli
from vgw_ryu.cli import output as cliout

SSH = {"from": "jump1", "to": "web1", "protocol": "tcp", "port": 22, "verdict": "allow"}
GUARDED = {**copy.deepcopy(STATE),
           "vms": {**STATE["vms"], "jump1": {"ips": ["10.0.0.91"]}},
           "expectations": [SSH]}
CUT = {"vm": "web1", "direction": "ingress", "protocol": "tcp", "src": "10.0.0.91",
       "dst": "10.0.0.11", "sport": "40000", "dport": "22", "state": "ESTABLISHED",
       "rule_now": "web-in/ssh", "verdict_after": "deny", "rule_after": "default"}
ALLOWED = {"vm": "web1", "direction": "ingress", "protocol": "tcp", "peer": "192.0.2.4",
           "port": 8080, "denied_by": "default", "allowed_by": "web-in/alt", "records": 3}
IMPACT = {**NO_IMPACT, "connections_judged": 3, "cut_total": 1, "cut": [CUT],
          "newly_allowed_total": 1, "newly_allowed": [ALLOWED]}
VIOLATION = {"expectation": 0, **SSH, "pair": ["jump1", "web1"], "got": "deny",
             "decided_by": "web1 ingress: default"}


def preview(impact=IMPACT, violations=(), changed=True, **extra):
    return {"preview": "impact", "revision": 4, "changed": changed, "impact": impact,
            "violations": list(violations), **extra}


@pytest.fixture
def state_file(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(GUARDED))
    return f


class Stdin(io.StringIO):
    """A stdin that says whether it is a terminal."""

    def __init__(self, tty: bool, text: str = ""):
        super().__init__(text)
        self.tty = tty

    def isatty(self):
        return self.tty


@pytest.fixture
def terminal(monkeypatch):
    """stdin is a terminal; ``answers`` are what the user types (none: input fails)."""
    asked = []

    def use(*answers):
        replies = list(answers)

        def fake_input(prompt=""):
            asked.append(prompt)
            if not replies:
                raise AssertionError(f"asked {prompt!r} unexpectedly")
            reply = replies.pop(0)
            if reply is EOFError:
                raise EOFError
            return reply
        monkeypatch.setattr(cli.sys, "stdin", Stdin(True))
        monkeypatch.setattr("builtins.input", fake_input)
        return asked
    return use


def _no_prompt(monkeypatch):
    def fail(prompt=""):
        raise AssertionError(f"asked {prompt!r}")
    monkeypatch.setattr("builtins.input", fail)


# --- what is printed --------------------------------------------------------------------
def test_non_terminal_applies_and_prints_the_summary_to_stderr(state_file, capsys,
                                                               monkeypatch):
    _no_prompt(monkeypatch)
    monkeypatch.setattr(cli.sys, "stdin", Stdin(False))
    c = FakeClient(preview_answer=preview())
    assert run(c, "apply", "-f", str(state_file)) == 0
    out, err = capsys.readouterr()
    assert out == "applied: revision 5\n"
    lines = err.splitlines()
    assert lines[0] == "impact: 1 live connection would be cut (of 3 judged)"
    assert lines[1].split() == ["VM", "DIR", "PROTO", "SRC", "DST", "DPORT", "RULE", "NOW",
                                "AFTER"]
    assert lines[2].split() == ["web1", "ingress", "tcp", "10.0.0.91", "10.0.0.11", "22",
                                "web-in/ssh", "deny", "(default)"]
    assert lines[3] == "impact: 1 recent denial would be allowed"
    assert lines[5].split() == ["web1", "ingress", "tcp", "192.0.2.4", "8080", "default",
                                "web-in/alt", "3"]
    assert lines[-1] == "assertions: all 1 hold"
    # The preview carried the file's state; the write is the same state, unforced.
    assert c.previews == [("PUT", "/v1/state?preview=impact", canonical(GUARDED))]
    assert c.writes == [("PUT", "/v1/state", canonical(GUARDED))]


def test_impact_only_writes_nothing(state_file, capsys):
    c = FakeClient(preview_answer=preview())
    assert run(c, "apply", "-f", str(state_file), "--impact") == 0
    out = capsys.readouterr().out
    assert "1 live connection would be cut" in out and "assertions: all 1 hold" in out
    assert len(c.previews) == 1 and c.writes == []


def test_impact_json_prints_the_preview(state_file, capsys):
    c = FakeClient(preview_answer=preview())
    assert run(c, "apply", "-f", str(state_file), "--impact", "--json") == 0
    assert json.loads(capsys.readouterr().out) == preview()
    assert c.writes == []


def test_impact_with_broken_assertions_exits_1(state_file, capsys):
    c = FakeClient(preview_answer=preview(violations=[VIOLATION]))
    assert run(c, "apply", "-f", str(state_file), "--impact") == 1
    out = capsys.readouterr().out
    assert "assertions: 1 of 1 would break:" in out
    assert ("  expectations[0] jump1 -> web1 tcp/22: expected allow, got deny "
            "(web1 ingress: default)") in out.splitlines()
    assert c.writes == []
    assert run(c, "apply", "-f", str(state_file), "--impact", "--force") == 0
    assert c.writes == []


def test_dry_run_does_not_preview_unless_asked(state_file, capsys):
    c = FakeClient(preview_answer=preview())
    assert run(c, "apply", "-f", str(state_file), "--dry-run") == 0
    assert c.previews == [] and c.writes == []
    assert run(c, "apply", "-f", str(state_file), "--dry-run", "--impact") == 0
    out = capsys.readouterr().out
    assert out.index("+ vm jump1 (new)") < out.index("impact: 1 live connection")
    assert len(c.previews) == 1 and c.writes == []


def test_impact_unavailable_is_said(state_file, capsys):
    c = FakeClient(preview_answer=preview(impact=None, impact_unavailable="no switch"))
    assert run(c, "apply", "-f", str(state_file), "--impact") == 0
    assert capsys.readouterr().out.splitlines()[0] == "impact: unknown: no switch"


def test_the_cut_table_is_bounded():
    many = {**IMPACT, "cut_total": 30, "cut": [CUT] * 25}
    lines = cliout.impact_lines(preview(impact=many))
    assert len([ln for ln in lines if ln.split()[:1] == ["web1"]]) == cliout.SHOWN_ROWS + 1
    assert "  ... and 10 more" in lines
    assert cliout.assertion_lines([], 0) == ["assertions: none declared"]


# --- assertions and --force -------------------------------------------------------------
def test_broken_assertions_stop_the_apply(state_file, capsys, monkeypatch):
    _no_prompt(monkeypatch)
    c = FakeClient(preview_answer=preview(violations=[VIOLATION]))
    assert run(c, "apply", "-f", str(state_file)) == 1
    out, err = capsys.readouterr()
    assert out == "" and "assertions: 1 of 1 would break:" in err
    assert "jump1 -> web1 tcp/22: expected allow, got deny" in err
    assert "not applied" in err and "--force" in err
    assert c.writes == []


def test_force_sends_force_true(state_file, capsys, monkeypatch):
    _no_prompt(monkeypatch)
    c = FakeClient(preview_answer=preview(violations=[VIOLATION]),
                   write_answer={"revision": 5, "violations": [VIOLATION]})
    assert run(c, "apply", "-f", str(state_file), "--force") == 0
    assert [(m, p) for m, p, _ in c.writes] == [("PUT", "/v1/state?force=true")]
    out, err = capsys.readouterr()
    assert out == "applied: revision 5\n"
    assert "applied with --force: 1 connectivity assertion(s) broken" in err


def test_objects_are_previewed_as_one_merged_state(tmp_path, capsys):
    f = tmp_path / "o.yaml"
    f.write_text("- {kind: vm, name: db1, ips: [10.0.0.31]}\n"
                 "- {kind: group, name: dbs, members: [db1]}\n")
    c = FakeClient(preview_answer=preview())
    assert run(c, "apply", "-f", str(f), "--force") == 0
    [(_, path, body)] = c.previews
    assert path == "/v1/state?preview=impact" and "revision" not in body
    assert body["vms"]["db1"] == {"ips": ["10.0.0.31"]} and "web1" in body["vms"]
    assert body["groups"]["dbs"] == {"members": ["db1"]} and "web" in body["groups"]
    assert [(m, p) for m, p, _ in c.writes] == [("PUT", "/v1/vms/db1?force=true"),
                                                ("PUT", "/v1/groups/dbs?force=true")]
    assert capsys.readouterr().out == "applied 2 object(s): revision 5\n"


def test_objects_changing_nothing_write_nothing(tmp_path, capsys):
    f = tmp_path / "o.yaml"
    f.write_text("kind: vm\nname: web1\nips: [10.0.0.11]\n")
    c = FakeClient(preview_answer=preview(changed=False))
    assert run(c, "apply", "-f", str(f)) == 0
    assert capsys.readouterr().out == "no changes: revision 4\n"
    assert c.writes == []


def test_delete_force(capsys):
    c = FakeClient(write_answer={"revision": 5, "deleted": "web-in",
                                 "violations": [VIOLATION]})
    assert run(c, "delete", "policy", "web-in", "--force") == 0
    assert c.writes == [("DELETE", "/v1/policies/web-in?force=true", None)]
    out, err = capsys.readouterr()
    assert out == "deleted policy web-in: revision 5\n" and "--force" in err


# --- the terminal prompt ----------------------------------------------------------------
def test_terminal_no_aborts(state_file, capsys, terminal):
    asked = terminal("n")
    c = FakeClient(preview_answer=preview())
    assert run(c, "apply", "-f", str(state_file)) == 1
    assert asked == ["Apply? [y/N] "]
    out, err = capsys.readouterr()
    assert "1 live connection would be cut" in out       # shown before the question
    assert "not applied" in err and c.writes == []


@pytest.mark.parametrize("reply", ["", "no", "nope", EOFError])
def test_terminal_anything_but_yes_aborts(state_file, terminal, reply):
    terminal(reply)
    c = FakeClient(preview_answer=preview())
    assert run(c, "apply", "-f", str(state_file)) == 1
    assert c.writes == []


@pytest.mark.parametrize("reply", ["y", "Y", "yes"])
def test_terminal_yes_applies(state_file, capsys, terminal, reply):
    terminal(reply)
    c = FakeClient(preview_answer=preview())
    assert run(c, "apply", "-f", str(state_file)) == 0
    assert c.writes == [("PUT", "/v1/state", canonical(GUARDED))]
    assert capsys.readouterr().out.endswith("applied: revision 5\n")


def test_yes_skips_the_question(state_file, capsys, terminal):
    asked = terminal()                 # input() would fail the test
    c = FakeClient(preview_answer=preview())
    assert run(c, "apply", "-f", str(state_file), "--yes") == 0
    assert asked == [] and len(c.writes) == 1
    assert "1 live connection would be cut" in capsys.readouterr().out


def test_broken_assertions_are_not_asked_about(state_file, terminal):
    asked = terminal()
    c = FakeClient(preview_answer=preview(violations=[VIOLATION]))
    assert run(c, "apply", "-f", str(state_file)) == 1
    assert asked == [] and c.writes == []


def test_file_from_stdin_is_not_asked_about(monkeypatch, capsys):
    _no_prompt(monkeypatch)
    monkeypatch.setattr(cli.sys, "stdin", Stdin(True, yaml.safe_dump(GUARDED)))
    c = FakeClient(preview_answer=preview())
    assert run(c, "apply", "-f", "-") == 0
    assert c.writes == [("PUT", "/v1/state", canonical(GUARDED))]
    assert "1 live connection would be cut" in capsys.readouterr().err


def test_apply_help_states_the_flow(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["apply", "--help"])
    out = capsys.readouterr().out
    for word in ("--impact", "--yes", "--force", "Apply? [y/N]", "preview=impact",
                 "assertions"):
        assert word in out, word
