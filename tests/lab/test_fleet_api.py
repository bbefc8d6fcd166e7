"""The vgw-api HTTP adapter on a fleet (the one the fleet tests share,
tests/lab/fleet_env.py): bad input answered 400 naming the field, no listening off
loopback without a token, a token demanded for writes once it is set, and a wait for a
revision that answers once every agent runs it; the lab's agents keep their zones
apart."""

from __future__ import annotations

import re
import subprocess

from tests.lab.fleet_env import BASE, N_WRITES, Env, chaos_body, member_stores
from vgw_lab.fleet import ZONE_BLOCK
from vgw_lab.netlab import VENV_BIN, free_port, wait_until
from vgw_ryu.api.client import Client


def test_api_bad_input_is_400_naming_the_field_and_changes_nothing(env: Env) -> None:
    f = env.fleet
    rev = env.revision()
    c = f.api(1)
    cases = [
        ("PUT", "/v1/vms/bad-mac", {"mac": "not-a-mac", "ips": ["10.243.0.1"]}, {},
         "vms.bad-mac.mac"),
        ("PUT", "/v1/policies/bad-port", {"applied_to": ["vm:a"], "rules": [
            {"id": "x", "direction": "ingress", "action": "allow", "protocol": "tcp",
             "ports": "70000"}]}, {}, "policies.bad-port.rules[0].ports"),
        ("PUT", "/v1/vms/bad-id", chaos_body(N_WRITES + 2), {"X-Request-Id": "no spaces!"},
         "X-Request-Id"),
        ("PUT", "/v1/state", {**BASE, "revision": "seven"}, {}, "revision"),
    ]
    for method, path, body, headers, field in cases:
        status, answer = c.request(method, path, body, headers=headers)
        assert status == 400, (path, status, answer)
        assert answer["error"]["field"] == field, (path, answer)
    status, answer = c.request("PUT", "/v1/vms/bad-json", raw=b"{not json")
    assert status == 400 and answer["error"]["code"] == "invalid", answer
    # Nothing changed: the API servers and every member are at the same revision.
    assert env.revision(0) == env.revision(1) == rev
    stores = member_stores(f, rev, timeout=10)
    for s in stores:
        assert not {"bad-mac", "bad-id", "bad-json"} & set(s.load().doc["vms"])
        s.close()


def test_api_refuses_off_loopback_without_a_token(env: Env) -> None:
    p = subprocess.run([str(VENV_BIN / "vgw-api"), "--db", env.fleet.db_remote, "--listen",
                        f"0.0.0.0:{free_port()}"], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "refusing" in p.stderr and "token" in p.stderr, p.stderr


def test_api_with_a_token_answers_401_to_a_write_without_it(env: Env) -> None:
    f = env.fleet
    port = free_port()
    log = env.work / "token-api.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([str(VENV_BIN / "vgw-api"), "--db", f.db_remote, "--listen",
                                 f"127.0.0.1:{port}", "--token", "s3cret-token"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: Client(url, timeout=2).request("GET", "/v1/health")[0] == 200,
                   timeout=30, what="the token API server")
        rev = env.revision()
        status, answer = Client(url).request("PUT", "/v1/vms/no-token", chaos_body(9999))
        assert status == 401, answer
        status, answer = Client(url, "wrong").request("DELETE", "/v1/vms/chaos-0")
        assert status == 401, answer
        assert env.revision() == rev
        # Reads on loopback need no token; the right token writes.
        assert Client(url).get("/v1/state")["revision"] == rev
        assert Client(url, "s3cret-token").call("PUT", "/v1/vms/with-token",
                                                chaos_body(9998))["revision"] == rev + 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_api_wait_answers_once_every_agent_runs_the_revision(env: Env) -> None:
    f = env.fleet
    f.wait_agents(env.revision())
    s, b = f.api(1).request("PUT", "/v1/vms/wait-probe", chaos_body(N_WRITES + 7))
    assert s == 200, b
    rev = b["revision"]
    try:
        s, got = f.api(0, timeout=60).request(
            "GET", f"/v1/switches?wait_revision={rev}&timeout=30")
        assert s == 200 and got["wait"]["applied"] is True, got.get("wait")
        assert got["wait"]["of"] == "agents" and got["wait"]["checked"] >= 2
        agents = [a for a in got["agents"] if a["name"] in {x.name for x in f.agents}]
        assert len(agents) == 2 and all(a["applied_revision"] >= rev for a in agents)
        # No agent runs a later one yet: the wait ends at its timeout, saying so.
        s, later = f.api(0).request("GET", f"/v1/switches?wait_revision={rev + 50}"
                                           "&timeout=0.5")
        assert s == 200 and later["wait"]["applied"] is False
        assert later["wait"]["seconds"] >= 0.5
    finally:
        f.api(0).request("DELETE", "/v1/vms/wait-probe")


def test_each_agent_numbers_zones_in_a_range_of_its_own(env: Env) -> None:
    """The lab's "hypervisors" share one ovs-vswitchd, so one connection table: the
    agents' zones must not meet (equal zones would mix two VMs' connections, and one
    VM's deletion would flush the other's). Each agent's VMs and the zones its bridge's
    flows load lie in the range the lab gave it."""
    by_agent: list[set[int]] = []
    for a in env.fleet.agents:
        vms = Client(a.url, timeout=10).get("/v1/vms")["vms"]
        zones = {v["zone"] for v in vms.values() if v.get("zone") is not None}
        loaded = {int(z, 16) for br in a.bridges for z in re.findall(
            r"load:(0x[0-9a-f]+)->NXM_NX_REG6", " ".join(br.dump_flows("table=0")))}
        assert zones and loaded <= zones, (a.name, zones, loaded)
        first = a.index * ZONE_BLOCK + 1
        assert all(first <= z < first + ZONE_BLOCK for z in zones), (a.name, zones)
        by_agent.append(zones)
    assert not set.intersection(*by_agent), by_agent
