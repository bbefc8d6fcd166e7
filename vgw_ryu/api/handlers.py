"""The /v1 REST API as plain Python: (method, path, headers, body) -> (status, JSON).

No Ryu here; vgw_ryu.ryuapp.wsgi adapts it to Ryu's WSGI. The backend (the app) supplies
the engine and the switch-side data (stats, logs, ofproto/trace), so the handlers are
testable without a switch. Every write is validated against the whole resulting state
and committed before the answer; a rejected request changes nothing.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vgw_ryu.api.openapi import OPENAPI
from vgw_ryu.policy import model
from vgw_ryu.policy.model import ValidationError, parse_ip
from vgw_ryu.policy.ruleset import applied_vms, evaluate, group_members
from vgw_ryu.runtime.store import ConflictError

MAX_BODY = 1024 * 1024
KINDS = {"vms": "vm", "groups": "group", "policies": "policy"}
READ_ONLY = ("name", "revision", "zone", "seen", "resolved", "applies_to_vms")


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
    headers: dict[str, str] = field(default_factory=dict)   # lower-case names
    body: bytes = b""
    remote_addr: str = "127.0.0.1"


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        return (json.dumps(self.body, indent=1) + "\n").encode()


Handler = Callable[[Request, dict[str, str]], Response]


def _is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


class Api:
    """Routes /v1 requests to handlers; every error becomes the documented JSON shape."""

    def __init__(self, backend: Any, token: str | None = None):
        self.backend = backend
        self.token = token
        self.routes: list[tuple[list[str], dict[str, Handler]]] = []
        self.add("health", GET=self.health)
        self.add("openapi.json", GET=lambda r, p: Response(200, OPENAPI))
        self.add("switches", GET=self.switches)
        self.add("state", GET=self.get_state, PUT=self.put_state)
        for coll in KINDS:
            self.add(coll, GET=self.list_objects)
            self.add(f"{coll}/{{name}}", GET=self.get_object, PUT=self.put_object,
                     DELETE=self.delete_object)
        self.add("stats", GET=self.stats)
        self.add("logs", GET=self.logs)
        self.add("trace", POST=self.trace)

    @property
    def engine(self):
        return self.backend.engine

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

    def _authorize(self, req: Request) -> None:
        if not self.token:
            return
        needs = req.method.upper() != "GET" or not _is_loopback(req.remote_addr)
        if not needs:
            return
        got = req.headers.get("authorization", "")
        scheme, _, value = got.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(),
                                                                 self.token.encode()):
            raise ApiError(401, "unauthorized",
                           "missing or wrong token (Authorization: Bearer <token>)")

    def handle(self, req: Request) -> Response:
        """Answer one request; never raises."""
        try:
            if not req.path.startswith("/v1/"):
                raise ApiError(404, "not_found", f"no such path: {req.path[:200]}")
            found = self._match(req.path[len("/v1/"):].rstrip("/"))
            if found is None:
                raise ApiError(404, "not_found", f"no such path: {req.path[:200]}")
            methods, params = found
            handler = methods.get(req.method.upper())
            if handler is None:
                raise ApiError(405, "method_not_allowed",
                               f"{req.method} not allowed on {req.path[:200]}; "
                               f"allowed: {', '.join(sorted(methods))}")
            self._authorize(req)
            return handler(req, params)
        except ApiError as e:
            return Response(e.status, e.body())
        except Exception as e:
            return Response(500, ApiError(500, "internal", f"{type(e).__name__}: {e}").body())

    # --- request helpers ------------------------------------------------------------
    @staticmethod
    def _json_body(req: Request) -> Any:
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

    @staticmethod
    def _if_match(req: Request) -> int | None:
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

    def _commit(self, new_doc: dict[str, Any], req: Request) -> int:
        try:
            return self.engine.apply_document(new_doc, self._if_match(req))
        except ValidationError as e:
            raise ApiError(400, "invalid", str(e), e.field) from None
        except ConflictError as e:
            raise ApiError(409, "conflict", str(e), "If-Match") from None

    @staticmethod
    def _check_name(name: str, coll: str) -> None:
        if not model.NAME_RE.match(name):
            raise ApiError(400, "invalid",
                           f"{name[:80]!r} is not a valid name ([a-z0-9][a-z0-9_.-]{{0,62}})",
                           f"{coll}.{name[:80]}")

    # --- handlers ---------------------------------------------------------------------
    def health(self, req: Request, params: dict[str, str]) -> Response:
        return Response(200, {"status": "ok", "revision": self.engine.revision,
                              "switches": self.backend.switch_count()})

    def switches(self, req: Request, params: dict[str, str]) -> Response:
        return Response(200, {"switches": self.engine.switches_view(),
                              "revision": self.engine.revision})

    def get_state(self, req: Request, params: dict[str, str]) -> Response:
        return Response(200, self.engine.state_document(),
                        {"ETag": f'"{self.engine.revision}"'})

    def put_state(self, req: Request, params: dict[str, str]) -> Response:
        doc = self._json_body(req)
        if isinstance(doc, dict):
            doc = {k: v for k, v in doc.items() if k != "revision"}
        rev = self._commit(doc, req)
        return Response(200, {"revision": rev})

    def _object_view(self, coll: str, name: str) -> dict[str, Any]:
        eng = self.engine
        st = eng.state
        if coll == "vms":
            vm = st.vms[name]
            zone = eng.ids.zone(name) if vm.protected else None
            return {"name": name, **model.vm_doc(vm), "zone": zone,
                    "seen": eng.vm_locations().get(name, [])}
        if coll == "groups":
            g = st.groups[name]
            members = group_members(st, name)
            addrs = sorted({str(ip) for m in members for ip in st.vms[m].ips}
                           | {str(c) for c in g.cidrs})
            return {"name": name, **model.group_doc(g),
                    "resolved": {"vms": members, "addresses": addrs}}
        pol = st.policies[name]
        return {"name": name, **model.policy_doc(pol), "applies_to_vms": applied_vms(st, name)}

    def list_objects(self, req: Request, params: dict[str, str]) -> Response:
        coll = req.path[len("/v1/"):].rstrip("/")
        with self.engine.lock:
            table = getattr(self.engine.state, coll)
            body = {coll: {n: self._object_view(coll, n) for n in table},
                    "revision": self.engine.revision}
        return Response(200, body)

    def _coll(self, req: Request) -> str:
        return req.path[len("/v1/"):].split("/")[0]

    def get_object(self, req: Request, params: dict[str, str]) -> Response:
        coll, name = self._coll(req), params["name"]
        with self.engine.lock:
            if name not in getattr(self.engine.state, coll):
                raise ApiError(404, "not_found", f"no {KINDS[coll]} named {name[:80]!r}")
            return Response(200, {**self._object_view(coll, name),
                                  "revision": self.engine.revision})

    def put_object(self, req: Request, params: dict[str, str]) -> Response:
        coll, name = self._coll(req), params["name"]
        self._check_name(name, coll)
        body = self._json_body(req)
        if isinstance(body, dict):
            if body.get("name", name) != name:
                raise ApiError(400, "invalid", f"name in the body ({str(body['name'])[:80]!r}) "
                                               f"is not the name in the path ({name!r})",
                               f"{coll}.{name}.name")
            # What GET adds is read-only; accept it back so GET -> edit -> PUT works.
            body = {k: v for k, v in body.items() if k not in READ_ONLY}
        with self.engine.lock:
            doc = self.engine.state_document()
            doc.pop("revision", None)
            created = name not in doc[coll]
            doc[coll][name] = body
            rev = self._commit(doc, req)
        return Response(200, {"revision": rev, "created": created, "name": name})

    def _references(self, coll: str, name: str) -> list[str]:
        st = self.engine.state
        refs = []
        target = f"{KINDS[coll]}:{name}"
        if coll == "vms":
            refs += [f"groups.{g}.members" for g, grp in st.groups.items() if name in grp.members]
        for pname, pol in st.policies.items():
            if target in pol.applied_to:
                refs.append(f"policies.{pname}.applied_to")
            for i, r in enumerate(pol.rules):
                if str(r.peer) == target:
                    refs.append(f"policies.{pname}.rules[{i}].peer")
        return refs

    def delete_object(self, req: Request, params: dict[str, str]) -> Response:
        coll, name = self._coll(req), params["name"]
        with self.engine.lock:
            doc = self.engine.state_document()
            doc.pop("revision", None)
            if name not in doc[coll]:
                raise ApiError(404, "not_found", f"no {KINDS[coll]} named {name[:80]!r}")
            refs = self._references(coll, name)
            if refs:
                raise ApiError(409, "conflict",
                               f"{KINDS[coll]} {name!r} is still referenced by "
                               + ", ".join(refs[:10]), refs[0])
            del doc[coll][name]
            rev = self._commit(doc, req)
        return Response(200, {"revision": rev, "deleted": name})

    def stats(self, req: Request, params: dict[str, str]) -> Response:
        return Response(200, self.backend.stats())

    def logs(self, req: Request, params: dict[str, str]) -> Response:
        q = req.query
        limit = q.get("limit", "100")
        if not limit.isdigit() or not 1 <= int(limit) <= 10000:
            raise ApiError(400, "invalid", "limit must be 1-10000", "limit")
        since = q.get("since")
        if since is not None:
            try:
                float(since)
            except ValueError:
                if not _looks_like_iso(since):
                    raise ApiError(400, "invalid",
                                   "since must be a UNIX time or an ISO 8601 time",
                                   "since") from None
        verdict = q.get("verdict")
        if verdict is not None and verdict not in ("allow", "deny", "reject"):
            raise ApiError(400, "invalid", "verdict must be allow, deny or reject", "verdict")
        records = self.backend.logs(vm=q.get("vm"), verdict=verdict, since=since,
                                    limit=int(limit))
        return Response(200, {"logs": records})

    def trace(self, req: Request, params: dict[str, str]) -> Response:
        body = self._json_body(req)
        if not isinstance(body, dict):
            raise ApiError(400, "invalid", "body must be an object")
        allowed = ("vm", "direction", "peer_ip", "protocol", "port")
        for k in body:
            if k not in allowed:
                raise ApiError(400, "invalid", f"unknown field (allowed: {', '.join(allowed)})",
                               k)
        st = self.engine.state
        vm = body.get("vm")
        if not isinstance(vm, str) or vm not in st.vms:
            raise ApiError(404 if isinstance(vm, str) else 400,
                           "not_found" if isinstance(vm, str) else "invalid",
                           f"no vm named {str(vm)[:80]!r}", "vm")
        direction = body.get("direction")
        if direction not in model.DIRECTIONS:
            raise ApiError(400, "invalid", "direction must be ingress or egress", "direction")
        try:
            peer = parse_ip(body.get("peer_ip"))
        except ValueError as e:
            raise ApiError(400, "invalid", str(e), "peer_ip") from None
        proto = body.get("protocol", "tcp")
        if proto not in ("tcp", "udp", "icmp", "icmpv6"):
            raise ApiError(400, "invalid", "protocol must be tcp, udp, icmp or icmpv6",
                           "protocol")
        port = body.get("port")
        if proto in ("tcp", "udp"):
            if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
                raise ApiError(400, "invalid", f"{port!r} is not a port (1-65535)", "port")
        elif port is not None:
            raise ApiError(400, "invalid", f"no port with protocol {proto}", "port")
        if (proto == "icmp" and peer.version == 6) or (proto == "icmpv6" and peer.version == 4):
            raise ApiError(400, "invalid", f"{proto} with an IPv{peer.version} peer",
                           "peer_ip")
        vm_obj = st.vms[vm]
        if not vm_obj.protected:
            result = {"verdict": "allow", "policy": None, "rule": None, "log": False,
                      "default": False, "unprotected": True}
        else:
            result = evaluate(st, self.engine.effective[vm], direction, peer, proto,
                              port).as_dict()
        out = {"vm": vm, "direction": direction, "peer_ip": str(peer), "protocol": proto,
               "port": port, "model": result, "datapath": None}
        try:
            out["datapath"] = self.backend.trace_datapath(vm, direction, peer, proto, port)
        except Exception as e:
            out["datapath"] = {"error": str(e)}
        return Response(200, out)


def _looks_like_iso(text: str) -> bool:
    from datetime import datetime

    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
        return True
    except ValueError:
        return False

