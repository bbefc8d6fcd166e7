"""vgwctl: manage a vgw_ryu controller over its REST API.

    vgwctl apply -f policy.yaml [--dry-run] [--impact] [--yes] [--force]
    vgwctl get state | vm[s] | group[s] | polic(y|ies) | switch[es] [NAME]
    vgwctl delete vm[s]|group[s]|polic(y|ies) NAME [--force]
    vgwctl stats [--vm VM] | conns VM [--peer IP] [--port N] [--rule P/ID] | metrics
    vgwctl logs [--since 5m] [--follow] | trace VM DIRECTION PEER_IP PROTOCOL [PORT]

URL and token: --url/--token, or VGW_URL/VGW_TOKEN (default http://127.0.0.1:8080).
The file formats (apply), durations (logs --since) and outputs are in each command's
--help (vgwctl COMMAND --help).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.parse
from typing import Any

from vgw_ryu.api.client import DEFAULT_URL, ApiError, Client
from vgw_ryu.cli import apply as cliapply
from vgw_ryu.cli import files as cliinput
from vgw_ryu.cli import output as cliout
from vgw_ryu.cli.apply import cmd_apply
from vgw_ryu.cli.files import APPLY_HELP, COLLECTIONS, SINCE_HELP, CliError, since_value
from vgw_ryu.cli.output import find_switch, log_line, switch_rows
from vgw_ryu.cli.output import print_doc as _print
from vgw_ryu.cli.output import table as _table
from vgw_ryu.policy import model
from vgw_ryu.policy.analysis import analyze

__all__ = ["CliError", "build_parser", "main"]

GET_WHAT = {**COLLECTIONS, "switch": "switches", "switches": "switches", "state": "state"}
SINGULAR = {"vms": "vm", "groups": "group", "policies": "policy"}
ENV_HELP = f"""\
environment: VGW_URL (default {DEFAULT_URL}) and VGW_TOKEN (the bearer token, if the
controller has one) stand in for --url and --token; --url, --token and --json go before
or after the command. Exit status: 0 done, 1 error (on stderr: the status, code, message
and field of the API's answer), 2 bad usage, 141 the output pipe closed (| head)."""
EPIPE_EXIT = 141   # what a shell reports for a command killed by SIGPIPE


def _choice(table: dict[str, str], what: str):
    """An argparse type: a word of ``table`` (singular or plural), mapped to its value."""
    def convert(text: str) -> str:
        try:
            return table[text.lower()]
        except KeyError:
            raise argparse.ArgumentTypeError(
                f"{what} must be one of {', '.join(table)}, not {text!r}") from None
    return convert


# --- get ---------------------------------------------------------------------------------
def cmd_get(c: Client, a: argparse.Namespace) -> int:
    what = a.what
    if what == "state":
        if a.name:
            raise CliError("get state takes no name")
        _print(c.call("GET", "/v1/state"), a.json)
        return 0
    if what == "switches":
        data = c.call("GET", "/v1/switches")
        if a.name:
            _print(find_switch(data["switches"], a.name), a.json)
        elif a.json:
            _print(data, True)
        else:
            print(switch_rows(data["switches"]))
        return 0
    if a.name:
        _print(c.call("GET", f"/v1/{what}/{urllib.parse.quote(a.name, safe='')}"), a.json)
        return 0
    data = c.call("GET", f"/v1/{what}")
    if a.json:
        _print(data, True)
    elif what == "vms":
        # protection: the result of the VM's own word, its groups' and the default.
        rows = [[n, v.get("mac"), ",".join(v["ips"]),
                 "yes" if v.get("protection", {}).get("protected", v.get("zone") is not None)
                 else "no",
                 v.get("zone"), ",".join(f"{s['switch']}:{s['ofport']}" for s in v["seen"])
                 or "-"] for n, v in data["vms"].items()]
        print(_table(rows, ["NAME", "MAC", "IPS", "PROTECTED", "ZONE", "SEEN"]))
    elif what == "groups":
        rows = [[n, ",".join(g["resolved"]["vms"]), len(g["resolved"]["addresses"])]
                for n, g in data["groups"].items()]
        print(_table(rows, ["NAME", "MEMBERS", "ADDRESSES"]))
    else:
        rows = [[n, ",".join(p["applied_to"]), len(p["rules"]), ",".join(p["applies_to_vms"])]
                for n, p in data["policies"].items()]
        print(_table(rows, ["NAME", "APPLIED_TO", "RULES", "VMS"]))
    return 0


def cmd_delete(c: Client, a: argparse.Namespace) -> int:
    r = c.call("DELETE", f"/v1/{a.kind}/{urllib.parse.quote(a.name, safe='')}"
               + ("?force=true" if a.force else ""))
    print(f"deleted {SINGULAR[a.kind]} {a.name}: revision {r['revision']}")
    cliapply.report_forced(r)
    return 0


# --- stats, conns, metrics, logs, trace -------------------------------------------------
def cmd_stats(c: Client, a: argparse.Namespace) -> int:
    data = c.call("GET", "/v1/stats")
    if a.vm is not None:
        # A VM's rules are those of the policies applied to it; the defaults apply to
        # every protected VM. The counters stay totals over all the VMs a rule covers.
        vm = c.call("GET", f"/v1/vms/{urllib.parse.quote(a.vm, safe='')}")
        pols = c.call("GET", "/v1/policies")["policies"]
        data = cliout.filter_stats(
            data, {p for p, v in pols.items() if a.vm in v.get("applies_to_vms", [])},
            bool(vm.get("protection", {}).get("protected", vm.get("protected", True))))
    if a.json:
        _print(data, True)
        return 0
    print(_table(cliout.stats_rows(data), cliout.STATS_HEADER))
    if a.vm is not None:
        print(f"\nrules applying to vm {a.vm}; counters are totals over every VM a rule "
              "applies to")
    if data.get("note"):
        print(f"\nnote: {data['note']}")
    sup = data.get("punts_suppressed")
    if sup is not None:
        print("\npunts suppressed by rate limits: "
              + ", ".join(f"{k} {v}" for k, v in sup.items())
              + f"; packet-ins {data.get('packet_ins', '-')}")
    return 0


def cmd_conns(c: Client, a: argparse.Namespace) -> int:
    q = {k: v for k, v in (("peer", a.peer), ("port", a.port), ("rule", a.rule),
                           ("limit", a.limit)) if v is not None}
    path = f"/v1/vms/{urllib.parse.quote(a.vm, safe='')}/connections"
    data = c.call("GET", path + ("?" + urllib.parse.urlencode(q) if q else ""))
    if a.json:
        _print(data, True)
        return 0
    print(_table(cliout.conn_rows(data["connections"]), cliout.CONN_HEADER))
    print(cliout.conn_summary(data))
    return 0


def cmd_metrics(c: Client, a: argparse.Namespace) -> int:
    text = cliout.metrics_filter(c.text("/metrics"), a.prefix)
    if a.json:
        _print(cliout.metrics_json(text), True)
    else:
        print(text, end="" if text.endswith("\n") or not text else "\n")
    return 0


def cmd_logs(c: Client, a: argparse.Namespace) -> int:
    since = since_value(a.since, time.time()) if a.since is not None else None
    q = {k: v for k, v in (("vm", a.vm), ("verdict", a.verdict), ("since", since),
                           ("limit", a.limit)) if v is not None}
    last_ts = None
    while True:
        if last_ts is not None:
            q["since"] = f"{last_ts + 1e-6:.6f}"
        recs = c.call("GET", "/v1/logs?" + urllib.parse.urlencode(q))["logs"]
        for r in recs:
            print(json.dumps(r) if a.json else log_line(r), flush=True)
            last_ts = r["ts"]
        if not a.follow:
            return 0
        if last_ts is None:
            last_ts = time.time()
        time.sleep(1)   # polling the server: there is nothing to wait on


def cmd_trace(c: Client, a: argparse.Namespace) -> int:
    body: dict[str, Any] = {"vm": a.vm, "direction": a.direction, "peer_ip": a.peer_ip,
                            "protocol": a.protocol}
    if a.port is not None:
        body["port"] = a.port
    r = c.call("POST", "/v1/trace", body)
    if a.json:
        _print(r, True)
        return 0
    m = r["model"]
    who = f"{m['policy']}/{m['rule']}" if m.get("policy") else \
        ("unprotected VM" if m.get("unprotected") else "default")
    print(f"model:    {m['verdict']} ({who}{', logged' if m.get('log') else ''})")
    dp = r.get("datapath")
    if dp is None:
        print("datapath: (the VM is not on a local switch)")
    elif "error" in dp:
        print(f"datapath: not traced: {dp['error']}")
    else:
        agree = "agrees" if dp["verdict"] == m["verdict"] else "DISAGREES"
        print(f"datapath: {dp['verdict']} on {dp['bridge']} ({agree}; rules "
              f"{','.join(dp['rules']) or 'default'}; punts {','.join(dp['punts']) or 'none'})")
    return 0


def cmd_lint(c: Client | None, a: argparse.Namespace) -> int:
    """Validate a state file and analyse its rules, offline (no server needed)."""
    docs = [d for d in cliinput.load_documents(a.file) if d is not None]
    states = [d for d in docs if cliinput.is_state(d)]
    if len(states) != 1 or len(docs) != 1:
        raise CliError(f"{a.file}: lint takes one whole state document")
    try:
        state = model.parse_state(states[0])
    except model.ValidationError as e:
        raise CliError(f"{a.file}: invalid: {e}") from None
    warnings = analyze(state)
    if a.json:
        print(json.dumps({"valid": True, "warnings": warnings}, indent=2))
    else:
        for w in warnings:
            print(f"{w['field']}: {w['code']}: {w['message']}")
        print(f"{a.file}: valid, {len(warnings)} warning(s)")
    return 1 if warnings and a.strict else 0


# --- parser ----------------------------------------------------------------------------
def _common(top: bool) -> argparse.ArgumentParser:
    """--url, --token and --json: on the top parser with defaults, and on every command
    with no default (so they work after the command and do not undo the ones before)."""
    p = argparse.ArgumentParser(add_help=False)
    d = (lambda v: v) if top else (lambda v: argparse.SUPPRESS)
    p.add_argument("--url", default=d(os.environ.get("VGW_URL", DEFAULT_URL)),
                   help=f"API base URL (env VGW_URL; default {DEFAULT_URL})")
    p.add_argument("--token", default=d(os.environ.get("VGW_TOKEN")),
                   help="bearer token (env VGW_TOKEN)")
    p.add_argument("--json", action="store_true", default=d(False),
                   help="machine-readable output (JSON)")
    return p


def _command(sub: Any, name: str, summary: str, epilog: str, fn: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=summary, description=summary, parents=[_common(False)],
                       epilog=f"{epilog}\n\n{ENV_HELP}".strip(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(fn=fn)
    return p


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vgwctl", description=__doc__,
                                 parents=[_common(True)], epilog=ENV_HELP,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    p = _command(sub, "apply", "apply a state or object file (previewed; --dry-run: "
                 "diff only)", APPLY_HELP, cmd_apply)
    cliapply.add_arguments(p)
    p = _command(sub, "lint", "validate a state file and analyse its rules, offline", (
        "Checks FILE as the server would (every error with its field path), then reports\n"
        "rules an earlier rule shadows, equal-priority overlaps with different actions,\n"
        "rules that never match and policies applied to no VM. Exit 0 when valid (1 with\n"
        "--strict and any warning), 1 when invalid. Needs no server."), cmd_lint)
    p.add_argument("file", metavar="FILE", help="a state file (YAML or JSON; - for stdin)")
    p.add_argument("--strict", action="store_true", help="exit 1 on any warning")
    p = _command(sub, "get", "list or show objects, switches or the whole state", (
        "WHAT: state, vm|vms, group|groups, policy|policies, switch|switches.\n"
        "Without NAME: a table (or the JSON collection with --json). With NAME: that\n"
        "object as YAML (JSON with --json); for switches NAME is a bridge name or a\n"
        "datapath id (00000000000000ab, ab or 0xab)."), cmd_get)
    p.add_argument("what", type=_choice(GET_WHAT, "WHAT"), metavar="WHAT")
    p.add_argument("name", nargs="?", metavar="NAME")
    p = _command(sub, "delete", "delete a VM, group or policy", (
        "KIND: vm|vms, group|groups, policy|policies. A VM or group still referenced\n"
        "(group members, applied_to, rule peers, assertions) is refused with 409 and the\n"
        "reference; so is a delete that breaks connectivity assertions, unless --force."),
        cmd_delete)
    p.add_argument("kind", type=_choice(COLLECTIONS, "KIND"), metavar="KIND")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--force", action="store_true",
                   help="delete even though connectivity assertions would break")
    p = _command(sub, "stats", "per-rule counters (sessions, packets, bytes)", (
        "Table of POLICY RULE SESSIONS PACKETS BYTES, the busiest rule (most sessions)\n"
        "first, then by name; the default verdicts are policy (default). SESSIONS counts\n"
        "connection decisions (new connections a rule judged), PACKETS every packet it\n"
        "judged. Then the punts suppressed by rate limits. --vm VM keeps the rules of\n"
        "the policies applied to VM (and the defaults, if VM is protected); the counters\n"
        "are still totals over every VM a rule applies to."), cmd_stats)
    p.add_argument("--vm", metavar="VM", help="only the rules that apply to this VM")
    p = _command(sub, "conns", "a VM's live connections (its connection table)", (
        "Table of PROTO DIR SRC SPORT DST DPORT STATE BLOCKED RULE, then the count. DIR\n"
        "is egress or ingress as seen from the VM; ICMP shows id=ID as SPORT and\n"
        "TYPE/CODE as DPORT; RULE is POLICY/ID, default, or - when unknown. Needs the VM\n"
        "on a switch of the controller's host (503 otherwise); an unprotected VM has no\n"
        "connection table (409)."), cmd_conns)
    p.add_argument("vm", metavar="VM")
    p.add_argument("--peer", metavar="IP", help="only connections with this peer address")
    p.add_argument("--port", type=int, metavar="N", help="only connections on this port")
    p.add_argument("--rule", metavar="POLICY/ID",
                   help="only connections decided by this rule (or: default)")
    p.add_argument("--limit", type=int, metavar="N",
                   help="at most this many (1-10000, default 1000)")
    p = _command(sub, "metrics", "the Prometheus metrics (GET /metrics)", (
        "Prints the text exposition format as served; PREFIX keeps the metrics whose\n"
        "name starts with it (vgwctl metrics vgw_rule_). --json: a list of\n"
        "{name, type, help, samples: [{name, labels, value}]}."), cmd_metrics)
    p.add_argument("prefix", nargs="?", metavar="PREFIX")
    p = _command(sub, "logs", "firewall log records, oldest first", (
        "One line per record: TIME VERDICT DIRECTION vm=VM PROTO SRC -> DST rule=P/R;\n"
        "--json prints each record as one JSON line.\n" + SINCE_HELP), cmd_logs)
    p.add_argument("--vm", help="only this VM's records")
    p.add_argument("--verdict", choices=list(model.ACTIONS))
    p.add_argument("--since", metavar="WHEN",
                   help="records at or after WHEN: 30s, 5m, 2h, 1d (ago), a UNIX time or "
                        "an ISO 8601 time")
    p.add_argument("--limit", type=int, help="at most this many (1-10000, default 100)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    p = _command(sub, "trace", "which rule decides a connection (read-only)", (
        "DIRECTION: " + ", ".join(model.DIRECTIONS) + "; PROTOCOL: "
        + ", ".join(model.PROTO_NUM) + "; PORT (tcp/udp only): 1-65535.\n"
        "Prints the model's verdict and deciding rule and, when the VM's switch is\n"
        "local, OVS's own ofproto/trace verdict. Needs no token on loopback."), cmd_trace)
    p.add_argument("vm")
    p.add_argument("direction", choices=list(model.DIRECTIONS))
    p.add_argument("peer_ip")
    p.add_argument("protocol", choices=list(model.PROTO_NUM))
    p.add_argument("port", type=int, nargs="?")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vgwctl`` console script."""
    a = build_parser().parse_args(argv)
    try:
        return a.fn(Client(a.url, a.token), a)
    except (CliError, ApiError) as e:
        print(f"vgwctl: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (vgwctl ... | head): stop quietly. Point stdout at
        # /dev/null so the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EPIPE_EXIT


if __name__ == "__main__":
    sys.exit(main())
