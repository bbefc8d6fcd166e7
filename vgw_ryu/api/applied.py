"""Waiting until the switches run a revision: ``GET /v1/switches?wait_revision=N``.

A client that wrote revision N asks once and gets its answer when every switch runs N
or later (the write is then enforced everywhere, as ``ovn-nbctl --wait=hv`` waits for
OVN's hypervisors), or when ``timeout`` seconds passed, instead of polling. Where the
switches are local (the controller, an agent) that is each switch's last commit; in an
API server it is every live agent's report (a stale agent does not hold a wait up:
GET /v1/switches flags it). The answer is the usual switch listing plus ``wait``:
``{"revision", "applied", "seconds", "of", "checked"}``: whether they run it, how long
the wait took, and what it looked at (``switches`` or ``agents``, and how many: with
none, nothing enforces the revision yet). At most ``MAX_WAITS`` wait at once (more
answer 503): each checks a cheap condition every few milliseconds. No Ryu here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vgw_ryu.api.http import ApiError

DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 300.0
MAX_WAITS = 64
POLL = 0.005        # between checks for the first FAST_FOR seconds (a sync's time)...
POLL_LATER = 0.05   # ... and after them (a long wait costs less)
FAST_FOR = 10.0
REVISION_DIGITS = 19


@dataclass(frozen=True)
class WaitQuery:
    revision: int
    timeout: float


@dataclass(frozen=True)
class Waited:
    """What a wait saw: whether every switch (agent) runs the revision, and how many
    switches (agents) it looked at."""
    applied: bool
    checked: int
    of: str          # "switches" or "agents"


def timeout_value(text: str) -> float | None:
    """Seconds to wait, if ``text`` is more than 0 and at most MAX_TIMEOUT; else None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0 < value <= MAX_TIMEOUT else None   # (NaN fails too)


def wait_query(q: dict[str, str]) -> WaitQuery | None:
    """The wait a switch listing asks for, or None."""
    rev = q.get("wait_revision")
    if rev is None:
        if "timeout" in q:
            raise ApiError(400, "invalid", "timeout is the longest wait for wait_revision, "
                                           "which is missing", "timeout")
        return None
    if not (rev.isascii() and rev.isdigit() and len(rev) <= REVISION_DIGITS):
        raise ApiError(400, "invalid", f"wait_revision must be a revision number, not "
                                       f"{rev[:40]!r}", "wait_revision")
    text = q.get("timeout", str(DEFAULT_TIMEOUT))
    timeout = timeout_value(text)
    if timeout is None:
        raise ApiError(400, "invalid", f"timeout must be seconds, more than 0 and at most "
                                       f"{MAX_TIMEOUT:g}, not {text[:40]!r}", "timeout")
    return WaitQuery(int(rev), timeout)


def wait_until(done: Callable[[], bool], timeout: float,
               sleep: Callable[[float], None] | None = None) -> bool:
    """Check ``done`` until it holds (True) or ``timeout`` seconds passed (False).
    (``time.sleep`` is looked up when called: under ryu-manager it is eventlet's, and
    other requests go on meanwhile.)"""
    start = time.monotonic()
    deadline = start + timeout
    while not done():
        now = time.monotonic()
        if now >= deadline:
            return False
        pause = POLL if now - start < FAST_FOR else POLL_LATER
        (sleep or time.sleep)(min(pause, deadline - now))
    return True


class _Slots:
    """How many waits run; at most MAX_WAITS."""

    def __init__(self) -> None:
        self.lock = threading.Lock()   # (only held for a count: fine under eventlet)
        self.running = 0

    def take(self) -> None:
        with self.lock:
            if self.running >= MAX_WAITS:
                raise ApiError(503, "unavailable", f"{MAX_WAITS} waits are in progress "
                                                   "already; retry")
            self.running += 1

    def give(self) -> None:
        with self.lock:
            self.running -= 1


_SLOTS = _Slots()


def waited(backend: Any, wait: WaitQuery) -> dict[str, Any]:
    """Wait as asked; the answer's ``wait`` member."""
    _SLOTS.take()
    try:
        t0 = time.monotonic()
        got: Waited = backend.wait_applied(wait.revision, wait.timeout)
    finally:
        _SLOTS.give()
    return {"revision": wait.revision, "applied": got.applied,
            "seconds": round(time.monotonic() - t0, 3), "of": got.of,
            "checked": got.checked}
