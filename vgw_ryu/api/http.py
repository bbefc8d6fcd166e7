"""HTTP plumbing of the /v1 API: requests, answers, errors, routing, auth and bodies.

No Ryu here and nothing about firewalls: vgw_ryu.api.handlers holds the endpoints.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MAX_BODY = 1024 * 1024


class ApiError(Exception):
    """An error answer: HTTP status, machine code, message and offending field."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.extra = extra or {}    # more keys of the error object (e.g. violations)

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "field": self.field,
                          **self.extra}}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)   # lower-case names
    body: bytes = b""
    remote_addr: str = "127.0.0.1"


JSON_TYPE = "application/json; charset=utf-8"
# Answers this big (in compact JSON) go compact: indenting runs the standard library's
# pure-Python encoder, 5x its C one (a body shaped like GET /v1/switches at 1,000 VMs:
# 16 ms against 3 ms, on the controller's one core); small ones stay indented for
# people reading curl.
PRETTY_UNDER = 64 * 1024


@dataclass
class Response:
    """An answer: a JSON-able body, or bytes sent as they are (``Response.raw``).

    ``content_type`` is what goes in the Content-Type header; a raw answer also carries
    it in ``headers`` so an adapter that copies the headers sends it.
    """
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def raw(cls, status: int, data: bytes, content_type: str,
            headers: dict[str, str] | None = None) -> Response:
        return cls(status, bytes(data), {**(headers or {}), "Content-Type": content_type})

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", JSON_TYPE)

    def encoded(self) -> bytes:
        """The body as sent: indented JSON when small, compact from PRETTY_UNDER bytes."""
        if isinstance(self.body, bytes):
            return self.body
        text = json.dumps(self.body)
        if len(text) < PRETTY_UNDER:
            text = json.dumps(self.body, indent=1)
        return (text + "\n").encode()


Handler = Callable[[Request, dict[str, str]], Response]


class Router:
    """Path patterns like ``vms/{name}`` -> handlers per method."""

    def __init__(self) -> None:
        self.routes: list[tuple[list[str], dict[str, Handler]]] = []

    def add(self, pattern: str, **methods: Handler) -> None:
        self.routes.append((pattern.split("/"), methods))

    def match(self, path: str) -> tuple[dict[str, Handler], dict[str, str]] | None:
        """(handlers by method, path parameters) of the first matching pattern."""
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

    def resolve(self, req: Request, prefix: str = "/v1/") -> tuple[Handler, dict[str, str]]:
        """The handler of a request and its path parameters, or a 404/405 ApiError."""
        if not req.path.startswith(prefix):
            raise ApiError(404, "not_found", f"no such path: {req.path[:200]}")
        found = self.match(req.path[len(prefix):].rstrip("/"))
        if found is None:
            raise ApiError(404, "not_found", f"no such path: {req.path[:200]}")
        methods, params = found
        handler = methods.get(req.method.upper())
        if handler is None:
            raise ApiError(405, "method_not_allowed",
                           f"{req.method} not allowed on {req.path[:200]}; "
                           f"allowed: {', '.join(sorted(methods))}")
        return handler, params


def is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


def authorize(token: str | None, req: Request, read: bool | None = None) -> None:
    """With a token, writes and off-loopback reads need ``Authorization: Bearer``.

    ``read`` says whether the request only reads (default: it is a GET); a read-only
    POST such as /v1/trace passes ``read=True``.
    """
    if not token:
        return
    if read is None:
        read = req.method.upper() == "GET"
    needs = not read or not is_loopback(req.remote_addr)
    if not needs:
        return
    got = req.headers.get("authorization", "")
    scheme, _, value = got.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(),
                                                             token.encode()):
        raise ApiError(401, "unauthorized",
                       "missing or wrong token (Authorization: Bearer <token>)")


def json_body(req: Request) -> Any:
    """The request's JSON body (415, 413 or 400 when it is not one)."""
    ctype = req.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise ApiError(415, "unsupported_media_type",
                       f"send JSON (Content-Type: application/json), not {ctype or 'none'}")
    if len(req.body) > MAX_BODY:
        raise ApiError(413, "too_large", "body over 1 MiB")
    try:
        text = req.body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError(400, "invalid", f"body is not UTF-8: {e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ApiError(400, "invalid", f"body is not JSON: {e}") from None


REQUEST_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                             "0123456789-_.:")


def check_bind(host: str, token: str | None) -> None:
    """Refuse (ValueError) to serve the API off loopback without a token."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not token:
        raise ValueError(f"refusing to serve the REST API on {host}: binding off loopback "
                         "needs a token")


def request_id(req: Request) -> str | None:
    """The client's X-Request-Id (a retried write with the same id is applied once)."""
    v = req.headers.get("x-request-id")
    if v is None:
        return None
    if not 1 <= len(v) <= 64 or not set(v) <= REQUEST_ID_CHARS:
        raise ApiError(400, "invalid", "X-Request-Id must be 1-64 letters, digits or "
                       "'-_.:'", "X-Request-Id")
    return "client:" + v


def if_match(req: Request) -> int | None:
    """The revision in If-Match (quotes and W/ allowed), None without the header."""
    v = req.headers.get("if-match")
    if v is None:
        return None
    v = v.strip().strip('"')
    if v.startswith("W/"):
        v = v[2:].strip('"')
    if not v.isdigit():
        raise ApiError(400, "invalid", f"If-Match must be a revision number, not {v!r}",
                       "If-Match")
    return int(v)


def looks_like_iso(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
        return True
    except ValueError:
        return False
