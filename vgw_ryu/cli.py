"""vgwctl: manage a vgw_ryu controller over its REST API.

    vgwctl apply -f policy.yaml [--dry-run]
    vgwctl get vms|groups|policies|switches [NAME]
    vgwctl delete vm|group|policy NAME
    vgwctl stats | logs [--follow] | trace VM DIRECTION PEER_IP PROTOCOL [PORT]

URL and token: --url/--token, or VGW_URL/VGW_TOKEN (default http://127.0.0.1:8080).
A file for ``apply`` is a whole state document (settings/vms/groups/policies), or one
object or a list of objects written as ``{kind: vm|group|policy, name: N, ...fields}``.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import time
import urllib.parse
from typing import Any

import yaml

from vgw_ryu.api.client import DEFAULT_URL, ApiError, Client
from vgw_ryu.policy import model

KIND_TO_COLL = {"vm": "vms", "group": "groups", "policy": "policies"}
STATE_KEYS = set(model.STATE_KEYS)


class CliError(Exception):
    pass


def _load(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    except OSError as e:
        raise CliError(f"{path}: {e.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise CliError(f"{path}: not YAML/JSON: {e}") from None


def _objects(doc: Any) -> list[tuple[str, str, dict]] | None:
    """(collection, name, body) for object files; None for a whole-state document."""
    items = doc if isinstance(doc, list) else [doc]
    if isinstance(doc, dict) and not ({"kind", "name"} <= set(doc)):
        if set(doc) <= STATE_KEYS:
            return None
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or item.get("kind") not in KIND_TO_COLL \
                or not isinstance(item.get("name"), str):
            raise CliError(f"item {i}: expected {{kind: vm|group|policy, name: NAME, ...}} "
                           "or a whole state document")
        body = {k: v for k, v in item.items() if k not in ("kind", "name")}
        out.append((KIND_TO_COLL[item["kind"]], item["name"], body))
    return out


def _dump(obj: Any) -> list[str]:
    return json.dumps(obj, indent=2, sort_keys=True).splitlines()


def _diff(label: str, old: Any, new: Any) -> list[str]:
    if old == new:
        return []
    if old is None:
        return [f"+ {label} (new)"]
    if new is None:
        return [f"- {label} (removed)"]
    lines = [f"~ {label}"]
    lines += ["    " + ln for ln in difflib.unified_diff(_dump(old), _dump(new), "server",
                                                       "file", lineterm="", n=1)][2:]
    return lines


def cmd_apply(c: Client, a: argparse.Namespace) -> int:
    doc = _load(a.file)
    objects = _objects(doc)
    current = c.call("GET", "/v1/state")
    if objects is None:
        new = {k: v for k, v in (doc or {}).items() if k != "revision"}
        try:
            canonical = model.state_doc(model.parse_state(new))
        except model.ValidationError as e:
            raise CliError(f"invalid: {e}") from None
        lines = _diff("settings", current["settings"], canonical["settings"])
        for coll in ("vms", "groups", "policies"):
            old, want = current.get(coll, {}), canonical[coll]
            for name in sorted(set(old) | set(want)):
                lines += _diff(f"{coll[:-1] if coll != 'policies' else 'policy'} {name}",
                               old.get(name), want.get(name))
        if a.dry_run:
            print("\n".join(lines) if lines else "no changes")
            return 0
        r = c.call("PUT", "/v1/state", new)
        print(f"applied: revision {r['revision']}" + ("" if lines else " (no changes)"))
        return 0
    lines = []
    for coll, name, body in objects:
        old = current.get(coll, {}).get(name)
        lines += _diff(f"{coll} {name}", old, _canonical(coll, name, body))
    if a.dry_run:
        print("\n".join(lines) if lines else "no changes")
        return 0
    rev = None
    for coll, name, body in objects:
        rev = c.call("PUT", f"/v1/{coll}/{urllib.parse.quote(name)}", body)["revision"]
    print(f"applied {len(objects)} object(s): revision {rev}")
    return 0


def _canonical(coll: str, name: str, body: Any) -> dict:
    """The server's form of an object (defaults filled in), validated locally."""
    try:
        obj = model.parse_object(coll, name, body)
    except model.ValidationError as e:
        raise CliError(f"invalid: {e}") from None
    return {"vms": model.vm_doc, "groups": model.group_doc,
            "policies": model.policy_doc}[coll](obj)


def _table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
                     for r in cells)


def cmd_get(c: Client, a: argparse.Namespace) -> int:
    what = a.what
    if a.name:
        path = f"/v1/{what}/{urllib.parse.quote(a.name)}"
        if what == "switches":
            raise CliError("get switches takes no name")
        obj = c.call("GET", path)
        print(json.dumps(obj, indent=2) if a.json else yaml.safe_dump(obj, sort_keys=False))
        return 0
    data = c.call("GET", f"/v1/{what}")
    if a.json:
        print(json.dumps(data, indent=2))
        return 0
    if what == "vms":
        rows = [[n, v.get("mac"), ",".join(v["ips"]), "yes" if v["protected"] else "no",
                 v.get("zone"), ",".join(f"{s['switch']}:{s['ofport']}" for s in v["seen"])
                 or "-"] for n, v in data["vms"].items()]
        print(_table(rows, ["NAME", "MAC", "IPS", "PROTECTED", "ZONE", "SEEN"]))
    elif what == "groups":
        rows = [[n, ",".join(g["resolved"]["vms"]), len(g["resolved"]["addresses"])]
                for n, g in data["groups"].items()]
        print(_table(rows, ["NAME", "MEMBERS", "ADDRESSES"]))
    elif what == "policies":
        rows = [[n, ",".join(p["applied_to"]), len(p["rules"]), ",".join(p["applies_to_vms"])]
                for n, p in data["policies"].items()]
        print(_table(rows, ["NAME", "APPLIED_TO", "RULES", "VMS"]))
    else:
        rows = [[s["dpid"], s["applied_revision"], s["flows"],
                 ",".join(f"{p['vm']}@{p['ofport']}" for p in s["vm_ports"]) or "-",
                 len(s["uplinks"]), len(s["unknown_ports"])] for s in data["switches"]]
        print(_table(rows, ["DPID", "REVISION", "FLOWS", "VMS", "UPLINKS", "UNKNOWN"]))
    return 0


def cmd_delete(c: Client, a: argparse.Namespace) -> int:
    r = c.call("DELETE", f"/v1/{KIND_TO_COLL[a.kind]}/{urllib.parse.quote(a.name)}")
    print(f"deleted {a.kind} {a.name}: revision {r['revision']}")
    return 0


def cmd_stats(c: Client, a: argparse.Namespace) -> int:
    data = c.call("GET", "/v1/stats")
    if a.json:
        print(json.dumps(data, indent=2))
        return 0
    rows = [[p, r, s["sessions"], s["bytes"]] for p, pol in data["policies"].items()
            for r, s in pol["rules"].items()]
    rows += [["(default)", d, s["sessions"], s["bytes"]] for d, s in data["defaults"].items()]
    print(_table(rows, ["POLICY", "RULE", "SESSIONS", "BYTES"]))
    sup = data["punts_suppressed"]
    print(f"\npunts suppressed by rate limits: log {sup['log']}, reject {sup['reject']}, "
          f"unknown {sup['unknown']}; packet-ins {data['packet_ins']}")
    return 0


def _log_line(r: dict) -> str:
    ports = f":{r['dport']}" if r.get("dport") is not None else ""
    sport = f":{r['sport']}" if r.get("sport") is not None else ""
    rule = f"{r.get('policy') or '-'}/{r.get('rule') or '-'}"
    count = f" x{r['count']}" if r.get("count", 1) > 1 else ""
    return (f"{r['time']} {r.get('verdict', '?'):6} {r.get('direction') or '-':7} "
            f"vm={r.get('vm') or '-'} {r.get('protocol', '-')} {r.get('src')}{sport} -> "
            f"{r.get('dst')}{ports} rule={rule}{count}")


def cmd_logs(c: Client, a: argparse.Namespace) -> int:
    q = {k: v for k, v in (("vm", a.vm), ("verdict", a.verdict), ("since", a.since),
                           ("limit", a.limit)) if v is not None}
    last_ts = None
    while True:
        if last_ts is not None:
            q["since"] = f"{last_ts + 1e-6:.6f}"
        recs = c.call("GET", "/v1/logs?" + urllib.parse.urlencode(q))["logs"]
        for r in recs:
            print(json.dumps(r) if a.json else _log_line(r), flush=True)
            last_ts = r["ts"]
        if not a.follow:
            return 0
        if last_ts is None:
            last_ts = time.time()
        time.sleep(1)


def cmd_trace(c: Client, a: argparse.Namespace) -> int:
    body: dict[str, Any] = {"vm": a.vm, "direction": a.direction, "peer_ip": a.peer_ip,
                            "protocol": a.protocol}
    if a.port is not None:
        body["port"] = a.port
    r = c.call("POST", "/v1/trace", body)
    if a.json:
        print(json.dumps(r, indent=2))
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


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vgwctl", description=__doc__.splitlines()[0])
    ap.add_argument("--url", default=os.environ.get("VGW_URL", DEFAULT_URL))
    ap.add_argument("--token", default=os.environ.get("VGW_TOKEN"))
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("apply", help="apply a state or object file")
    p.add_argument("-f", "--file", required=True)
    p.add_argument("--dry-run", action="store_true", help="print the diff, change nothing")
    p.set_defaults(fn=cmd_apply)
    p = sub.add_parser("get", help="list or show objects")
    p.add_argument("what", choices=["vms", "groups", "policies", "switches"])
    p.add_argument("name", nargs="?")
    p.set_defaults(fn=cmd_get)
    p = sub.add_parser("delete", help="delete an object")
    p.add_argument("kind", choices=sorted(KIND_TO_COLL))
    p.add_argument("name")
    p.set_defaults(fn=cmd_delete)
    p = sub.add_parser("stats", help="per-rule counters")
    p.set_defaults(fn=cmd_stats)
    p = sub.add_parser("logs", help="firewall log records")
    p.add_argument("--vm")
    p.add_argument("--verdict", choices=list(model.ACTIONS))
    p.add_argument("--since")
    p.add_argument("--limit", type=int)
    p.add_argument("-f", "--follow", action="store_true")
    p.set_defaults(fn=cmd_logs)
    p = sub.add_parser("trace", help="which rule decides a connection")
    p.add_argument("vm")
    p.add_argument("direction", choices=list(model.DIRECTIONS))
    p.add_argument("peer_ip")
    p.add_argument("protocol", choices=list(model.PROTO_NUM))
    p.add_argument("port", type=int, nargs="?")
    p.set_defaults(fn=cmd_trace)
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


if __name__ == "__main__":
    sys.exit(main())
