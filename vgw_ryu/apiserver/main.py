"""``vgw-api``: serve /v1 from the policy database (stdlib threaded HTTP server)."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from vgw_ryu.api.handlers import Api
from vgw_ryu.api.http import MAX_BODY, ApiError, Request, check_bind
from vgw_ryu.apiserver.backend import DbBackend
from vgw_ryu.runtime.engine import Engine
from vgw_ryu.store.ovsdb import OvsdbStore, StoreError

LOG = logging.getLogger("vgw_ryu.apiserver")
DEFAULT_DB = "unix:/var/lib/vgw_ryu/state.db.sock"


def _handler(api: Api) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "vgw-api"

        def log_message(self, fmt: str, *args) -> None:
            LOG.debug("%s " + fmt, self.client_address[0], *args)

        def _serve(self) -> None:
            split = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                resp = api.error_response(ApiError(413, "too_large", "body over 1 MiB"),
                                          self.command)
                self.close_connection = True
            else:
                body = self.rfile.read(length) if length else b""
                resp = api.handle(Request(
                    method=self.command, path=urllib.parse.unquote(split.path),
                    query=dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True)),
                    headers={k.lower(): v for k, v in self.headers.items()}, body=body,
                    remote_addr=self.client_address[0]))
            data = resp.encoded()
            self.send_response(resp.status)
            if "Content-Type" not in resp.headers:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            for k, v in resp.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        # http.server dispatches on these names.
        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = _serve  # noqa: N815

    return Handler


def _follow(store: OvsdbStore, engine: Engine, stop: threading.Event) -> None:
    """Adopt what other writers commit, as soon as the replica has it."""
    while not stop.is_set():
        try:
            store.wait(0.5)
            if store.poll():
                engine.refresh()
        except Exception:
            LOG.exception("following the policy database failed; retrying")
            stop.wait(1.0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="vgw-api", description=__doc__)
    p.add_argument("--db", default=DEFAULT_DB,
                   help="OVSDB remotes of the policy database, comma-separated "
                        f"(default: {DEFAULT_DB}, the all-in-one controller's)")
    p.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT",
                   help="where to serve /v1 (default: 127.0.0.1:8080; off loopback "
                        "needs --token)")
    p.add_argument("--token", default=None, help="bearer token for the REST API")
    p.add_argument("--db-timeout", type=float, default=5.0,
                   help="seconds a write waits for a commit before answering 503 "
                        "(default: 5)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return p.parse_args(argv)


def _split_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise SystemExit(f"vgw-api: --listen must be HOST:PORT, not {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    host, port = _split_listen(args.listen)
    try:
        check_bind(host, args.token)
    except ValueError as e:
        raise SystemExit(f"vgw-api: {e}") from None
    try:
        store = OvsdbStore(args.db, timeout=args.db_timeout, connect=False)
        store.wait_connected(max(args.db_timeout, 30.0))
        engine = Engine(store, with_zones=False)   # zones are the agents' business
    except (StoreError, RuntimeError) as e:
        raise SystemExit(f"vgw-api: {e}") from None
    api = Api(DbBackend(engine), args.token)
    stop = threading.Event()
    threading.Thread(target=_follow, args=(store, engine, stop), daemon=True,
                     name="db-follower").start()
    try:
        httpd = ThreadingHTTPServer((host, port), _handler(api))
    except OSError as e:
        raise SystemExit(f"vgw-api: cannot listen on {host}:{port}: {e}") from None
    httpd.daemon_threads = True
    LOG.info("vgw-api: REST API on http://%s:%d/v1/, policy database %s, revision %d",
             host, port, args.db, engine.revision)
    sys.stdout.flush()
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        httpd.server_close()
        store.close()
