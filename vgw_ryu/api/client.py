"""The JSON client of the /v1 API (standard library only): vgwctl, vgw-lab and the tests.

    c = Client("http://127.0.0.1:8080", token=None, timeout=30)
    c.call("GET", "/v1/health")              # parsed JSON of a 2xx answer, else ApiError
    c.request("PUT", "/v1/vms/a", {...})     # (status, body) whatever the status
    c.text("/metrics")                       # the text of a 2xx answer (not JSON)

Errors are one exception type, ``ApiError``: the HTTP status (``None`` when no answer
came back), and the ``code``, ``message`` and ``field`` of the API's
``{"error": {"code", "message", "field"}}`` answer. Its text is what vgwctl prints, e.g.
``400 invalid: 70000 is not a port (1-65535) (policies.web-in.rules[0].ports)``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8080"


class ApiError(Exception):
    """A call that failed: an error answer, an answer that is not JSON, or no answer."""

    def __init__(self, status: int | None, code: str | None, message: str,
                 field: str | None = None, body: Any = None):
        self.status = status    # HTTP status; None when the server was not reached
        self.code = code        # the API's error code (invalid, not_found, ...); None if absent
        self.message = message
        self.field = field      # the field path the API blames, if any
        self.body = body        # the answer's body (parsed JSON, or bytes)
        super().__init__(self.text())

    def text(self) -> str:
        if self.status is None:
            return self.message
        if self.code is None:
            return f"{self.status} {self.message}"
        where = f" ({self.field})" if self.field else ""
        return f"{self.status} {self.code}: {self.message}{where}"

    def __str__(self) -> str:
        return self.text()


def _parse(data: bytes) -> Any:
    """JSON of a body (None when empty); the bytes themselves when it is not JSON."""
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return data


def _failure(status: int, reason: str, parsed: Any) -> ApiError:
    """The ApiError of a non-2xx answer: the API's code, message and field if present."""
    err = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(err, dict) and "code" in err and "message" in err:
        return ApiError(status, str(err["code"]), str(err["message"]),
                        err.get("field") or None, parsed)
    return ApiError(status, None, reason, body=parsed)


class Client:
    """One API endpoint: base URL, optional bearer token, default timeout in seconds."""

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None,
                 timeout: float = 30):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _send(self, method: str, path: str, body: Any, headers: dict[str, str] | None,
              raw: bytes | None, timeout: float | None) -> tuple[int, str, bytes]:
        """(status, reason, body bytes) of any HTTP answer; ApiError if there is none."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        hdrs = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        hdrs.update(headers or {})
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(
                    req, timeout=self.timeout if timeout is None else timeout) as r:
                return r.status, r.reason, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.reason, e.read()
        except urllib.error.URLError as e:
            raise ApiError(None, None, f"cannot reach {self.url}: {e.reason}") from None
        except OSError as e:  # reset or timed out after connecting
            raise ApiError(None, None, f"no answer from {self.url}: {e}") from None

    def request(self, method: str, path: str, body: Any = None, *,
                headers: dict[str, str] | None = None, raw: bytes | None = None,
                timeout: float | None = None) -> tuple[int, Any]:
        """(status, body) for any answer, errors included: the body is parsed JSON, None
        when empty, or bytes when not JSON. ``raw`` is sent as is instead of ``body``;
        ``headers`` are added to (or replace) the JSON and token headers. Raises
        ApiError only when no answer came back."""
        status, _, data = self._send(method, path, body, headers, raw, timeout)
        return status, _parse(data)

    def call(self, method: str, path: str, body: Any = None, *,
             headers: dict[str, str] | None = None, timeout: float | None = None) -> Any:
        """The parsed JSON of a 2xx answer (None when empty); ApiError for anything else."""
        status, reason, data = self._send(method, path, body, headers, None, timeout)
        parsed = _parse(data)
        if 200 <= status < 300:
            if isinstance(parsed, bytes):
                raise ApiError(status, None, f"{reason}, but the answer is not JSON",
                               body=parsed)
            return parsed
        raise _failure(status, reason, parsed)

    def text(self, path: str, *, timeout: float | None = None) -> str:
        """The body of a 2xx answer to GET ``path`` as text (e.g. GET /metrics);
        ApiError for anything else, with the API's error fields when it sent them."""
        status, reason, data = self._send("GET", path, None, {"Accept": "text/plain"},
                                          None, timeout)
        if 200 <= status < 300:
            return data.decode("utf-8", "replace")
        raise _failure(status, reason, _parse(data))

    def get(self, path: str, **kw: Any) -> Any:
        return self.call("GET", path, **kw)

    def put(self, path: str, body: Any, **kw: Any) -> Any:
        return self.call("PUT", path, body, **kw)

    def post(self, path: str, body: Any, **kw: Any) -> Any:
        return self.call("POST", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.call("DELETE", path, **kw)
