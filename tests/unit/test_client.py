"""The JSON client (vgw_ryu.api.client) against a tiny HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vgw_ryu.api.client import ApiError, Client

# path -> (status, content type, body bytes)
ANSWERS = {
    "/ok": (200, "application/json", b'{"status": "ok", "revision": 3}'),
    "/empty": (200, "application/json", b""),
    "/text": (200, "text/plain", b"hello"),
    "/invalid": (400, "application/json", json.dumps({"error": {
        "code": "invalid", "message": "70000 is not a port (1-65535)",
        "field": "policies.web-in.rules[0].ports"}}).encode()),
    "/missing": (404, "application/json", json.dumps({"error": {
        "code": "not_found", "message": "no vm named 'x'", "field": None}}).encode()),
    "/html": (502, "text/html", b"<html>bad gateway</html>"),
    "/odd": (409, "application/json", b'{"error": "just a string"}'),
}


class Handler(BaseHTTPRequestHandler):
    seen: list[dict] = []

    def _answer(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        Handler.seen.append({"method": self.command, "path": self.path,
                             "headers": dict(self.headers.items()), "body": body})
        status, ctype, data = ANSWERS.get(self.path.split("?")[0],
                                          (200, "application/json", b'{"echo": true}'))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_DELETE(self) -> None:
        self._answer()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def seen():
    Handler.seen.clear()
    return Handler.seen


def test_call_returns_parsed_json(server):
    assert Client(server).call("GET", "/ok") == {"status": "ok", "revision": 3}


def test_empty_body_is_none(server):
    assert Client(server).call("GET", "/empty") is None
    assert Client(server).request("GET", "/empty") == (200, None)


def test_base_url_trailing_slash(server, seen):
    assert Client(server + "/").get("/ok")["revision"] == 3
    assert seen[-1]["path"] == "/ok"


def test_body_sent_as_json_with_headers(server, seen):
    Client(server).put("/v1/vms/a", {"ips": ["10.0.0.1"]})
    req = seen[-1]
    assert req["method"] == "PUT" and json.loads(req["body"]) == {"ips": ["10.0.0.1"]}
    assert req["headers"]["Content-Type"] == "application/json"
    assert req["headers"]["Accept"] == "application/json"
    assert "Authorization" not in req["headers"]


def test_token_sent_as_bearer(server, seen):
    Client(server, token="s3cret").get("/ok")
    assert seen[-1]["headers"]["Authorization"] == "Bearer s3cret"


def test_error_body_becomes_exception_fields(server):
    with pytest.raises(ApiError) as ei:
        Client(server).call("PUT", "/invalid", {"x": 1})
    e = ei.value
    assert (e.status, e.code, e.field) == (400, "invalid", "policies.web-in.rules[0].ports")
    assert e.message == "70000 is not a port (1-65535)"
    assert str(e) == ("400 invalid: 70000 is not a port (1-65535) "
                      "(policies.web-in.rules[0].ports)")
    assert e.body["error"]["code"] == "invalid"


def test_error_without_field(server):
    with pytest.raises(ApiError) as ei:
        Client(server).delete("/missing")
    assert ei.value.field is None
    assert str(ei.value) == "404 not_found: no vm named 'x'"


def test_non_json_error_uses_reason(server):
    with pytest.raises(ApiError) as ei:
        Client(server).get("/html")
    e = ei.value
    assert (e.status, e.code) == (502, None)
    assert str(e) == "502 Bad Gateway"
    assert e.body == b"<html>bad gateway</html>"


def test_error_of_unexpected_shape_uses_reason(server):
    with pytest.raises(ApiError, match=r"^409 Conflict$"):
        Client(server).get("/odd")


def test_non_json_success_raises(server):
    with pytest.raises(ApiError, match="not JSON") as ei:
        Client(server).get("/text")
    assert ei.value.status == 200


def test_request_returns_status_and_body_without_raising(server):
    c = Client(server)
    assert c.request("GET", "/ok") == (200, {"status": "ok", "revision": 3})
    status, body = c.request("PUT", "/invalid", {})
    assert status == 400 and body["error"]["field"] == "policies.web-in.rules[0].ports"
    assert c.request("GET", "/html") == (502, b"<html>bad gateway</html>")


def test_request_raw_body_and_header_override(server, seen):
    Client(server).request("POST", "/x", raw=b"not json",
                           headers={"Content-Type": "text/plain", "If-Match": "7"})
    req = seen[-1]
    assert req["body"] == b"not json"
    assert req["headers"]["Content-Type"] == "text/plain"
    assert req["headers"]["If-Match"] == "7"


def test_query_string_passes_through(server, seen):
    assert Client(server).get("/v1/logs?vm=web1&limit=5") == {"echo": True}
    assert seen[-1]["path"] == "/v1/logs?vm=web1&limit=5"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_refused_is_a_clear_message():
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(ApiError) as ei:
        Client(url, timeout=2).get("/v1/health")
    e = ei.value
    assert e.status is None and e.code is None
    assert str(e).startswith(f"cannot reach {url}: ")
    assert "refused" in str(e).lower()


def test_request_also_raises_when_unreachable():
    with pytest.raises(ApiError, match="cannot reach"):
        Client(f"http://127.0.0.1:{_closed_port()}", timeout=2).request("GET", "/")


def test_timeout_is_a_clear_message():
    # A listener that never answers: the client gives up after its timeout.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        with pytest.raises(ApiError) as ei:
            Client(url, timeout=0.3).get("/slow")
    assert ei.value.status is None and "timed out" in str(ei.value)


def test_netlab_controller_request_keeps_its_contract(server, seen):
    """The tests' Controller.request/get: (status, JSON or bytes), errors included."""
    from vgw_lab.netlab import Controller

    ctl = Controller.__new__(Controller)
    ctl.url = server
    assert ctl.get("/ok") == (200, {"status": "ok", "revision": 3})
    assert ctl.request("PUT", "/invalid", {"a": 1})[0] == 400
    assert ctl.request("GET", "/html") == (502, b"<html>bad gateway</html>")
    ctl.request("PUT", "/x", None, headers={"Authorization": "Bearer t"}, raw=b"{}")
    assert seen[-1]["headers"]["Authorization"] == "Bearer t" and seen[-1]["body"] == b"{}"


def test_text_returns_the_body_of_a_2xx_as_text(server):
    c = Client(server)
    Handler.seen.clear()
    assert c.text("/text") == "hello"
    assert c.text("/ok") == '{"status": "ok", "revision": 3}'     # not parsed
    assert Handler.seen[0]["method"] == "GET"
    assert Handler.seen[0]["headers"]["Accept"] == "text/plain"


def test_text_errors_carry_the_apis_fields(server):
    with pytest.raises(ApiError) as e:
        Client(server).text("/missing")
    assert (e.value.status, e.value.code, e.value.message) == (404, "not_found",
                                                               "no vm named 'x'")
    with pytest.raises(ApiError) as e:
        Client(server).text("/html")
    assert (e.value.status, e.value.code) == (502, None)
