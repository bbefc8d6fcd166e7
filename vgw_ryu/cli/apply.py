"""vgwctl apply: validate a file locally, preview what it would do, confirm, write.

    vgwctl apply -f FILE [--dry-run] [--impact] [--yes] [--force] [--wait [SECONDS]]

Before writing, the server is asked what the write would do (``PUT /v1/state
?preview=impact`` with the resulting state: for an object file, the server's state with
the objects put in it), and the impact on live connections and the connectivity
assertions are printed. A change that breaks assertions stops here (exit 1) unless
``--force``. Then, when stdin is a terminal, ``Apply? [y/N]`` unless ``--yes``; when it
is not (scripts, CI, ``-f -``) the write goes ahead and the summary goes to stderr.
``--impact`` stops after the preview (its exit status: 1 when the apply would be refused
for broken assertions); ``--dry-run`` prints the diff and changes nothing. ``--wait``
then waits until every switch (in a fleet, every live agent) runs the revision written
(``GET /v1/switches?wait_revision=N``): exit 1, naming those behind, if they do not.
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from typing import Any

from vgw_ryu.api.applied import DEFAULT_TIMEOUT as DEFAULT_WAIT
from vgw_ryu.api.applied import MAX_TIMEOUT as MAX_WAIT
from vgw_ryu.api.applied import timeout_value
from vgw_ryu.cli import output as cliout
from vgw_ryu.cli.files import APPLY_HELP, diff_state, load_documents, plan

__all__ = ["APPLY_HELP", "add_arguments", "cmd_apply", "report_forced", "wait_enforced"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--file", required=True, help="YAML or JSON file; - for stdin")
    p.add_argument("--dry-run", action="store_true", help="print the diff, change nothing")
    p.add_argument("--impact", action="store_true",
                   help="print the impact preview and the assertions, change nothing")
    p.add_argument("-y", "--yes", action="store_true",
                   help="apply without asking (a terminal is asked 'Apply? [y/N]')")
    p.add_argument("--force", action="store_true",
                   help="apply even though connectivity assertions would break")
    p.add_argument("--wait", nargs="?", type=_wait_seconds, const=DEFAULT_WAIT,
                   metavar="SECONDS",
                   help="then wait until every switch (every agent) enforces it, at most "
                        f"SECONDS (default {DEFAULT_WAIT:g}); exit 1 if they do not")


def _wait_seconds(text: str) -> float:
    """--wait's value, checked before anything is written."""
    value = timeout_value(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"must be seconds, more than 0 and at most "
                                         f"{MAX_WAIT:g}, not {text!r}")
    return value


def candidate(current: dict[str, Any], state: dict[str, Any] | None,
              objects: list[tuple[str, str, dict]]) -> dict[str, Any]:
    """The whole state the apply would leave: the file's state, or the server's state
    (``current``, as GET /v1/state answers) with the file's objects put in it."""
    if state is not None:
        return state
    doc = {k: (dict(v) if isinstance(v, dict) else v) for k, v in current.items()
           if k != "revision"}
    for coll, name, body in objects:
        doc.setdefault(coll, {})[name] = body
    return doc


def _interactive(a: argparse.Namespace) -> bool:
    """Whether to ask: stdin is a terminal and is not where the file comes from."""
    try:
        return a.file != "-" and sys.stdin.isatty()
    except (AttributeError, ValueError):     # closed or replaced stdin
        return False


def _confirm() -> bool:
    try:
        answer = input("Apply? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def cmd_apply(c: Any, a: argparse.Namespace) -> int:
    state, objects = plan(load_documents(a.file))
    current = c.call("GET", "/v1/state")
    if a.dry_run:
        lines = diff_state(current, state, objects)
        print("\n".join(lines) if lines else "no changes")
        if not a.impact:
            return 0
    want = candidate(current, state, objects)
    preview = c.call("PUT", "/v1/state?preview=impact", want)
    if not preview.get("changed", True):
        print(f"no changes: revision {preview['revision']}")
        return wait_enforced(c, preview["revision"], a.wait)
    broken = preview.get("violations") or []
    refused = bool(broken) and not a.force
    interactive = _interactive(a)
    if a.impact and a.json:
        cliout.print_doc(preview, True)
    else:
        out = sys.stdout if a.impact or interactive else sys.stderr
        lines = cliout.impact_lines(preview) + cliout.assertion_lines(
            broken, len(want.get("expectations") or [])) + warning_lines(preview)
        print("\n".join(lines), file=out, flush=True)
    if a.impact:
        return 1 if refused else 0
    if refused:
        print("vgwctl: not applied: connectivity assertions would break (--force applies "
              "anyway)", file=sys.stderr)
        return 1
    if interactive and not a.yes and not _confirm():
        print("vgwctl: not applied", file=sys.stderr)
        return 1
    query = "?force=true" if a.force else ""
    if state is not None:
        r = c.call("PUT", "/v1/state" + query, state)
        print(f"{'applied' if r.get('changed', True) else 'no changes'}: "
              f"revision {r['revision']}")
        report_forced(r)
        return wait_enforced(c, r["revision"], a.wait)
    rev, changed = None, 0
    for coll, name, body in objects:
        r = c.call("PUT", f"/v1/{coll}/{urllib.parse.quote(name, safe='')}{query}", body)
        rev, changed = r["revision"], changed + bool(r.get("changed", True))
        report_forced(r)
    if not changed:
        print(f"no changes: revision {rev}")
    else:
        same = len(objects) - changed
        print(f"applied {len(objects)} object(s)"
              + (f" ({same} unchanged)" if same else "") + f": revision {rev}")
    return wait_enforced(c, rev, a.wait)


def wait_enforced(c: Any, revision: int | None, timeout: float | None) -> int:
    """With --wait: wait until every switch (or agent) runs ``revision``; 0 when they do,
    1 (saying which lag) when they do not within ``timeout`` seconds."""
    if timeout is None or revision is None:
        return 0
    r = c.call("GET", f"/v1/switches?wait_revision={revision}&timeout={timeout:g}",
               timeout=timeout + 30)
    w = r["wait"]
    # A controller or an agent waits for its own switches; an API server for the live
    # agents (the answer says which).
    agents = w.get("of") == "agents"
    where = [(a["name"], a["applied_revision"]) for a in r.get("agents", [])
             if not a["stale"]] if agents else \
        [(s.get("bridge") or s["dpid"], s["applied_revision"]) for s in r["switches"]]
    what = "agent(s)" if agents else "switch(es)"
    if w["applied"] and not w.get("checked"):
        print(f"vgwctl: revision {revision} is enforced nowhere yet: no "
              f"{'live agent reports' if agents else 'switch is connected'}",
              file=sys.stderr)
        return 1
    if w["applied"]:
        print(f"enforced on {w['checked']} {what} in {w['seconds']:.2f} s")
        return 0
    behind = [f"{name} (revision {'none yet' if rev is None else rev})"
              for name, rev in where if rev is None or rev < revision]
    print(f"vgwctl: revision {revision} not enforced everywhere within {timeout:g} s: "
          + ", ".join(behind[:20]), file=sys.stderr)
    return 1


def warning_lines(answer: dict[str, Any]) -> list[str]:
    """The rule analysis of the resulting state (shadowed, overlapping rules, ...)."""
    warnings = answer.get("warnings") or []
    return [f"warning: {w['field']}: {w['code']}: {w['message']}" for w in warnings]


def report_forced(answer: dict[str, Any]) -> None:
    """A forced write's broken assertions, on stderr."""
    broken = answer.get("violations") or []
    if broken:
        n = len({v["expectation"] for v in broken})
        print(f"vgwctl: applied with --force: {n} connectivity assertion(s) broken",
              file=sys.stderr)
