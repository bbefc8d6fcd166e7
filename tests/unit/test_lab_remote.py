"""vgw-lab --api: the lab's own objects only, checked before anything is built."""

from __future__ import annotations

from pathlib import Path

import pytest

from vgw_lab import remote, topology
from vgw_lab.remote import RemoteTarget, TargetError
from vgw_ryu.api.client import ApiError
from vgw_ryu.policy.model import parse_state

TOPOS = Path(__file__).resolve().parents[2] / "topologies"
DEFAULTS = remote.settings_of({})


class FakeApi:
    """The few calls RemoteTarget makes, against an in-memory state."""

    def __init__(self, state=None, token_ok=True, healthy=True):
        self.url = "http://ctl:8080"
        self.token = "t" if token_ok else None
        self.state = {"settings": dict(DEFAULTS), "vms": {}, "groups": {}, "policies": {},
                      "revision": 3, **(state or {})}
        self.token_ok, self.healthy = token_ok, healthy
        self.calls: list[tuple[str, str]] = []

    def call(self, method, path, body=None, headers=None, timeout=None):
        self.calls.append((method, path))
        if path == "/v1/health":
            if not self.healthy:
                raise ApiError(None, None, "cannot reach http://ctl:8080: refused")
            return {"status": "ok"}
        if path == "/v1/state" and method == "GET":
            return self.state
        if path == "/v1/state" and method == "PUT":
            self.state = {"vms": {}, "groups": {}, "policies": {}, **body,
                          "revision": self.state["revision"] + 1}
            self.state["settings"] = remote.settings_of(body)
            return {"revision": self.state["revision"]}
        kind, name = path.split("/")[2:4]
        assert method == "PUT"
        self.state[kind][name] = body
        self.state["revision"] += 1
        parse_state({k: v for k, v in self.state.items() if k != "revision"})
        return {"revision": self.state["revision"]}

    def request(self, method, path, body=None, headers=None):
        self.calls.append((method, path))
        if not self.token_ok:
            return 401, {"error": {"code": "unauthorized"}}
        kind, name = path.split("/")[2:4]
        if name not in self.state[kind]:
            return 404, None
        del self.state[kind][name]
        return 200, {}


def doc(name="three_tier"):
    return topology.load(TOPOS / f"{name}.yaml").state_document()


USER = {"vms": {"mine": {"mac": "02:aa:00:00:00:01", "ips": ["10.99.0.1"],
                         "labels": {"tier": "web"}}},
        "groups": {"web-users": {"match_labels": {"tier": "web"}}}}


def test_prefixed_renames_objects_references_members_and_label_keys():
    out = remote.prefixed(doc(), "lab-v1-")
    assert set(out["vms"]) == {f"lab-v1-{n}" for n in doc()["vms"]}
    assert out["vms"]["lab-v1-web1"]["labels"] == {"lab-v1/tier": "web"}
    for g in out["groups"].values():
        assert all(k.startswith("lab-v1/") for k in g.get("match_labels", {}))
        assert all(m.startswith("lab-v1-") for m in g.get("members", []))
    for p in out["policies"].values():
        assert all(a.split(":")[1].startswith("lab-v1-") for a in p["applied_to"])
        for r in p["rules"]:
            if r.get("peer", "any").startswith(("vm:", "group:")):
                assert r["peer"].split(":")[1].startswith("lab-v1-")
    assert "settings" not in out
    # Together with the user's objects it is a valid state, and the user's label group
    # selects none of the lab's VMs.
    parse_state({**USER, "vms": {**USER["vms"], **out["vms"]},
                 "groups": {**USER["groups"], **out["groups"]}, "policies": out["policies"]})


def test_prepare_apply_remove_touch_only_the_labs_objects():
    api = FakeApi(USER)
    t = RemoteTarget(api, "lab-v1-")
    t.prepare(doc())
    assert not [c for c in api.calls if c[0] == "PUT"]  # checks write nothing
    t.apply()
    assert ("PUT", "/v1/state") not in api.calls  # never the whole state
    assert api.state["vms"]["mine"] == USER["vms"]["mine"]
    assert len(api.state["vms"]) == 7
    t.remove()
    assert {k: api.state[k] for k in ("vms", "groups", "policies")} == \
        {"vms": USER["vms"], "groups": USER["groups"], "policies": {}}


def test_records_each_object_as_written():
    seen = []
    t = RemoteTarget(FakeApi(), "lab-v1-", record=lambda c: seen.append(len(c)))
    t.prepare(doc("quickstart"))
    t.apply()
    assert seen == [1, 2, 3, 4, 5]
    t.remove()
    assert seen[-1] == 0


def test_different_settings_are_refused_on_a_state_the_lab_did_not_create():
    api = FakeApi({**USER, "settings": {**DEFAULTS, "default_egress": "deny"}})
    with pytest.raises(TargetError, match=r"default_egress: lab 'allow', controller 'deny'"):
        RemoteTarget(api, "lab-v1-").prepare(doc())
    assert not [c for c in api.calls if c[0] in ("PUT", "DELETE") and "check" not in c[1]]


def test_an_empty_controller_gets_the_labs_settings_and_its_own_back():
    api = FakeApi({"settings": {**DEFAULTS, "default_egress": "deny"}})
    t = RemoteTarget(api, "lab-v1-")
    t.prepare(doc())
    t.apply()
    assert api.state["settings"]["default_egress"] == "allow"
    t.remove()
    assert api.state["settings"]["default_egress"] == "deny"
    assert not api.state["vms"]


@pytest.mark.parametrize("state,message", [
    ({"vms": {"x": {"mac": "02:aa:00:00:00:09", "ips": ["10.50.0.11"]}}},
     "lab-v1-web1: IP 10.50.0.11 is already VM x's"),
    ({"vms": {"lab-v1-web1": {"ips": ["10.99.9.9"]}}}, "vms/lab-v1-web1 exists"),
])
def test_clashes_are_refused(state, message):
    with pytest.raises(TargetError, match=message):
        RemoteTarget(FakeApi(state), "lab-v1-").prepare(doc())


def test_access_problems_name_the_fix():
    with pytest.raises(TargetError, match="needs a token: pass --token TOKEN or set VGW_TOKEN"):
        RemoteTarget(FakeApi(token_ok=False), "p-").prepare(doc())
    with pytest.raises(TargetError, match=r"no vgw_ryu API at http://ctl:8080.*--api"):
        RemoteTarget(FakeApi(healthy=False), "p-").prepare(doc())
