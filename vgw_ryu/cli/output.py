"""What vgwctl prints: tables, log lines, stats and connection rows, metrics as JSON,
the impact preview and the connectivity assertions of an apply.

Pure functions over the API's answers, no HTTP: vgw_ryu.cli calls them and the unit
tests drive them directly.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import yaml

from vgw_ryu.api.safe import describe
from vgw_ryu.cli.files import CliError

DEFAULT_POLICY = "(default)"


def print_doc(obj: Any, as_json: bool) -> None:
    """A document as YAML, or as indented JSON."""
    print(json.dumps(obj, indent=2) if as_json else
          yaml.safe_dump(obj, sort_keys=False).rstrip("\n"))


def table(rows: list[list[Any]], header: list[str]) -> str:
    """Left-aligned columns two spaces apart; None prints as nothing."""
    cells = [header] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
                     for r in cells)


# --- switches --------------------------------------------------------------------------------
def find_switch(switches: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """A switch by bridge name or datapath id (hex, leading zeros and 0x optional)."""
    for s in switches:
        if s.get("bridge") == name:
            return s
    key = name.lower().removeprefix("0x")
    try:
        dpid = int(key, 16)
    except ValueError:
        dpid = None
    for s in switches:
        if dpid is not None and int(s["dpid"], 16) == dpid:
            return s
    known = ", ".join(s.get("bridge") or s["dpid"] for s in switches) or "none connected"
    raise CliError(f"no switch {name!r} (a bridge name or a datapath id; known: {known})")


def _port_list(ports: list[dict[str, Any]], label: str) -> str:
    out = []
    for p in ports:
        who = p.get(label) if label else None
        vm_id = f"(vm-id={p['vm_id']})" if p.get("vm_id") else ""
        out.append(f"{who or p['name']}@{p['ofport']}{vm_id}")
    return ",".join(out) or "-"


def switch_rows(switches: list[dict[str, Any]]) -> str:
    rows = [[s["dpid"], s.get("bridge") or "-", s["applied_revision"], s["flows"],
             _port_list(s["vm_ports"], "vm"), len(s["uplinks"]),
             _port_list(s["unknown_ports"], "")] for s in switches]
    return table(rows, ["DPID", "BRIDGE", "REVISION", "FLOWS", "VMS", "UPLINKS", "UNKNOWN"])


# --- logs ----------------------------------------------------------------------------------
def log_line(r: dict) -> str:
    ports = f":{r['dport']}" if r.get("dport") is not None else ""
    sport = f":{r['sport']}" if r.get("sport") is not None else ""
    rule = f"{r.get('policy') or '-'}/{r.get('rule') or '-'}"
    count = f" x{r['count']}" if r.get("count", 1) > 1 else ""
    return (f"{r['time']} {r.get('verdict', '?'):6} {r.get('direction') or '-':7} "
            f"vm={r.get('vm') or '-'} {r.get('protocol', '-')} {r.get('src')}{sport} -> "
            f"{r.get('dst')}{ports} rule={rule}{count}")


# --- stats ---------------------------------------------------------------------------------
STATS_HEADER = ["POLICY", "RULE", "SESSIONS", "PACKETS", "BYTES"]


def filter_stats(data: dict[str, Any], policies: set[str],
                 defaults: bool) -> dict[str, Any]:
    """The stats document with only ``policies`` (and the defaults if ``defaults``)."""
    return {**data,
            "policies": {p: v for p, v in data.get("policies", {}).items() if p in policies},
            "defaults": data.get("defaults", {}) if defaults else {}}


def stats_rows(data: dict[str, Any]) -> list[list[Any]]:
    """POLICY RULE SESSIONS PACKETS BYTES per rule and per default verdict, the busiest
    (most sessions) first, then by name. A counter the server lacks shows as -."""
    found = [(p, r, c) for p, pol in data.get("policies", {}).items()
             for r, c in pol.get("rules", {}).items()]
    found += [(DEFAULT_POLICY, d, c) for d, c in data.get("defaults", {}).items()]
    found.sort(key=lambda t: (-(t[2].get("sessions") or 0), t[0], t[1]))
    return [[p, r, *(c.get(k, "-") for k in ("sessions", "packets", "bytes"))]
            for p, r, c in found]


# --- connections ---------------------------------------------------------------------------
CONN_HEADER = ["PROTO", "DIR", "SRC", "SPORT", "DST", "DPORT", "STATE", "BLOCKED", "RULE"]


def _dash(v: Any) -> Any:
    return "-" if v is None or v == "" else v


def conn_rows(conns: list[dict[str, Any]]) -> list[list[Any]]:
    """One row per connection; ICMP shows ``id=ID`` as SPORT and TYPE/CODE as DPORT."""
    rows = []
    for c in conns:
        sport, dport = c.get("sport"), c.get("dport")
        if sport is None and dport is None and c.get("type") is not None:
            sport = f"id={c['id']}" if c.get("id") is not None else None
            dport = f"{c['type']}/{_dash(c.get('code'))}"
        rows.append([c.get("protocol"), _dash(c.get("direction")), c.get("src"),
                     _dash(sport), c.get("dst"), _dash(dport), _dash(c.get("state")),
                     "yes" if c.get("blocked") else "no", _dash(c.get("rule"))])
    return rows


def conn_summary(data: dict[str, Any]) -> str:
    shown, total = len(data.get("connections", [])), data.get("total", 0)
    if data.get("truncated"):
        return f"{shown} of {total} connections shown (raise --limit for more)"
    return f"{total} connection{'s' if total != 1 else ''}"


# --- metrics -------------------------------------------------------------------------------
def _metric_name(line: str) -> str | None:
    """The metric a line of the text format is about (None for other comments)."""
    if line.startswith("#"):
        parts = line.split()
        return parts[2] if len(parts) > 2 and parts[1] in ("HELP", "TYPE") else None
    return re.split(r"[{\s]", line, maxsplit=1)[0] or None


def metrics_filter(text: str, prefix: str | None) -> str:
    """The lines of the exposition whose metric name starts with ``prefix``."""
    if not prefix:
        return text
    return "".join(line + "\n" for line in text.splitlines()
                   if (_metric_name(line) or "").startswith(prefix))


def metrics_json(text: str) -> list[dict[str, Any]]:
    """The exposition as [{name, type, help, samples: [{name, labels, value}]}]; values
    that JSON cannot carry (NaN, +Inf) become strings."""
    from prometheus_client.parser import text_string_to_metric_families

    def num(v: float) -> Any:
        return v if math.isfinite(v) else str(v)

    try:
        return [{"name": f.name, "type": f.type, "help": f.documentation,
                 "samples": [{"name": s.name, "labels": s.labels, "value": num(s.value)}
                             for s in f.samples]}
                for f in text_string_to_metric_families(text)]
    except ValueError as e:
        raise CliError(f"the metrics are not in the text format: {e}") from None


# --- impact preview and assertions (vgwctl apply) ------------------------------------------
IMPACT_HEADER = ["VM", "DIR", "PROTO", "SRC", "DST", "DPORT", "RULE NOW", "AFTER"]
ALLOWED_HEADER = ["VM", "DIR", "PROTO", "PEER", "PORT", "DENIED BY", "ALLOWED BY", "RECORDS"]
SHOWN_ROWS = 20


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _indented(rows: list[list[Any]], header: list[str], total: int) -> list[str]:
    lines = ["  " + ln for ln in table(rows, header).splitlines()]
    if total > len(rows):
        lines.append(f"  ... and {total - len(rows)} more")
    return lines


def impact_lines(preview: dict[str, Any], limit: int = SHOWN_ROWS) -> list[str]:
    """The impact of a ``?preview=impact`` answer: connections cut (a bounded table) and
    recent denials newly allowed."""
    imp = preview.get("impact")
    if imp is None:
        why = preview.get("impact_unavailable") or "not available"
        return [f"impact: unknown: {why}"]
    cut = imp.get("cut", [])[:limit]
    lines = [f"impact: {_plural(imp.get('cut_total', 0), 'live connection')} would be cut "
             f"(of {imp.get('connections_judged', 0)} judged)"]
    if cut:
        rows = [[c.get("vm"), c.get("direction"), c.get("protocol"), c.get("src"),
                 c.get("dst"), _dash(c.get("dport")), c.get("rule_now"),
                 f"{c.get('verdict_after')} ({c.get('rule_after')})"] for c in cut]
        lines += _indented(rows, IMPACT_HEADER, imp.get("cut_total", len(cut)))
    allowed = imp.get("newly_allowed", [])[:limit]
    lines.append(f"impact: {_plural(imp.get('newly_allowed_total', 0), 'recent denial')} "
                 "would be allowed")
    if allowed:
        rows = [[n.get("vm"), n.get("direction"), n.get("protocol"), n.get("peer"),
                 _dash(n.get("port")), _dash(n.get("denied_by")), n.get("allowed_by"),
                 n.get("records")] for n in allowed]
        lines += _indented(rows, ALLOWED_HEADER, imp.get("newly_allowed_total",
                                                         len(allowed)))
    return lines


def assertion_lines(violations: list[dict[str, Any]], declared: int,
                    limit: int = SHOWN_ROWS) -> list[str]:
    """The connectivity assertions: all hold, or which would break and why."""
    if not violations:
        return [f"assertions: all {declared} hold" if declared else
                "assertions: none declared"]
    broken = len({v["expectation"] for v in violations})
    lines = [f"assertions: {broken} of {declared} would break:"]
    lines += ["  " + describe(v) for v in violations[:limit]]
    if len(violations) > limit:
        lines.append(f"  ... and {len(violations) - limit} more")
    return lines
