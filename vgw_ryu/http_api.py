"""The /v1 REST API as plain Python: (method, path, headers, body) -> (status, JSON).

No Ryu here; vgw_ryu.ryu_rest adapts it to Ryu's WSGI. The controller object behind
it (``backend``) supplies the data, so handlers are testable without a switch.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_BODY = 1024 * 1024


class ApiError(Exception):
    """An error answer: HTTP status, machine code, message and offending field."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    remote_addr: str = "127.0.0.1"


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        return (json.dumps(self.body, indent=1, sort_keys=False) + "\n").encode()


Handler = Callable[[Request, dict[str, str]], Response]


class Api:
    """Routes /v1 requests to handlers; every error becomes the documented JSON shape."""

    def __init__(self, backend: Any):
        self.backend = backend
        self.routes: list[tuple[list[str], dict[str, Handler]]] = []
        self.add("health", GET=self.health)
        self.add("switches", GET=self.switches)

    def add(self, pattern: str, **methods: Handler) -> None:
        """Register handlers for a path pattern like ``vms/{name}``."""
        self.routes.append((pattern.split("/"), methods))

    def _match(self, path: str) -> tuple[dict[str, Handler], dict[str, str]] | None:
        parts = path.split("/")
        for pattern, methods in self.routes:
            if len(pattern) != len(parts):
                continue
            params: dict[str, str] = {}
            for want, got in zip(pattern, parts, strict=True):
                if want.startswith("{"):
                    params[want[1:-1]] = got
                elif want != got:
                    break
            else:
                return methods, params
        return None

    @staticmethod
    def error_response(e: ApiError) -> Response:
        """The JSON answer for an error raised outside a handler."""
        return Response(e.status, e.body())

    def handle(self, req: Request) -> Response:
        """Answer one request; never raises."""
        try:
            if not req.path.startswith("/v1/"):
                raise ApiError(404, "not_found", f"no such path: {req.path}")
            found = self._match(req.path[len("/v1/"):].rstrip("/"))
            if found is None:
                raise ApiError(404, "not_found", f"no such path: {req.path}")
            methods, params = found
            handler = methods.get(req.method.upper())
            if handler is None:
                raise ApiError(405, "method_not_allowed",
                               f"{req.method} not allowed on {req.path}; "
                               f"allowed: {', '.join(sorted(methods))}")
            return handler(req, params)
        except ApiError as e:
            return Response(e.status, e.body())
        except Exception as e:
            return Response(500, ApiError(500, "internal", f"{type(e).__name__}: {e}").body())

    def health(self, req: Request, params: dict[str, str]) -> Response:
        return Response(200, {"status": "ok", "revision": self.backend.revision(),
                              "switches": self.backend.switch_count()})

    def switches(self, req: Request, params: dict[str, str]) -> Response:
        return Response(200, self.backend.engine.switches_view())
