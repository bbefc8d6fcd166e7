"""vgw-lab's commands without a lab: argument parsing, `list`, `state`, `exec`'s argv."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from vgw_lab import report, runner, runs, topology
from vgw_ryu.policy.model import parse_state

TOPOS = Path(__file__).resolve().parents[2] / "topologies"


def test_run_keeps_its_options():
    a = runner.parser().parse_args(["run", "three-tier", "--cli", "--keep", "--api",
                                    "http://h:1", "--of-port", "7", "--token", "t",
                                    "--timeout", "2"])
    assert (a.topology, a.cli, a.keep, a.api, a.of_port, a.token, a.timeout) == \
        ("three-tier", True, True, "http://h:1", 7, "t", 2.0)
    assert a.fn is runner.cmd_run


def test_token_defaults_to_the_environment(monkeypatch):
    monkeypatch.setenv("VGW_TOKEN", "from-env")
    assert runner.parser().parse_args(["run", "quickstart"]).token == "from-env"
    assert runner.parser().parse_args(["down"]).token == "from-env"


@pytest.mark.parametrize("argv,run,vm,command", [
    (["exec", "client", "ping", "-c1", "web"], None, "client", ["ping", "-c1", "web"]),
    (["exec", "--run", "v0042", "db", "ip", "-h", "addr"], "v0042", "db", ["ip", "-h", "addr"]),
    (["exec", "web", "sh", "-c", "echo --run x"], None, "web", ["sh", "-c", "echo --run x"]),
    (["exec", "web"], None, "web", []),
])
def test_exec_passes_the_command_through_untouched(argv, run, vm, command):
    a = runner.parser().parse_args(argv)
    assert (a.run, a.vm, a.command, a.fn) == (run, vm, command, runner.cmd_exec)


def test_down_and_state_parse():
    assert runner.parser().parse_args(["down", "v0001"]).run == "v0001"
    assert runner.parser().parse_args(["down"]).run is None
    a = runner.parser().parse_args(["state", "quickstart", "--json"])
    assert (a.topology, a.json, a.fn) == ("quickstart", True, runner.cmd_state)


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_state_prints_the_whole_document(capsys, fmt):
    assert runner.main(["state", "three-tier"] + (["--json"] if fmt == "json" else [])) == 0
    out = capsys.readouterr().out
    doc = json.loads(out) if fmt == "json" else yaml.safe_load(out)
    assert list(doc)[:2] == ["settings", "vms"]
    want = topology.load(TOPOS / "three_tier.yaml").state_document()
    assert doc == want
    parse_state(doc)  # what vgwctl apply -f - validates
    assert set(doc["vms"]) == {"web1", "web2", "app1", "db1", "client", "jump"}
    assert doc["vms"]["web1"]["mac"] and doc["policies"] and doc["groups"]


def test_state_of_an_unknown_topology_fails(capsys):
    assert runner.main(["state", "nope"]) == 2
    assert "no topology 'nope'" in capsys.readouterr().err


def test_list_shows_whole_descriptions_and_counts_checked_verdicts(capsys, monkeypatch):
    monkeypatch.setenv("VGW_LAB_RUNS", "/nonexistent/vgw-lab-runs")
    assert runner.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "quickstart         1 hypervisor, 3 VMs, 7 verdicts\n" in out
    assert "three-tier         2 hypervisors, 6 VMs, 14 verdicts\n" in out
    # migration checks its 3 verdicts before and after the move: 6, as its run reports.
    assert "migration          2 hypervisors, 3 VMs, 6 verdicts (3 before and after 1 move)" \
        in out
    words = " ".join(out.split())
    for f in TOPOS.glob("*.yaml"):
        assert " ".join(topology.load(f).description.split()) in words
    assert all(len(line) <= 88 for line in out.splitlines())


def test_topology_line_wraps_at_word_boundaries():
    t = topology.load(TOPOS / "three_tier.yaml")
    text = report.topology_line("three-tier", t, width=40)
    lines = text.splitlines()
    assert len(lines) > 3 and all(len(ln) <= 40 for ln in lines[1:])
    words = set(t.description.split())
    for ln in lines[1:]:
        assert ln.startswith(" " * 19)
        assert all(w in words for w in ln.split())  # no word cut in two


def test_matrix_counts():
    t = topology.load(TOPOS / "quickstart.yaml")
    obs = [report.Observation(e, e.expect, 3) for e in t.verdicts]
    obs[1] = report.Observation(t.verdicts[1], "deny", 1500)
    text = report.matrix(obs)
    assert text.endswith("6 of 7 verdicts as expected, 1 MISMATCH")
    assert text.count("MISMATCH") == 2


STATE = {"run": "v0001", "hosts": {"client": {"pid": 11, "ip": "10.0.0.1"},
                                   "web": {"pid": 12, "ip": "10.0.0.2"},
                                   "v6": {"pid": 13, "ip": "fd00::3"}}}


def test_exec_argv_enters_the_vm_and_names_stand_for_addresses(monkeypatch):
    monkeypatch.setattr(runs, "alive", lambda pid, marker: (pid, marker) == (11, "mininet:client"))
    monkeypatch.setattr(runs.shutil, "which", lambda name: "/usr/bin/mnexec")
    assert runs.exec_argv(STATE, "client", ["ping", "-c1", "web", "v6", "web.x"]) == \
        ["mnexec", "-a", "11", "ping", "-c1", "10.0.0.2", "fd00::3", "web.x"]
    monkeypatch.setenv("SHELL", "/bin/zsh")
    assert runs.exec_argv(STATE, "client", []) == ["mnexec", "-a", "11", "/bin/zsh"]
    monkeypatch.setattr(runs.shutil, "which", lambda name: None)
    assert runs.exec_argv(STATE, "client", ["true"])[:4] == ["nsenter", "--target", "11",
                                                              "--net"]
    with pytest.raises(runs.RunError, match=r"no VM 'ghost'.*client, v6, web"):
        runs.exec_argv(STATE, "ghost", [])
    with pytest.raises(runs.RunError, match="'web' of lab v0001 is not running"):
        runs.exec_argv(STATE, "web", [])


def test_find_run_by_name_or_the_only_one(tmp_path, monkeypatch):
    monkeypatch.setenv("VGW_LAB_RUNS", str(tmp_path))
    with pytest.raises(runs.RunError, match="no lab is running"):
        runs.find_run(None)
    (tmp_path / "v0001").mkdir()
    runs.write_state(tmp_path / "v0001", STATE)
    (tmp_path / "v0002").mkdir()  # a kept run directory (logs) without state: not a run
    assert runs.find_run(None) == (tmp_path / "v0001", STATE)
    (tmp_path / "v0003").mkdir()
    runs.write_state(tmp_path / "v0003", {**STATE, "run": "v0003"})
    with pytest.raises(runs.RunError, match=r"2 labs running .*v0001, v0003.*--run"):
        runs.find_run(None)
    assert runs.find_run("v0003")[1]["run"] == "v0003"
    with pytest.raises(runs.RunError, match="no running lab 'v0002'"):
        runs.find_run("v0002")


def test_alive_checks_the_process_is_still_ours():
    import os
    assert runs.alive(os.getpid(), "python") or runs.alive(os.getpid(), "pytest")
    assert not runs.alive(os.getpid(), "mininet:client")
    assert not runs.alive(os.getpid(), "")
    assert not runs.alive(None, "python")
