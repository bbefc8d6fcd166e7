"""GET /v1/switches?wait_revision=R on the Api with a stub backend, and vgwctl apply
--wait against a fake client: what is asked, what is refused, what is said. The real
waits (controller, vgw-api) are in tests/sandbox/test_wait_applied.py and
tests/lab/test_fleet_api.py."""

from __future__ import annotations

import pytest
import yaml

from tests.unit.test_cli import STATE, FakeClient, run
from vgw_ryu.api import applied


def test_a_wait_asks_the_backend_and_says_what_it_saw(api):
    api.backend.switches = 2
    s, body = api.get("/v1/switches?wait_revision=1&timeout=2.5")
    assert s == 200 and api.backend.waits == [(1, 2.5)]
    assert body["wait"]["applied"] is True and body["wait"]["revision"] == 1
    assert (body["wait"]["of"], body["wait"]["checked"]) == ("switches", 2)
    api.backend.wait_result = False
    assert api.get("/v1/switches?wait_revision=9")[1]["wait"]["applied"] is False
    assert api.backend.waits[-1] == (9, applied.DEFAULT_TIMEOUT)
    assert "wait" not in api.get("/v1/switches")[1]


@pytest.mark.parametrize("query,field", [
    ("wait_revision=abc", "wait_revision"), ("wait_revision=-1", "wait_revision"),
    ("wait_revision=%C2%B2", "wait_revision"),          # a superscript two: not ASCII
    ("wait_revision=" + "9" * 20, "wait_revision"),
    ("wait_revision=1&timeout=0", "timeout"), ("wait_revision=1&timeout=300.5", "timeout"),
    ("wait_revision=1&timeout=nan", "timeout"), ("wait_revision=1&timeout=inf", "timeout"),
    ("wait_revision=1&timeout=", "timeout"), ("timeout=5", "timeout")])
def test_bad_wait_parameters_are_400_naming_them(api, query, field):
    s, body = api.get(f"/v1/switches?{query}")
    assert s == 400 and body["error"]["field"] == field, body
    assert api.backend.waits == []


def test_waits_beyond_the_cap_are_503(api, monkeypatch):
    monkeypatch.setattr(applied, "MAX_WAITS", 0)
    s, body = api.get("/v1/switches?wait_revision=1")
    assert s == 503 and body["error"]["code"] == "unavailable"
    assert api.backend.waits == []


def test_wait_until_checks_until_done_or_the_deadline():
    seen = []
    assert applied.wait_until(lambda: len(seen) > 2, 5, sleep=seen.append) is True
    assert seen == [applied.POLL] * 3
    assert applied.wait_until(lambda: False, 0.01) is False


class WaitingClient(FakeClient):
    """A FakeClient whose GET /v1/switches?wait_revision=... answers ``waited``."""

    def __init__(self, waited):
        super().__init__()
        self.waited = waited

    def call(self, method, path, body=None, timeout=None):
        if path.startswith("/v1/switches?wait_revision="):
            self.gets.append(path)
            return {**self.answers["/v1/switches"], "wait": self.waited}
        return super().call(method, path, body)


def _apply(tmp_path, c, *extra):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump({**STATE, "vms": {**STATE["vms"],
                                                 "db1": {"ips": ["10.0.0.31"]}}}))
    return run(c, "apply", "-f", str(f), "--yes", *extra)


def test_apply_wait_says_where_it_is_enforced(tmp_path, capsys):
    c = WaitingClient({"revision": 5, "applied": True, "seconds": 0.12, "of": "switches",
                       "checked": 2})
    assert _apply(tmp_path, c, "--wait", "20") == 0
    assert c.gets[-1] == "/v1/switches?wait_revision=5&timeout=20"
    assert "enforced on 2 switch(es) in 0.12 s" in capsys.readouterr().out


def test_apply_wait_fails_naming_the_switches_behind(tmp_path, capsys):
    c = WaitingClient({"revision": 5, "applied": False, "seconds": 30, "of": "switches",
                       "checked": 2})
    assert _apply(tmp_path, c, "--wait") == 1
    err = capsys.readouterr().err
    assert "revision 5 not enforced everywhere within 30 s" in err
    assert "br-int (revision 4)" in err and "0000000000000100 (revision none yet)" in err


def test_apply_wait_with_nothing_to_enforce_it_fails(tmp_path, capsys):
    c = WaitingClient({"revision": 5, "applied": True, "seconds": 0.0, "of": "agents",
                       "checked": 0})
    assert _apply(tmp_path, c, "--wait") == 1
    assert "enforced nowhere yet: no live agent reports" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["0", "-1", "301", "nan", "inf", "soon"])
def test_apply_wait_bad_seconds_change_nothing(tmp_path, capsys, bad):
    c = WaitingClient({})
    with pytest.raises(SystemExit) as e:
        _apply(tmp_path, c, f"--wait={bad}")
    assert e.value.code == 2 and c.writes == [] and c.previews == []
    assert "--wait" in capsys.readouterr().err
