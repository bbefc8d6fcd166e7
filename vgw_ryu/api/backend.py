"""What the API needs from its host: the engine and the switch-side data.

The Ryu app's vgw_ryu.ryuapp.backend.AppBackend is one; tests use small fakes. The
methods marked optional are looked up with getattr: a backend without them still serves
everything else (GET /metrics and the connection listing then answer 503).
"""

from __future__ import annotations

import ipaddress
from typing import Any, Protocol

from vgw_ryu.policy.model import State
from vgw_ryu.runtime.engine import Engine


class Backend(Protocol):
    """The engine (state, ids, switches) and what only the switches know."""

    engine: Engine

    def switch_count(self) -> int:
        """Connected switches."""
        ...

    def stats(self) -> dict[str, Any]:
        """The GET /v1/stats document."""
        ...

    def logs(self, vm: str | None = None, verdict: str | None = None,
             since: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Firewall log records, newest last."""
        ...

    def trace_datapath(self, vm: str, direction: str,
                       peer: ipaddress.IPv4Address | ipaddress.IPv6Address, proto: str,
                       port: int | None) -> dict[str, Any] | None:
        """ofproto/trace of the connection on the VM's switch; None when not local."""
        ...

    def problems(self) -> list[dict[str, Any]]:
        """Operator-visible problems ({"code", "message", ...}); health is degraded
        while there are any. Optional: a backend without it has none."""
        ...

    def wait_applied(self, revision: int, timeout: float) -> Any:
        """Wait until every switch runs ``revision`` or later, at most ``timeout``
        seconds: a vgw_ryu.api.applied.Waited (applied at once with no switches)."""
        ...

    def read_only_reason(self) -> str | None:
        """Why REST writes are refused (409, field ``state_file``), else None. Optional."""
        ...

    def connection_usage(self, zones: list[int]) -> dict[int, tuple[int, int]]:
        """zone -> (limit, live entries) from the datapath; {} when it cannot say."""
        ...

    def metrics_text(self) -> bytes:
        """The Prometheus text exposition (vgw_ryu.runtime.metrics.CONTENT_TYPE) served
        at GET /metrics and GET /v1/metrics. Optional."""
        ...

    def connections(self, vm: str, peer: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
                    port: int | None, rule: str | None, limit: int) -> dict[str, Any] | None:
        """A protected VM's connection table, filtered: {"connections": [{protocol,
        direction, src, dst, sport, dport (or type, code, id), state, blocked, rule,
        timeout}], "total": N, "truncated": bool}; None when it cannot be read here (the
        VM is on no local switch). Optional."""
        ...

    def impact(self, candidate: State) -> dict[str, Any] | None:
        """What applying ``candidate`` would do to live traffic (the ``?preview=impact`` of
        every write): {"connections_judged", "cut_total", "cut": [{vm, direction, protocol,
        src, dst, sport, dport, state, rule_now, verdict_after, rule_after}],
        "cut_truncated", "newly_allowed_total", "newly_allowed": [{vm, direction,
        protocol, peer, port, denied_by, allowed_by, records}], "newly_allowed_truncated"}
        (see vgw_ryu.runtime.impact); None when the live connections cannot be read here.
        Optional: without it the preview says ``"impact": null``."""
        ...

    def count_request(self, method: str, status: int) -> None:
        """Called after every answered request (the REST requests metric). Optional."""
        ...
