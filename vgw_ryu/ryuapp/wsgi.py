"""Ryu WSGI adapter for vgw_ryu.api.handlers: one catch-all route, the Api does the rest."""

from __future__ import annotations

from ryu.app.wsgi import ControllerBase, Response, route

from vgw_ryu.api import http
from vgw_ryu.api.handlers import Api
from vgw_ryu.api.http import MAX_BODY, ApiError, Request

API_INSTANCE = "vgw_api"


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve the API off loopback without a token."""
    try:
        http.check_bind(host, token)
    except ValueError as e:
        raise SystemExit(f"vgw_ryu: {e} (--vgw-token or [vgw] token in the config "
                         "file)") from None


class RestController(ControllerBase):
    """Hands every request under / to the Api instance registered by the app."""

    def __init__(self, req, link, data, **config):
        super().__init__(req, link, data, **config)
        self.api: Api = data[API_INSTANCE]

    @route("vgw", "/{path}", requirements={"path": r"[\s\S]*"})
    def dispatch(self, req, **_kwargs):
        length = req.content_length or 0
        if length > MAX_BODY:
            resp = self.api.error_response(
                ApiError(413, "too_large", "body over 1 MiB"), req.method)
        else:
            body = req.body_file.read(MAX_BODY + 1) if req.method in ("PUT", "POST") else b""
            if len(body) > MAX_BODY:
                resp = self.api.error_response(
                ApiError(413, "too_large", "body over 1 MiB"), req.method)
            else:
                resp = self.api.handle(Request(
                    method=req.method, path=req.path_info, query=dict(req.GET),
                    headers={k.lower(): v for k, v in req.headers.items()},
                    body=body, remote_addr=req.remote_addr or ""))
        out = Response(status=resp.status, body=resp.encoded(),
                       content_type="application/json", charset="utf-8")
        for k, v in resp.headers.items():
            out.headers[k] = v
        return out
