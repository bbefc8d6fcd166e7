"""The state document as rows of the policy database, and back.

Settings and expectations are columns of the one ``Global`` row; each VM, group and
policy is a row holding its JSON (a policy's without its rules), and each rule a
``Rule`` row with its position in the policy and its rule number. Writing compares
with what the replica holds and changes only what differs. The caller holds the
store's lock and owns the transaction. No Ryu here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from vgw_ryu.store.errors import StoreError
from vgw_ryu.store.keyindex import KeyIndex
from vgw_ryu.store.rowcache import RowCache

__all__ = ["OBJECT_TABLES", "Loaded", "read_document", "write_document", "write_objects"]

OBJECT_TABLES = {"vms": "VM", "groups": "Group", "policies": "Policy"}


@dataclass(frozen=True)
class Loaded:
    """What the replica holds: the state document, its revision, the rule numbers."""
    doc: dict[str, Any]
    revision: int
    rules: dict[str, int]      # "policy/rule id" -> rule number


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _loads(text: str, what: str) -> Any:
    try:
        return json.loads(text) if text else {}
    except ValueError as e:
        raise StoreError(f"{what} in the database is not JSON ({e})") from None


# --- reading -------------------------------------------------------------------------------
def _object_row(r: Any) -> tuple[str, Any]:
    return r.name, _loads(r.doc, f"{r._table.name} {r.name!r}")


def _rule_row(r: Any) -> tuple[str, str, int, int, Any]:
    return (r.policy, r.rule_id, int(r.number), int(r.position),
            _loads(r.doc, f"rule {r.policy}/{r.rule_id}"))


def read_document(idl: Any, g: Any, rows: RowCache) -> Loaded:
    """The state document, revision and rule numbers in the replica ``idl``, whose
    ``Global`` row is ``g`` (None: the database is empty); ``rows`` keeps what was
    read from each row until it changes."""
    doc: dict[str, Any] = {}
    if g is not None:
        settings = _loads(g.settings, "Global.settings")
        if settings:
            doc["settings"] = settings
        if g.expectations:
            doc["expectations"] = _loads(g.expectations, "Global.expectations")
    for key, table in OBJECT_TABLES.items():
        section = doc[key] = {}
        for r in idl.tables[table].rows.values():
            name, body = rows.read(r, _object_row)
            section[name] = body
    rules: dict[str, int] = {}
    listed: dict[str, list[tuple[int, Any]]] = {}
    for r in idl.tables["Rule"].rows.values():
        policy, rule_id, number, position, body = rows.read(r, _rule_row)
        rules[f"{policy}/{rule_id}"] = number
        listed.setdefault(policy, []).append((position, body))
    doc["policies"] = {name: {**pol, "rules": [d for _, d in sorted(
        listed.get(name, []), key=lambda x: x[0])]}
        for name, pol in doc["policies"].items()}
    return Loaded(doc, int(g.revision) if g is not None else 0, rules)


# --- writing -------------------------------------------------------------------------------
def _object_rows(key: str, section: dict[str, Any]) -> dict[tuple, dict[str, Any]]:
    """The wanted rows of one section (VM, Group, Policy), by name; a policy's rules
    have their own rows."""
    return {(name,): {"doc": _dumps({k: v for k, v in body.items() if k != "rules"}
                                    if key == "policies" else body)}
            for name, body in section.items()}


def _rule_rows(policies: dict[str, Any], numbers: dict[str, int]
               ) -> dict[tuple, dict[str, Any]]:
    """The wanted Rule rows of these policies, by (policy, rule id)."""
    out: dict[tuple, dict[str, Any]] = {}
    for pname, pol in policies.items():
        for pos, rule in enumerate(pol.get("rules") or []):
            rid = str(rule.get("id"))
            out[(pname, rid)] = {"doc": _dumps(rule), "position": pos,
                                 "number": numbers[f"{pname}/{rid}"]}
    return out


def write_document(idl: Any, txn: Any, g: Any, doc: dict[str, Any],
                   rules: dict[str, int]) -> None:
    """Make the database hold all of ``doc`` in ``txn``: ``Global`` row ``g``'s settings
    and expectations, and every object and rule row."""
    settings = _dumps(doc.get("settings") or {})
    if g.settings != settings:
        g.settings = settings
    expectations = _dumps(doc["expectations"]) if doc.get("expectations") else ""
    if g.expectations != expectations:
        g.expectations = expectations
    for key, table in OBJECT_TABLES.items():
        _sync_rows(idl, txn, table, ("name",), _object_rows(key, doc.get(key) or {}))
    _sync_rows(idl, txn, "Rule", ("policy", "rule_id"),
               _rule_rows(doc.get("policies") or {}, rules))


def write_objects(idl: Any, keys: KeyIndex, txn: Any, doc: dict[str, Any],
                  rules: dict[str, int], touched: dict[str, set[str]]) -> None:
    """Make the rows of the ``touched`` objects (by section) hold what ``doc`` has for
    them in ``txn`` (a name absent from ``doc`` is deleted), a policy's rules too."""
    # Found through the key index: a one-object write looks at its own rows, not
    # at every row of the table.
    for key, names in touched.items():
        table = OBJECT_TABLES[key]
        section = {n: b for n, b in (doc.get(key) or {}).items() if n in names}
        for name in names:
            _sync_rows(idl, txn, table, ("name",),
                       _object_rows(key, {name: section[name]} if name in section else {}),
                       keys.rows(table, name))
            if key == "policies":
                _sync_rows(idl, txn, "Rule", ("policy", "rule_id"),
                           _rule_rows({name: section[name]} if name in section else {},
                                      rules),
                           keys.rows("Rule", name))


def _sync_rows(idl: Any, txn: Any, table: str, keys: tuple[str, ...],
               wanted: dict[tuple, dict[str, Any]], rows: list[Any] | None = None) -> None:
    """Insert, update (only changed columns) and delete rows of ``table`` (of
    ``rows``, when given: the only ones ``wanted`` is about)."""
    # As raw operations of the transaction, not through the IDL's rows: setting a
    # column through the IDL converts and checks it, and its commit converts it back,
    # most of a 1,000-VM write. Every column here is a string or an integer, whose
    # JSON is the value itself. The IDL still commits the transaction (its Global
    # changes guard it) and learns the rows from the server's update, as before.
    have = {tuple(getattr(r, k) for k in keys): r
            for r in (idl.tables[table].rows.values() if rows is None else rows)}
    for key, row in have.items():
        if key not in wanted:
            txn.add_op({"op": "delete", "table": table, "where": _this(row)})
    for key, cols in wanted.items():
        row = have.get(key)
        if row is None:
            txn.add_op({"op": "insert", "table": table,
                        "row": {**dict(zip(keys, key, strict=True)), **cols}})
            continue
        changed = {k: v for k, v in cols.items() if getattr(row, k) != v}
        if changed:
            txn.add_op({"op": "update", "table": table, "where": _this(row),
                        "row": changed})


def _this(row: Any) -> list[list[Any]]:
    """An operation's ``where`` naming one row."""
    return [["_uuid", "==", ["uuid", str(row.uuid)]]]
