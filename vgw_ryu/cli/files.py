"""What vgwctl reads: apply files (YAML/JSON, one or more documents) and --since times.

Pure functions, no HTTP: vgw_ryu.cli calls them and the unit tests drive them directly.

An apply file holds one or more YAML documents separated by ``---``. Each document is
a whole state (a mapping without ``kind``: settings, vms, groups, policies), one object
``{kind: vm|group|policy, name: NAME, ...fields}``, or a list of objects. At most one
document may be a whole state; objects next to a state are put into it and the result
is applied as one state. A mapping without ``kind`` is always read as a state, so a
misspelt top-level key (``polices:``) gets the validator's ``unknown field`` message.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
from typing import Any

import yaml

from vgw_ryu.api.http import looks_like_iso
from vgw_ryu.policy import model

COLLECTIONS = {"vm": "vms", "vms": "vms", "group": "groups", "groups": "groups",
               "policy": "policies", "policies": "policies"}
KIND_TO_COLL = {"vm": "vms", "group": "groups", "policy": "policies"}
LABEL = {"vms": "vm", "groups": "group", "policies": "policy"}
OBJECT_FORM = "{kind: vm|group|policy, name: NAME, ...}"

APPLY_HELP = f"""\
FILE: YAML or JSON; several YAML documents may be separated by '---'. Each is one of
  - a whole state: settings, vms, groups, policies (as GET /v1/state shows it; its
    'revision' is ignored). It replaces the whole state on the server;
  - one object:  {OBJECT_FORM}
  - a list of such objects.
At most one document is a whole state; objects next to it are added to it (replacing
same-named ones) and the result is applied as one state. Without a state, each object
is created or replaced with PUT /v1/KIND/NAME, in file order.
The file is validated locally first (errors name the field, e.g. policies.p.rules[0]);
--dry-run prints the difference with the server and changes nothing. Applying what the
server already has changes nothing and prints 'no changes' (the revision stays).

Before writing, the server previews the resulting state (PUT /v1/state?preview=impact):
the live connections it would cut (VM DIR PROTO SRC DST DPORT RULE NOW AFTER), the recent
denials it would allow, and the connectivity assertions (expectations) it would break.
Broken assertions stop the apply (exit 1) unless --force. On a terminal, 'Apply? [y/N]'
follows unless --yes; without one (scripts, CI, -f -) it applies, the summary on stderr.
--impact prints the preview and changes nothing (exit 1 if assertions would break).
--wait [SECONDS] then waits until every switch (through an API server: every live
agent) runs the revision written, at most SECONDS (default 30): exit 1, naming those
behind, if they do not, or if there are none."""

SINCE_HELP = """\
--since WHEN: a relative time ago, a number and a unit s, m, h or d (30s, 5m, 2h, 1d,
1h30m), a UNIX time (1714557600.5) or an ISO 8601 time (2024-05-01T10:00:00Z)."""

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class CliError(Exception):
    pass


def since_value(text: str, now: float) -> str:
    """The API's ``since`` for a --since value: durations become ``now`` minus them."""
    t = text.strip().lower()
    if t and _DURATION.sub("", t) == "" and _DURATION.match(t):
        seconds = sum(float(n) * _UNIT[u] for n, u in _DURATION.findall(t))
        return f"{now - seconds:.6f}"
    try:
        float(text)
        return text
    except ValueError:
        pass
    if looks_like_iso(text):
        return text
    raise CliError(f"--since: {text!r} is not a duration (30s, 5m, 2h, 1d), a UNIX time or "
                   "an ISO 8601 time")


def load_documents(path: str) -> list[Any]:
    """The YAML documents of a file (``-``: stdin), empty ones included as None."""
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as f:
                text = f.read()
    except OSError as e:
        raise CliError(f"{path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise CliError(f"{path}: not UTF-8 text: {e}") from None
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        raise CliError(f"{path}: not YAML/JSON: {e}") from None
    if all(d is None for d in docs):
        raise CliError(f"{path}: no documents: nothing to apply")
    return docs


def is_state(doc: Any) -> bool:
    """A mapping without ``kind`` is a whole state (typos then fail as unknown fields)."""
    return isinstance(doc, dict) and "kind" not in doc


def objects_of(doc: Any, where: str = "") -> list[tuple[str, str, dict]]:
    """(collection, name, body) of an object document (one object or a list)."""
    items = doc if isinstance(doc, list) else [doc]
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or item.get("kind") not in KIND_TO_COLL \
                or not isinstance(item.get("name"), str):
            raise CliError(f"{where}item {i}: expected {OBJECT_FORM} or a whole state "
                           "document")
        body = {k: v for k, v in item.items() if k not in ("kind", "name")}
        out.append((KIND_TO_COLL[item["kind"]], item["name"], body))
    return out


def _parse_state(doc: Any, where: str) -> dict[str, Any]:
    try:
        return model.state_doc(model.parse_state(doc))
    except model.ValidationError as e:
        raise CliError(f"{where}invalid: {e}") from None


def canonical(coll: str, name: str, body: Any, where: str = "") -> dict[str, Any]:
    """The server's form of an object (defaults filled in), validated locally."""
    try:
        obj = model.parse_object(coll, name, body)
    except model.ValidationError as e:
        raise CliError(f"{where}invalid: {e}") from None
    return {"vms": model.vm_doc, "groups": model.group_doc,
            "policies": model.policy_doc}[coll](obj)


def plan(docs: list[Any]) -> tuple[dict[str, Any] | None, list[tuple[str, str, dict]]]:
    """(state to PUT or None, objects to PUT one by one), everything validated locally.

    With a state document, the objects are merged into it and the list comes back empty.
    """
    many = sum(d is not None for d in docs) > 1
    state, state_at = None, 0
    objects: list[tuple[str, str, dict]] = []
    seen: dict[tuple[str, str], int] = {}
    for n, doc in enumerate(docs, 1):
        if doc is None:
            continue   # an empty document, e.g. after a trailing '---'
        where = f"document {n}: " if many else ""
        if is_state(doc):
            if state is not None:
                raise CliError(f"{where}a second whole state document (document {state_at} "
                               f"is one): a file holds at most one state; other documents "
                               f"must be objects {OBJECT_FORM}")
            state, state_at = _parse_state(
                {k: v for k, v in doc.items() if k != "revision"}, where), n
            continue
        for coll, name, body in objects_of(doc, where):
            if (coll, name) in seen:
                raise CliError(f"{where}{LABEL[coll]} {name} is also in document "
                               f"{seen[coll, name]}: give each object once")
            seen[coll, name] = n
            canonical(coll, name, body, where)
            objects.append((coll, name, body))
    if state is None:
        return None, objects
    for coll, name, body in objects:
        state[coll][name] = body
    return (_parse_state(state, "") if objects else state), []


def _dump(obj: Any) -> list[str]:
    return json.dumps(obj, indent=2, sort_keys=True).splitlines()


def diff(label: str, old: Any, new: Any) -> list[str]:
    """Lines showing how ``old`` (the server's) becomes ``new`` (the file's)."""
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


def diff_state(current: dict[str, Any], state: dict[str, Any] | None,
               objects: list[tuple[str, str, dict]] = ()) -> list[str]:
    """The diff of a canonical state (whole) or of objects against the server's state."""
    if state is None:
        return [ln for coll, name, body in objects
                for ln in diff(f"{coll} {name}", current.get(coll, {}).get(name),
                               canonical(coll, name, body))]
    lines = diff("settings", current["settings"], state["settings"])
    for coll in ("vms", "groups", "policies"):
        old, want = current.get(coll, {}), state[coll]
        for name in sorted(set(old) | set(want)):
            lines += diff(f"{LABEL[coll]} {name}", old.get(name), want.get(name))
    return lines
