"""Rule analysis reaches the user: in write and preview answers, and `vgwctl lint`."""

from __future__ import annotations

import json

from vgw_ryu import cli

STATE = {"vms": {"db": {"mac": "02:00:00:00:00:03", "ips": ["10.0.0.3"]}},
         "policies": {"p": {"applied_to": ["vm:db"], "rules": [
             {"id": "all", "direction": "ingress", "action": "deny", "priority": 300},
             {"id": "http", "direction": "ingress", "action": "allow", "protocol": "tcp",
              "ports": "80"}]}}}


def test_write_and_preview_answers_carry_warnings(make_api):
    api = make_api()
    s, body = api.request("PUT", "/v1/state?preview=impact", STATE)
    assert s == 200 and body["warnings"][0]["field"] == "policies.p.rules[1]"
    s, body = api.request("PUT", "/v1/state", STATE)
    assert s == 200 and [w["code"] for w in body["warnings"]] == ["shadowed"]
    clean = {**STATE, "policies": {"p": {**STATE["policies"]["p"],
                                         "rules": STATE["policies"]["p"]["rules"][1:]}}}
    s, body = api.request("PUT", "/v1/state", clean)
    assert s == 200 and "warnings" not in body


def test_lint_offline(tmp_path, capsys):
    f = tmp_path / "state.json"
    f.write_text(json.dumps(STATE))
    assert cli.main(["lint", str(f)]) == 0
    out = capsys.readouterr().out
    assert "policies.p.rules[1]: shadowed:" in out and "1 warning(s)" in out
    assert cli.main(["lint", "--strict", str(f)]) == 1
    f.write_text(json.dumps({"vms": {"x": {"ips": ["nope"]}}}))
    assert cli.main(["lint", str(f)]) == 1
    assert "vms.x.ips[0]" in capsys.readouterr().err
