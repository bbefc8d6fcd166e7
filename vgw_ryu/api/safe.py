"""Safe changes: the ``preview`` and ``force`` query parameters of the writes, the impact
preview answer and the connectivity assertions that guard every write. No Ryu here.

Every write (PUT /v1/state, PUT and DELETE /v1/{vms,groups,policies}/{name}) takes

* ``?preview=impact``: build the candidate state exactly as the write would (same 400,
  404 and 409 answers), change nothing, and answer what it would do: ``changed``, the
  backend's ``impact`` on live connections (null with ``impact_unavailable`` when it
  cannot be read) and the assertions (``violations``) the candidate breaks;
* ``?force=true`` (or ``1``; ``false``/``0`` are the default): apply a write even though
  it breaks connectivity assertions; its answer then lists them as ``violations``.

Without force, a write whose resulting state breaks an assertion is refused with 409
``assertion_failed`` (the violations in ``error.violations``). A write that changes
nothing is never refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vgw_ryu.api.http import ApiError
from vgw_ryu.policy import expectations
from vgw_ryu.policy.model import State
from vgw_ryu.policy.ruleset import effective_rules

PREVIEWS = ("impact",)
FORCE_VALUES = {"true": True, "1": True, "false": False, "0": False}
SHOWN = 3   # violations spelt out in the 409 message (all of them are in the body)


@dataclass(frozen=True)
class WriteMode:
    preview: str | None = None
    force: bool = False


def write_mode(query: dict[str, str]) -> WriteMode:
    """The ``preview`` and ``force`` parameters of a write (400 naming a bad one)."""
    preview = query.get("preview")
    if preview is not None and preview not in PREVIEWS:
        raise ApiError(400, "invalid", f"preview must be {' or '.join(PREVIEWS)}, not "
                                       f"{preview[:40]!r}", "preview")
    force = query.get("force")
    if force is not None and force.lower() not in FORCE_VALUES:
        raise ApiError(400, "invalid", f"force must be true or false (1 or 0), not "
                                       f"{force[:40]!r}", "force")
    return WriteMode(preview, FORCE_VALUES[force.lower()] if force is not None else False)


@dataclass
class Outcome:
    """What a write did, or (``preview`` set) would do."""
    revision: int
    changed: bool
    violations: list[dict[str, Any]] = field(default_factory=list)
    candidate: State | None = None      # a preview's candidate state
    preview: str | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)   # rule analysis


def violations(state: State) -> list[dict[str, Any]]:
    """The connectivity assertions ``state`` breaks (see vgw_ryu.policy.expectations)."""
    if not state.expectations:
        return []
    return expectations.check(state, effective_rules(state))


def describe(v: dict[str, Any]) -> str:
    """One violation in words: ``client -> web1 tcp/80: expected allow, got deny (...)``."""
    what = v["protocol"] + (f"/{v['port']}" if v.get("port") is not None else "")
    pair = v.get("pair") or [v["from"], v["to"]]
    ends = f"{v['from']} -> {v['to']}"
    if [v["from"], v["to"]] != list(pair):
        ends += f" ({pair[0]} -> {pair[1]})"
    return (f"expectations[{v['expectation']}] {ends} {what}: expected {v['verdict']}, "
            f"got {v['got']} ({v['decided_by']})")


def refusal(found: list[dict[str, Any]]) -> ApiError:
    """The 409 ``assertion_failed`` error of a write that breaks assertions."""
    broken = sorted({v["expectation"] for v in found})
    text = "; ".join(describe(v) for v in found[:SHOWN])
    more = f"; and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
    return ApiError(409, "assertion_failed",
                    f"{len(broken)} connectivity assertion(s) would break: {text}{more} "
                    "(send force=true to apply anyway)", "expectations",
                    extra={"violations": found})


def preview_answer(backend: Any, out: Outcome) -> dict[str, Any]:
    """The answer to ``?preview=impact``: nothing was written."""
    body: dict[str, Any] = {"preview": out.preview, "revision": out.revision,
                            "changed": out.changed, "impact": None,
                            "violations": out.violations,
                            **({"warnings": out.warnings} if out.warnings else {})}
    impact = getattr(backend, "impact", None)
    if impact is None:
        body["impact_unavailable"] = "this controller cannot judge live connections"
        return body
    try:
        body["impact"] = impact(out.candidate)
    except Exception as e:      # the preview still says what it can
        body["impact_unavailable"] = f"reading the live connections failed: {e}"[:300]
        return body
    if body["impact"] is None:
        body["impact_unavailable"] = ("the live connections cannot be read here (no local "
                                      "switch answered)")
    return body
