"""Unit-tier fixtures: the REST Api on a real Engine and an in-memory store, no switch, no root.

``make_api`` is the one place that builds an ``Api``; if its constructor or the backend
interface changes, only this file needs an edit.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.api_doc import DOC
from vgw_ryu.api.applied import Waited
from vgw_ryu.api.handlers import Api, Request, Response
from vgw_ryu.runtime.engine import Engine
from vgw_ryu.store.memory import MemoryStore
from vgw_ryu.store.zonefile import ZoneFile

# What StubBackend.impact answers unless told otherwise: the shape of
# vgw_ryu.runtime.impact's report, one connection cut and one denial newly allowed.
IMPACT: dict[str, Any] = {
    "connections_judged": 3, "cut_total": 1,
    "cut": [{"vm": "web1", "direction": "ingress", "protocol": "tcp", "src": "192.0.2.7",
             "dst": "10.0.0.11", "sport": "40000", "dport": "22", "state": "ESTABLISHED",
             "rule_now": "web-in/ssh", "verdict_after": "deny", "rule_after": "default"}],
    "cut_truncated": False, "newly_allowed_total": 1,
    "newly_allowed": [{"vm": "web1", "direction": "ingress", "protocol": "tcp",
                       "peer": "198.51.100.4", "port": 8080, "denied_by": "default",
                       "allowed_by": "web-in/alt", "records": 2}],
    "newly_allowed_truncated": False}


@dataclass
class StubBackend:
    """What the Ryu app gives the Api, minus the switches: records what it was asked."""
    engine: Engine
    switches: int = 0
    stats_body: dict[str, Any] = field(default_factory=lambda: {"policies": {}})
    records: list[dict[str, Any]] = field(default_factory=list)
    log_queries: list[dict[str, Any]] = field(default_factory=list)
    traces: list[tuple] = field(default_factory=list)
    trace_result: Any = None
    trace_error: Exception | None = None
    stats_error: Exception | None = None
    metrics_body: bytes = (b"# HELP vgw_state_revision revision of the desired state\n"
                           b"# TYPE vgw_state_revision gauge\nvgw_state_revision 1.0\n")
    conn_result: dict[str, Any] | None = None
    conn_queries: list[tuple] = field(default_factory=list)
    counted: list[tuple[str, int]] = field(default_factory=list)
    count_error: Exception | None = None
    # impact(): answers impact_result (None: the live connections cannot be read) and
    # records the candidate states it was asked about.
    impact_result: dict[str, Any] | None = field(default_factory=lambda: dict(IMPACT))
    impact_calls: list[Any] = field(default_factory=list)
    # wait_applied(): answers wait_result for ``switches`` switches, records its calls.
    wait_result: bool = True
    waits: list[tuple[int, float]] = field(default_factory=list)

    def switch_count(self) -> int:
        return self.switches

    def wait_applied(self, revision: int, timeout: float) -> Waited:
        self.waits.append((revision, timeout))
        return Waited(self.wait_result, self.switches, "switches")

    def stats(self) -> dict[str, Any]:
        if self.stats_error is not None:
            raise self.stats_error
        return self.stats_body

    def logs(self, vm=None, verdict=None, since=None, limit=100) -> list[dict[str, Any]]:
        self.log_queries.append({"vm": vm, "verdict": verdict, "since": since,
                                 "limit": limit})
        return list(self.records)

    def trace_datapath(self, vm, direction, peer, proto, port):
        self.traces.append((vm, direction, peer, proto, port))
        if self.trace_error is not None:
            raise self.trace_error
        return self.trace_result

    def metrics_text(self) -> bytes:
        return self.metrics_body

    def connections(self, vm, peer, port, rule, limit):
        self.conn_queries.append((vm, peer, port, rule, limit))
        return self.conn_result

    def impact(self, candidate) -> dict[str, Any] | None:
        self.impact_calls.append(candidate)
        return self.impact_result

    def count_request(self, method: str, status: int) -> None:
        self.counted.append((method, status))
        if self.count_error is not None:
            raise self.count_error


@dataclass
class Client:
    """Calls ``Api.handle`` the way the WSGI adapter does (decoded path, lower-case
    headers, query dict); defaults mirror ``vgw_lab.netlab.Controller.request``."""
    api: Api
    backend: StubBackend
    db: Path

    @property
    def engine(self) -> Engine:
        return self.backend.engine

    def call(self, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None, raw: bytes | None = None,
             remote_addr: str = "127.0.0.1") -> Response:
        data = raw if raw is not None else (json.dumps(body).encode()
                                            if body is not None else b"")
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        split = urllib.parse.urlsplit(path)
        return self.api.handle(Request(
            method=method, path=urllib.parse.unquote(split.path),
            query=dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in hdrs.items()}, body=data,
            remote_addr=remote_addr))

    def request(self, method: str, path: str, body: Any = None, **kw) -> tuple[int, Any]:
        r = self.call(method, path, body, **kw)
        return r.status, r.body

    def get(self, path: str, **kw) -> tuple[int, Any]:
        return self.request("GET", path, **kw)

    def state_bytes(self) -> bytes:
        """GET /v1/state exactly as it goes on the wire, ETag included."""
        r = self.call("GET", "/v1/state")
        assert r.status == 200
        return r.encoded() + json.dumps(r.headers, sort_keys=True).encode()


@pytest.fixture
def make_api(tmp_path) -> Callable[..., Client]:
    """Factory: an Api over a real Engine and an in-memory store; the same ``db`` name
    gives the same store, as reopening a database would (the OVSDB store itself is
    tested with real ovsdb-server processes in tests/sandbox/test_store.py)."""
    stores: dict[Path, MemoryStore] = {}

    def make(token: str | None = None, db: Path | None = None) -> Client:
        path = db or tmp_path / "state.db"
        store = stores.setdefault(path, MemoryStore(str(path)))
        backend = StubBackend(Engine(store, ZoneFile(f"{path}.zones")))
        return Client(Api(backend, token), backend, path)

    return make


@pytest.fixture
def api(make_api) -> Client:
    """An Api holding tests.api_doc.DOC as revision 1."""
    c = make_api()
    assert c.request("PUT", "/v1/state", DOC) == (200, {"revision": 1})
    return c


@pytest.fixture
def make_engine(tmp_path) -> Callable[..., Engine]:
    """Factory: a real Engine over an in-memory store, holding ``doc`` if given."""

    def make(doc: dict | None = None) -> Engine:
        eng = Engine(MemoryStore())
        if doc is not None:
            eng.apply_document(doc)
        return eng

    return make
