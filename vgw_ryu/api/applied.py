"""Waiting until the switches run a revision: ``GET /v1/switches?wait_revision=N``.

A client that wrote revision N asks once and gets its answer when every switch runs N
or later (the write is then enforced everywhere, as ``ovn-nbctl --wait=hv`` waits for
OVN's hypervisors), or when ``timeout`` seconds passed, instead of polling. Where the
switches are local (the controller, an agent) that is each switch's last commit; in an
API server it is every live agent's report (a stale agent does not hold a wait up:
GET /v1/switches flags it). The answer is the usual switch listing plus ``wait``:
``{"revision", "applied", "seconds"}``. No Ryu here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vgw_ryu.api.http import ApiError

DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 300.0
POLL = 0.005      # between checks of a cheap condition (no snapshot is copied)


@dataclass(frozen=True)
class WaitQuery:
    revision: int
    timeout: float


def wait_query(q: dict[str, str]) -> WaitQuery | None:
    """The wait a switch listing asks for, or None."""
    rev = q.get("wait_revision")
    if rev is None:
        if "timeout" in q:
            raise ApiError(400, "invalid", "timeout is the longest wait for wait_revision, "
                                           "which is missing", "timeout")
        return None
    if not rev.isdigit():
        raise ApiError(400, "invalid", f"wait_revision must be a revision number, not "
                                       f"{rev[:40]!r}", "wait_revision")
    text = q.get("timeout", str(DEFAULT_TIMEOUT))
    try:
        timeout = float(text)
    except ValueError:
        timeout = math.nan
    if not 0 < timeout <= MAX_TIMEOUT:   # (NaN fails too)
        raise ApiError(400, "invalid", f"timeout must be seconds, more than 0 and at most "
                                       f"{MAX_TIMEOUT:g}, not {text[:40]!r}", "timeout")
    return WaitQuery(int(rev), timeout)


def wait_until(done: Callable[[], bool], timeout: float, interval: float = POLL,
               sleep: Callable[[float], None] = time.sleep) -> bool:
    """Check ``done`` until it holds (True) or ``timeout`` seconds passed (False).
    (Under ryu-manager ``time.sleep`` is eventlet's: other requests go on meanwhile.)"""
    deadline = time.monotonic() + timeout
    while not done():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sleep(min(interval, left))
    return True


def waited(backend: Any, wait: WaitQuery) -> dict[str, Any]:
    """Wait as asked; the answer's ``wait`` member."""
    t0 = time.monotonic()
    applied = backend.wait_applied(wait.revision, wait.timeout)
    return {"revision": wait.revision, "applied": bool(applied),
            "seconds": round(time.monotonic() - t0, 3)}
