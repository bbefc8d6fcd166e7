"""vgwctl stats, conns and metrics against a fake client: formatting, sorting, filters."""

from __future__ import annotations

import json

import pytest

from vgw_ryu import cli
from vgw_ryu.api.client import ApiError
from vgw_ryu.cli import output as cliout

STATS = {
    "policies": {
        "web-in": {"rules": {"http": {"sessions": 5, "packets": 512, "bytes": 40960},
                             "ssh": {"sessions": 9, "packets": 90, "bytes": 7000}}},
        "db-in": {"rules": {"pg": {"sessions": 5, "packets": 50, "bytes": 4000}}},
        "mon": {"rules": {"icmp": {"sessions": 0, "packets": 0, "bytes": 0}}}},
    "defaults": {"ingress": {"sessions": 7, "packets": 7, "bytes": 420},
                 "egress": {"sessions": 0, "packets": 0, "bytes": 0}},
    "punts_suppressed": {"log": 3, "reject": 0, "unknown": 1},
    "note": "sessions counts connection decisions; packets counts every judged packet",
    "packet_ins": 12, "switches": 1, "revision": 4}
POLICIES = {"revision": 4, "policies": {
    "web-in": {"applied_to": ["group:web"], "rules": [], "applies_to_vms": ["web1"]},
    "db-in": {"applied_to": ["vm:db1"], "rules": [], "applies_to_vms": ["db1"]},
    "mon": {"applied_to": ["group:all"], "rules": [], "applies_to_vms": ["db1", "web1"]}}}
CONNS = {"vm": "web1", "zone": 3, "revision": 4, "total": 5, "truncated": True,
         "connections": [
             {"protocol": "tcp", "direction": "ingress", "src": "192.0.2.7",
              "dst": "10.0.0.11", "sport": 40000, "dport": 22, "state": "ESTABLISHED",
              "blocked": False, "rule": "web-in/ssh", "timeout": 431999},
             {"protocol": "icmp", "direction": "egress", "src": "10.0.0.11",
              "dst": "10.0.0.91", "type": 8, "code": 0, "id": 77, "state": "",
              "blocked": True, "rule": "default", "timeout": 29},
             {"protocol": "udp", "direction": "egress", "src": "10.0.0.11",
              "dst": "10.0.0.53", "sport": 5353, "dport": 53, "state": None,
              "blocked": False, "rule": None, "timeout": None}]}
METRICS = """\
# HELP vgw_state_revision revision of the desired state
# TYPE vgw_state_revision gauge
vgw_state_revision 4.0
# HELP vgw_rule_sessions_total per rule: connection decisions
# TYPE vgw_rule_sessions_total counter
vgw_rule_sessions_total{policy="web-in",rule="http"} 5.0
# HELP vgw_sync_seconds time to bring one switch to the desired flows
# TYPE vgw_sync_seconds histogram
vgw_sync_seconds_bucket{le="0.01"} 1.0
vgw_sync_seconds_bucket{le="+Inf"} 2.0
vgw_sync_seconds_count 2.0
vgw_sync_seconds_sum 0.5
"""


class FakeClient:
    """GET answers by path; ``text`` answers /metrics."""

    def __init__(self, answers=None, metrics=METRICS):
        self.answers = {"/v1/stats": STATS, "/v1/policies": POLICIES,
                        "/v1/vms/web1": {"name": "web1", "protected": True, "revision": 4},
                        "/v1/vms/open1": {"name": "open1", "protected": False,
                                          "revision": 4},
                        **(answers or {})}
        self.metrics = metrics
        self.gets = []

    def call(self, method, path, body=None):
        assert method == "GET"
        self.gets.append(path)
        if path not in self.answers:
            raise ApiError(404, "not_found", f"no such path: {path}")
        return self.answers[path]

    def text(self, path):
        self.gets.append(path)
        return self.metrics


def run(c, *argv):
    a = cli.build_parser().parse_args(list(argv))
    return a.fn(c, a)


def _rows(out: str) -> list[list[str]]:
    """The table's rows (split on whitespace), up to the first blank line."""
    return [line.split() for line in out.split("\n\n")[0].splitlines()]


# --- stats -------------------------------------------------------------------------------------
def test_stats_sorted_by_sessions_then_name_with_packets_beside(capsys):
    assert run(FakeClient(), "stats") == 0
    out = capsys.readouterr().out
    assert _rows(out) == [
        ["POLICY", "RULE", "SESSIONS", "PACKETS", "BYTES"],
        ["web-in", "ssh", "9", "90", "7000"],
        ["(default)", "ingress", "7", "7", "420"],
        ["db-in", "pg", "5", "50", "4000"],
        ["web-in", "http", "5", "512", "40960"],
        ["(default)", "egress", "0", "0", "0"],
        ["mon", "icmp", "0", "0", "0"]]
    assert f"note: {STATS['note']}" in out
    assert "punts suppressed by rate limits: log 3, reject 0, unknown 1; packet-ins 12" in out


def test_stats_vm_keeps_the_rules_that_apply_to_it(capsys):
    c = FakeClient()
    assert run(c, "stats", "--vm", "web1") == 0
    out = capsys.readouterr().out
    assert [r[:2] for r in _rows(out)[1:]] == [["web-in", "ssh"], ["(default)", "ingress"],
                                               ["web-in", "http"], ["(default)", "egress"],
                                               ["mon", "icmp"]]
    assert "rules applying to vm web1" in out
    assert c.gets == ["/v1/stats", "/v1/vms/web1", "/v1/policies"]


def test_stats_vm_unprotected_has_no_defaults(capsys):
    answers = {"/v1/policies": {"revision": 4, "policies": {
        "mon": {"applied_to": ["vm:open1"], "rules": [], "applies_to_vms": ["open1"]}}}}
    assert run(FakeClient(answers), "stats", "--vm", "open1", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["policies"]) == {"mon"} and doc["defaults"] == {}
    assert doc["revision"] == 4 and doc["note"] == STATS["note"]


def test_stats_vm_unknown_is_the_apis_404():
    with pytest.raises(ApiError) as e:
        run(FakeClient(), "stats", "--vm", "nope")
    assert e.value.status == 404


def test_stats_json_is_the_document(capsys):
    assert run(FakeClient(), "stats", "--json") == 0
    assert json.loads(capsys.readouterr().out) == STATS


def test_stats_rows_from_an_older_server_without_packets():
    rows = cliout.stats_rows({"policies": {"p": {"rules": {"r": {"sessions": 2,
                                                                  "bytes": 9}}}}})
    assert rows == [["p", "r", 2, "-", 9]]


# --- conns -------------------------------------------------------------------------------------
def test_conns_table_and_summary(capsys):
    c = FakeClient({"/v1/vms/web1/connections": CONNS})
    assert run(c, "conns", "web1") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split() for line in lines[:4]] == [
        ["PROTO", "DIR", "SRC", "SPORT", "DST", "DPORT", "STATE", "BLOCKED", "RULE"],
        ["tcp", "ingress", "192.0.2.7", "40000", "10.0.0.11", "22", "ESTABLISHED", "no",
         "web-in/ssh"],
        ["icmp", "egress", "10.0.0.11", "id=77", "10.0.0.91", "8/0", "-", "yes", "default"],
        ["udp", "egress", "10.0.0.11", "5353", "10.0.0.53", "53", "-", "no", "-"]]
    assert lines[4] == "3 of 5 connections shown (raise --limit for more)"
    assert c.gets == ["/v1/vms/web1/connections"]


def test_conns_filters_become_the_query(capsys):
    path = "/v1/vms/web1/connections?peer=192.0.2.7&port=22&rule=web-in%2Fssh&limit=5"
    done = {**CONNS, "connections": CONNS["connections"][:1], "total": 1,
            "truncated": False}
    c = FakeClient({path: done})
    assert run(c, "conns", "web1", "--peer", "192.0.2.7", "--port", "22", "--rule",
               "web-in/ssh", "--limit", "5") == 0
    assert c.gets == [path]
    assert capsys.readouterr().out.splitlines()[-1] == "1 connection"


def test_conns_json(capsys):
    c = FakeClient({"/v1/vms/web1/connections": CONNS})
    assert run(c, "conns", "web1", "--json") == 0
    assert json.loads(capsys.readouterr().out) == CONNS


def test_conns_errors_reach_main(monkeypatch, capsys):
    class Refusing(FakeClient):
        def call(self, method, path, body=None):
            raise ApiError(409, "unprotected", "vm 'open1' is unprotected",
                           "vms.open1.protected")
    monkeypatch.setattr(cli, "Client", lambda url, token: Refusing())
    assert cli.main(["conns", "open1"]) == 1
    assert capsys.readouterr().err == ("vgwctl: 409 unprotected: vm 'open1' is "
                                       "unprotected (vms.open1.protected)\n")


def test_conns_port_must_be_a_number(capsys):
    with pytest.raises(SystemExit) as e:
        cli.build_parser().parse_args(["conns", "web1", "--port", "http"])
    assert e.value.code == 2


# --- metrics -----------------------------------------------------------------------------------
def test_metrics_prints_the_text_as_served(capsys):
    c = FakeClient()
    assert run(c, "metrics") == 0
    assert capsys.readouterr().out == METRICS
    assert c.gets == ["/metrics"]


def test_metrics_prefix_keeps_those_families(capsys):
    assert run(FakeClient(), "metrics", "vgw_sync") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "# HELP vgw_sync_seconds time to bring one switch to " \
                                  "the desired flows"
    assert "vgw_sync_seconds_count 2.0" in out and "vgw_state_revision" not in out
    assert len(out.splitlines()) == 6


def test_metrics_json(capsys):
    assert run(FakeClient(), "metrics", "--json") == 0
    fams = {f["name"]: f for f in json.loads(capsys.readouterr().out)}
    assert fams["vgw_state_revision"]["type"] == "gauge"
    assert fams["vgw_state_revision"]["samples"] == [
        {"name": "vgw_state_revision", "labels": {}, "value": 4.0}]
    assert fams["vgw_rule_sessions"]["samples"][0]["labels"] == {"policy": "web-in",
                                                                 "rule": "http"}
    inf = [s for s in fams["vgw_sync_seconds"]["samples"] if s["labels"].get("le") == "+Inf"]
    assert inf == [{"name": "vgw_sync_seconds_bucket", "labels": {"le": "+Inf"},
                    "value": 2.0}]


def test_metrics_json_refuses_what_is_not_the_text_format():
    with pytest.raises(cli.CliError, match="not in the text format"):
        cliout.metrics_json("this is {not metrics\n")


@pytest.mark.parametrize("cmd", ["conns", "metrics", "stats"])
def test_new_commands_help_names_the_environment(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        cli.build_parser().parse_args([cmd, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "VGW_URL" in out and "--json" in out
    if cmd == "stats":
        assert "SESSIONS" in out and "PACKETS" in out and "--vm" in out
