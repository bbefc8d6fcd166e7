"""The /v1 REST API as plain Python: (method, path, headers, body) -> (status, JSON).

No Ryu here; vgw_ryu.ryuapp.wsgi adapts it to Ryu's WSGI. The backend (see
vgw_ryu.api.backend) supplies the engine and the switch-side data (stats, logs,
ofproto/trace), so the handlers are testable without a switch. Reads use one engine
snapshot; every write is validated against the whole resulting state and committed
before the answer; a rejected request changes nothing, and a write that would change
nothing writes nothing (200 with the current revision and ``"changed": false``). Writes
take ``?preview=impact`` (answer what the write would do, write nothing) and ``?force=true``
(apply even though connectivity assertions break): see vgw_ryu.api.safe. Every
GET answer carries the revision it was read at, in the body and as ``ETag: "<rev>"``.
GET /metrics (and /v1/metrics) answers the backend's Prometheus text as it is. After
every answer the backend's ``count_request`` (if any) counts it. HTTP plumbing:
vgw_ryu.api.http.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vgw_ryu.api import applied, http, params, safe
from vgw_ryu.api.backend import Backend
from vgw_ryu.api.http import MAX_BODY, ApiError, Handler, Request, Response, Router
from vgw_ryu.api.openapi import OPENAPI
from vgw_ryu.api.views import KINDS, READ_ONLY, object_view, references
from vgw_ryu.policy import model
from vgw_ryu.policy.analysis import analyze
from vgw_ryu.policy.ids import OutOfNumbersError
from vgw_ryu.policy.model import ValidationError
from vgw_ryu.policy.ruleset import evaluate
from vgw_ryu.runtime import chassis
from vgw_ryu.runtime.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from vgw_ryu.runtime.snapshot import Snapshot
from vgw_ryu.store.ovsdb import ConflictError, StaleError, StoreUnavailableError

__all__ = ["KINDS", "MAX_BODY", "READ_ONLY", "Api", "ApiError", "Backend", "Request",
           "Response"]


def _changed(old: model.State, new: model.State, touched: dict[str, set[str]] | None
             ) -> bool:
    """Whether a write changes anything: the documents of the objects it touches, or
    (touched None: settings or assertions changed too) the whole state's."""
    if touched is None:
        return model.state_doc(new) != model.state_doc(old)
    if not touched:
        return False
    return any(model.object_doc(kind, getattr(old, kind).get(n)) !=
               model.object_doc(kind, getattr(new, kind).get(n))
               for kind, names in touched.items() for n in names)


# Methods counted by name; anything else a client sends is counted as OTHER (the
# metric's label set stays bounded).
WRITE_ATTEMPTS = 8   # a write recomputed on newer state at most this often (then 503)
COUNTED_METHODS = ("GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS", "PATCH")


class Api:
    """Routes /v1 requests to handlers; every error becomes the documented JSON shape."""

    def __init__(self, backend: Backend | Any, token: str | None = None):
        self.backend = backend
        self.token = token
        self.router = Router()
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
        self.add("vms/{name}/connections", GET=self.vm_connections)
        self.add("metrics", GET=self.metrics)
        # Outside /v1: GET /metrics, where Prometheus looks by default.
        self.root = Router()
        self.root.add("metrics", GET=self.metrics)
        # Read-only handlers reached by POST: a token guards them like a GET.
        self.read_only_posts = {self.trace}

    @property
    def engine(self):
        return self.backend.engine

    @property
    def routes(self):
        """The /v1 routes: (pattern parts, handlers by method)."""
        return self.router.routes

    @property
    def root_routes(self):
        """The routes outside /v1 (``/metrics``)."""
        return self.root.routes

    def add(self, pattern: str, **methods: Handler) -> None:
        """Register handlers for a path pattern like ``vms/{name}``."""
        self.router.add(pattern, **methods)

    def error_response(self, e: ApiError, method: str | None = None) -> Response:
        """The JSON answer for an error raised outside a handler (the adapter's 413);
        counted like any answer when the request's ``method`` is given."""
        resp = Response(e.status, e.body())
        if method is not None:
            self._count(method, resp.status)
        return resp

    def handle(self, req: Request) -> Response:
        """Answer one request, and count it (backend.count_request); never raises."""
        resp = self._answer_request(req)
        self._count(req.method, resp.status)
        return resp

    def _count(self, method: str, status: int) -> None:
        count = getattr(self.backend, "count_request", None)
        if count is None:
            return
        method = method.upper()
        try:
            count(method if method in COUNTED_METHODS else "OTHER", status)
        except Exception:   # a metric must never break an answer
            pass

    def _answer_request(self, req: Request) -> Response:
        try:
            if req.path.startswith("/v1/"):
                handler, path_params = self.router.resolve(req)
            else:
                handler, path_params = self.root.resolve(req, "/")
            read = req.method.upper() == "GET" or handler in self.read_only_posts
            http.authorize(self.token, req, read)
            if not read:
                # A controller whose state file is the source of truth takes no REST
                # writes: they would be undone by the next edit of the file.
                reason = getattr(self.backend, "read_only_reason", lambda: None)()
                if reason:
                    raise ApiError(409, "conflict", reason, "state_file")
            for _ in range(WRITE_ATTEMPTS - 1):
                try:
                    return handler(req, path_params)
                except StaleError:
                    # Another writer committed first: compute this write again on
                    # the state it produced (the request's own If-Match still holds).
                    self.engine.refresh()
            return handler(req, path_params)
        except StaleError as e:
            return Response(503, ApiError(503, "unavailable", f"the state kept changing "
                                          f"under this write: {e}; retry").body())
        except StoreUnavailableError as e:
            return Response(503, ApiError(503, "unavailable", str(e)).body())
        except ApiError as e:
            return Response(e.status, e.body())
        except OutOfNumbersError as e:
            return Response(409, ApiError(409, "out_of_zones", f"no conntrack zone left for "
                                          f"a protected VM ({e}): widen --vgw-zone-range or "
                                          "delete or unprotect VMs").body())
        except Exception as e:
            return Response(500, ApiError(500, "internal", f"{type(e).__name__}: {e}").body())

    # --- request helpers ------------------------------------------------------------
    @staticmethod
    def _read(body: dict[str, Any], revision: int) -> Response:
        """A GET answer: the body with its revision, and that revision as the ETag."""
        return Response(200, {**body, "revision": revision}, {"ETag": f'"{revision}"'})

    @staticmethod
    def _expected(req: Request, body: Any) -> tuple[int | None, str]:
        """The revision a write is conditional on, and where it came from: If-Match, or
        a ``revision`` in the body (what GET returned), which must agree if both are."""
        header = http.if_match(req)
        if not isinstance(body, dict) or "revision" not in body:
            return header, "If-Match"
        rev = body["revision"]
        if isinstance(rev, bool) or not isinstance(rev, int) or rev < 0:
            raise ApiError(400, "invalid", f"revision must be a revision number, not "
                                           f"{str(rev)[:40]!r}", "revision")
        if header is not None and header != rev:
            raise ApiError(400, "invalid", f"revision {rev} in the body is not the "
                                           f"If-Match revision {header}", "revision")
        return rev, "revision"

    def _commit(self, snap: Snapshot, build: Callable[[], model.State],
                expected: tuple[int | None, str], mode: safe.WriteMode,
                req: Request | None = None,
                touched: dict[str, set[str]] | None = None) -> safe.Outcome:
        """Validate and commit the state ``build()`` makes (call inside
        engine.editing()). ``touched``: the only objects the write changes, by section
        (a one-object write: compared and stored alone), or None for the whole state.
        A stale expected revision is a 409 even when nothing would change. A preview
        commits nothing; a change that breaks connectivity assertions is a 409 unless
        forced."""
        rev, where = expected
        try:
            new = build()
        except ValidationError as e:
            raise ApiError(400, "invalid", str(e), e.field) from None
        if rev is not None and rev != snap.revision:
            raise ApiError(409, "conflict", str(ConflictError(rev, snap.revision)), where)
        if touched is None:
            # A whole-state write stores only what differs (None: settings too).
            touched = model.changed_objects(snap.state, new)
        changed = _changed(snap.state, new, touched)
        warnings = analyze(new) if changed or mode.preview else []
        if mode.preview:
            return safe.Outcome(snap.revision, changed, safe.violations(new), new,
                                mode.preview, warnings)
        if not changed:
            return safe.Outcome(snap.revision, False)
        broken = safe.violations(new)
        if broken and not mode.force:
            raise safe.refusal(broken)
        try:
            rid = http.request_id(req) if req is not None else None
            return safe.Outcome(self.engine.replace_state(new, rev, request_id=rid,
                                                          touched=touched),
                                True, broken, warnings=warnings)
        except ConflictError as e:
            raise ApiError(409, "conflict", str(e), where) from None

    def _answer(self, body: dict[str, Any], out: safe.Outcome) -> Response:
        """A write's answer; ``"changed": false`` marks a write that wrote nothing, and
        ``violations`` the assertions a forced write broke. A preview's answer says what
        the write would do (computed outside the engine's write lock)."""
        if out.preview:
            return Response(200, safe.preview_answer(self.backend, out))
        return Response(200, {"revision": out.revision, **body,
                              **({} if out.changed else {"changed": False}),
                              **({"violations": out.violations} if out.violations else {}),
                              **({"warnings": out.warnings} if out.warnings else {})})

    @staticmethod
    def _check_name(name: str, coll: str) -> None:
        if not model.NAME_RE.match(name):
            raise ApiError(400, "invalid",
                           f"{name[:80]!r} is not a valid name ([a-z0-9][a-z0-9_.-]{{0,62}})",
                           f"{coll}.{name[:80]}")

    @staticmethod
    def _coll(req: Request) -> str:
        return req.path[len("/v1/"):].split("/")[0]

    # --- handlers ---------------------------------------------------------------------
    def health(self, req: Request, path: dict[str, str]) -> Response:
        problems = list(getattr(self.backend, "problems", lambda: [])())
        database = getattr(self.engine.store, "health", None)
        db = database() if database is not None else None
        if db is not None and not db["connected"]:
            problems.append({"code": "database_unreachable",
                             "message": f"the policy database at {db['remote']} does not "
                                        "answer (or has no quorum): writes answer 503, "
                                        f"reads and the switches keep revision "
                                        f"{self.engine.snapshot().revision}"})
        body = {"status": "degraded" if problems else "ok",
                "revision": self.engine.snapshot().revision,
                "switches": self.backend.switch_count()}
        if db is not None:
            body["database"] = db
        if problems:
            body["problems"] = problems
        return Response(200, body)

    def switches(self, req: Request, path: dict[str, str]) -> Response:
        wait = applied.wait_query(req.query)
        done = applied.waited(self.backend, wait) if wait is not None else None
        snap = self.engine.snapshot()
        rows = getattr(self.engine.store, "chassis", None)
        body: dict[str, Any] = {"switches": snap.switches_view()}
        if rows is not None:
            body["agents"] = chassis.view(rows(), snap.revision)
        return self._read({**body, **({"wait": done} if done else {})}, snap.revision)

    def get_state(self, req: Request, path: dict[str, str]) -> Response:
        snap = self.engine.snapshot()
        return self._read(snap.document(), snap.revision)

    def put_state(self, req: Request, path: dict[str, str]) -> Response:
        mode = safe.write_mode(req.query)
        doc = http.json_body(req)
        if not isinstance(doc, dict):
            # null or a list would otherwise read as an empty state and wipe everything.
            raise http.ApiError(400, "invalid", "the state must be a JSON object with "
                                "settings, vms, groups and policies", "")
        expected = self._expected(req, doc)
        doc = {k: v for k, v in doc.items() if k != "revision"}
        with self.engine.editing() as snap:
            out = self._commit(snap, lambda: model.parse_state(doc), expected, mode, req)
        return self._answer({}, out)

    def list_objects(self, req: Request, path: dict[str, str]) -> Response:
        coll = req.path[len("/v1/"):].rstrip("/")
        snap = self.engine.snapshot()
        where = snap.vm_locations()
        views = {n: object_view(snap, coll, n, where) for n in getattr(snap.state, coll)}
        return self._read({coll: views}, snap.revision)

    def get_object(self, req: Request, path: dict[str, str]) -> Response:
        coll, name = self._coll(req), path["name"]
        snap = self.engine.snapshot()
        if name not in getattr(snap.state, coll):
            raise ApiError(404, "not_found", f"no {KINDS[coll]} named {name[:80]!r}")
        view = object_view(snap, coll, name)
        if coll == "vms" and view["zone"] is not None:
            # The live count comes from the datapath (its zone's entries), when local.
            usage = getattr(self.backend, "connection_usage", None)
            found = usage([view["zone"]]).get(view["zone"]) if usage else None
            if found is not None:
                view["connections"]["count"] = found[1]
        return self._read(view, snap.revision)

    def put_object(self, req: Request, path: dict[str, str]) -> Response:
        coll, name = self._coll(req), path["name"]
        self._check_name(name, coll)
        mode = safe.write_mode(req.query)
        body = http.json_body(req)
        expected = self._expected(req, body)
        if isinstance(body, dict):
            if body.get("name", name) != name:
                raise ApiError(400, "invalid", f"name in the body ({str(body['name'])[:80]!r}) "
                                               f"is not the name in the path ({name!r})",
                               f"{coll}.{name}.name")
            # What GET adds is read-only; accept it back so GET -> edit -> PUT works.
            body = {k: v for k, v in body.items() if k not in READ_ONLY}
        with self.engine.editing() as snap:
            created = name not in getattr(snap.state, coll)
            out = self._commit(snap, lambda: model.replace_object(snap.state, coll, name, body),
                               expected, mode, req, {coll: {name}})
        return self._answer({"created": created, "name": name}, out)

    def delete_object(self, req: Request, path: dict[str, str]) -> Response:
        coll, name = self._coll(req), path["name"]
        mode = safe.write_mode(req.query)
        with self.engine.editing() as snap:
            if name not in getattr(snap.state, coll):
                raise ApiError(404, "not_found", f"no {KINDS[coll]} named {name[:80]!r}")
            refs = references(snap.state, coll, name)
            if refs:
                raise ApiError(409, "conflict",
                               f"{KINDS[coll]} {name!r} is still referenced by "
                               + ", ".join(refs[:10]), refs[0])
            out = self._commit(snap, lambda: model.remove_object(snap.state, coll, name),
                               (http.if_match(req), "If-Match"), mode, req, {coll: {name}})
        return self._answer({"deleted": name}, out)

    def stats(self, req: Request, path: dict[str, str]) -> Response:
        snap = self.engine.snapshot()
        body = self.backend.stats()
        return self._read(body, body.get("revision", snap.revision))

    def logs(self, req: Request, path: dict[str, str]) -> Response:
        q = params.log_query(req.query)
        snap = self.engine.snapshot()
        records = self.backend.logs(vm=q.vm, verdict=q.verdict, since=q.since, limit=q.limit)
        return self._read({"logs": records}, snap.revision)

    def trace(self, req: Request, path: dict[str, str]) -> Response:
        body = http.json_body(req)
        snap = self.engine.snapshot()
        t = params.trace_query(body, snap.state)
        if not snap.state.vms[t.vm].protected:
            result = {"verdict": "allow", "policy": None, "rule": None, "log": False,
                      "default": False, "unprotected": True}
        else:
            result = evaluate(snap.state, snap.effective[t.vm], t.direction, t.peer, t.proto,
                              t.port).as_dict()
        out = {"vm": t.vm, "direction": t.direction, "peer_ip": str(t.peer),
               "protocol": t.proto, "port": t.port, "model": result, "datapath": None}
        try:
            out["datapath"] = self.backend.trace_datapath(t.vm, t.direction, t.peer, t.proto,
                                                          t.port)
        except Exception as e:
            out["datapath"] = {"error": str(e)}
        return Response(200, out)

    def vm_connections(self, req: Request, path: dict[str, str]) -> Response:
        """A VM's live connections from its switch's connection table, filtered."""
        name = path["name"]
        snap = self.engine.snapshot()
        vm = snap.state.vms.get(name)
        if vm is None:
            raise ApiError(404, "not_found", f"no vm named {name[:80]!r}")
        q = params.conn_query(req.query)
        if not vm.protected:
            raise ApiError(409, "unprotected", f"vm {name!r} is unprotected: its traffic "
                           "bypasses the firewall and it has no connection table",
                           f"vms.{name}.protected")
        read = getattr(self.backend, "connections", None)
        found = read(name, q.peer, q.port, q.rule, q.limit) if read is not None else None
        if found is None:
            raise ApiError(503, "unavailable", f"the connection table of vm {name!r} cannot "
                           "be read here (the VM is on no local switch, or the datapath "
                           "did not answer)")
        body = {"vm": name, "zone": snap.ids.zone(name), **found}
        return self._read(body, snap.revision)

    def metrics(self, req: Request, path: dict[str, str]) -> Response:
        """The Prometheus text exposition, sent as it is."""
        render = getattr(self.backend, "metrics_text", None)
        if render is None:
            raise ApiError(503, "unavailable", "this controller serves no metrics")
        return Response.raw(200, render(), METRICS_CONTENT_TYPE)
