"""A fleet under failure (issue #12): 3 database members, 2 vgw-api, 2 agents, real
processes and real traffic, one fleet for the whole module.

The tests run in file order and build on each other's state (the chaos writes stay in
the database); each one states the revision it starts from. Waits are polls with
deadlines; the measured numbers (write outage, 503 time) are printed (``pytest -s``).
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from vgw_lab import netlab
from vgw_lab.fleet import (
    Agent,
    Fleet,
    durations,
    table_text,
    vm_port,
    wait_compiled,
)
from vgw_lab.netlab import VENV_BIN, NsVm, free_port, wait_until
from vgw_ryu.api.client import ApiError, Client
from vgw_ryu.store.ovsdb import OvsdbStore

DB_TIMEOUT = 3.0          # vgw-api --db-timeout: a write without quorum answers 503 by then
N_WRITES = 500
MAX_OUTAGE = 10.0         # seconds without an acknowledged write around the leader kill
STREAM_PORT = 5001

BASE: dict[str, Any] = {
    "settings": {"default_ingress": "deny", "default_egress": "allow"},
    "vms": {
        "a": {"mac": "02:00:00:0f:00:01", "ips": ["10.241.0.1"], "labels": {"role": "srv"}},
        "b": {"mac": "02:00:00:0f:00:02", "ips": ["10.241.0.2"], "labels": {"role": "srv"}},
        "t1": {"mac": "02:00:00:0f:01:01", "ips": ["10.241.1.1"]},
        "t2": {"mac": "02:00:00:0f:01:02", "ips": ["10.241.1.2"]},
    },
    "groups": {"chaos": {"match_labels": {"role": "chaos"}}},
    "policies": {
        # Chaos writes add members to this group: they change both agents' flows.
        "srv": {"applied_to": ["vm:a", "vm:b"], "rules": [
            {"id": "ssh", "direction": "ingress", "action": "allow", "protocol": "tcp",
             "ports": "22", "peer": "group:chaos"}]},
        "stream": {"applied_to": ["vm:t2"], "rules": [
            {"id": "s", "direction": "ingress", "action": "allow", "protocol": "tcp",
             "ports": str(STREAM_PORT), "peer": "vm:t1"}]},
    },
}


@dataclass
class Env:
    fleet: Fleet
    t1: NsVm
    t2: NsVm
    work: Path

    def revision(self, api: int = 0) -> int:
        return int(self.fleet.api(api, timeout=10).get("/v1/state")["revision"])

    def all_bridges(self) -> Iterator[tuple[Agent, netlab.Bridge]]:
        for a in self.fleet.agents:
            for br in a.bridges:
                yield a, br

    def check_flows(self, revision: int) -> None:
        """Every bridge holds exactly the compiled flows of ``revision``."""
        remote = self.fleet.members[0].remote
        for a, br in self.all_bridges():
            wait_compiled(remote, a, br, revision, self.work)


@pytest.fixture(scope="module")
def env(ovs, tmp_path_factory) -> Iterator[Env]:
    work = tmp_path_factory.mktemp("fleet")
    fleet = Fleet(work / "fleet", members=3, apis=2, agents=2,
                  api_args=["--db-timeout", str(DB_TIMEOUT)])
    vms: list[NsVm] = []
    fleet.start()
    try:
        rev = fleet.api(0).call("PUT", "/v1/state", BASE)["revision"]
        a0, a1 = fleet.agents
        vm_port(a0.bridges[0], "a", 1)
        vm_port(a1.bridges[0], "b", 1)
        for name in ("t1", "t2"):
            spec = BASE["vms"][name]
            vm = netlab.make_vm(name, spec["mac"], spec["ips"])
            vms.append(vm)
            vm.attach(a1.bridges[0], {"vm-id": name})
        vms[1].serve(tcp=[STREAM_PORT])
        e = Env(fleet, vms[0], vms[1], work)
        fleet.wait_agents(rev)
        yield e
    finally:
        for vm in vms:
            netlab.delete_vm(vm)
        problems = fleet.stop()
        assert not problems, problems


@pytest.fixture(autouse=True)
def _logs_on_failure(request, env: Env) -> None:
    # conftest attaches these controllers' logs to a failing test's report.
    request.node._vgw_controllers = [a.ctl for a in env.fleet.agents]


def member_stores(fleet: Fleet, revision: int, timeout: float = 30) -> list[OvsdbStore]:
    """One replica per member (that member only), each at ``revision``."""
    stores = []
    try:
        for m in fleet.members:
            s = OvsdbStore(m.remote, timeout=timeout)
            stores.append(s)
            wait_until(lambda s=s: (s.poll(), s.revision())[1] == revision, timeout=timeout,
                       what=f"member {m.name} at revision {revision}")
    except BaseException:
        for s in stores:
            s.close()
        raise
    return stores


# --- chaos: the leader is killed during a stream of writes --------------------------------
@dataclass
class Ack:
    i: int
    revision: int
    at: float          # monotonic time of the acknowledgment
    api: int
    tries: int


def chaos_body(i: int) -> dict[str, Any]:
    # Every tenth VM joins the group the agents' policy names, so the stream changes
    # their flows too; the others cost the agents a recompile, not a flow change.
    return {"mac": f"02:00:00:0e:{i >> 8:02x}:{i & 0xff:02x}",
            "ips": [f"10.242.{i // 250}.{i % 250 + 1}"],
            "labels": {"role": "chaos" if i % 10 == 0 else "bulk"}}


def write_stream(fleet: Fleet, n: int, acks: list[Ack], tag: str,
                 deadline_s: float = 120, before: Any = None) -> None:
    """``n`` writes alternating between the API servers, one at a time; a 503 or no
    answer is retried with the same X-Request-Id (on the other server). ``before(i)``
    runs before write ``i`` (to keep the stream going through an event)."""
    clients = [fleet.api(i, timeout=DB_TIMEOUT + 10) for i in range(len(fleet.apis))]
    deadline = time.monotonic() + deadline_s
    for i in range(n):
        if before is not None:
            before(i)
        rid = f"{tag}-{i}"
        tries = 0
        while True:
            api = (i + tries) % len(clients)
            tries += 1
            try:
                status, body = clients[api].request("PUT", f"/v1/vms/chaos-{i}", chaos_body(i),
                                                    headers={"X-Request-Id": rid})
            except ApiError:
                status, body = None, None
            if status == 200:
                acks.append(Ack(i, int(body["revision"]), time.monotonic(), api, tries))
                break
            assert status in (None, 503), f"write {i}: {status} {body}"
            assert time.monotonic() < deadline, f"write {i} not acknowledged in time"
            time.sleep(0.05)   # back off a little before the retry


def test_chaos_leader_killed_mid_stream(env: Env) -> None:
    f = env.fleet
    r0 = env.revision()
    acks: list[Ack] = []
    events: dict[str, Any] = {}
    failures: list[BaseException] = []
    done = threading.Event()

    def chaos() -> None:
        try:
            wait_until(lambda: len(acks) >= N_WRITES * 0.3 or done.is_set(), timeout=120,
                       what="30% of the writes")
            lead = f.wait_leader()
            events["killed"] = lead.name
            events["kill_at"] = time.monotonic()
            f.kill_member(lead)
            new = f.wait_leader(exclude=lead)
            events["new_leader"] = new.name
            events["elected_s"] = time.monotonic() - events["kill_at"]
            # It stays down while writes go on, then catches up.
            wait_until(lambda: len(acks) >= N_WRITES * 0.6 or done.is_set(), timeout=120,
                       what="60% of the writes")
            f.start_member(lead)
            events["restart_at"] = time.monotonic()
        except BaseException as e:  # reported by the test thread
            failures.append(e)

    th = threading.Thread(target=chaos, daemon=True)
    th.start()
    t0 = time.monotonic()
    def pace(i: int) -> None:
        # Fast writes must not all be done before the kill (or the restart) happens.
        for at, event in ((0.4, "kill_at"), (0.8, "restart_at")):
            if i == int(N_WRITES * at):
                wait_until(lambda event=event: event in events or bool(failures),
                           timeout=120, what=event)

    try:
        write_stream(f, N_WRITES, acks, f"chaos{f.tag}", before=pace)
    finally:
        done.set()
        th.join(timeout=60)
    elapsed = time.monotonic() - t0
    assert not failures, failures
    assert "restart_at" in events, f"the leader was not killed and restarted: {events}"

    # The write outage: the longest time without an acknowledged write after the kill.
    kill = events["kill_at"]
    times = [t0] + [a.at for a in acks]
    outage = max(b - a for a, b in itertools.pairwise(times) if b >= kill)
    retried = sum(1 for a in acks if a.tries > 1)
    print(f"\nchaos: {N_WRITES} writes in {elapsed:.1f} s, {retried} retried; killed leader "
          f"{events['killed']}, new leader {events['new_leader']} after "
          f"{events['elected_s']:.1f} s; write outage {outage:.2f} s")
    assert outage < MAX_OUTAGE, f"write outage {outage:.1f} s"

    # Each acknowledged write is one revision: none lost, none applied twice.
    revs = sorted(a.revision for a in acks)
    assert revs == list(range(r0 + 1, r0 + N_WRITES + 1)), revs[:10]
    final = r0 + N_WRITES
    for api in (0, 1):   # the last write was acknowledged by one of them
        wait_until(lambda api=api: env.revision(api) == final, timeout=10,
                   what=f"api {api} at the final revision")

    # Every member (the restarted one too) holds every acknowledged write.
    stores = member_stores(f, final)
    try:
        by_rid = {f"client:chaos{f.tag}-{a.i}": a.revision for a in acks}
        for m, s in zip(f.members, stores, strict=True):
            vms = s.load().doc["vms"]
            missing = [i for i in range(N_WRITES)
                       if vms.get(f"chaos-{i}", {}).get("ips") != chaos_body(i)["ips"]]
            assert not missing, f"member {m.name} lacks writes {missing[:10]}"
            # The request ids it remembers (the newest 256) name the acknowledged revisions.
            requests = {k: v for k, v in dict(s._global().requests).items() if k in by_rid}
            assert requests and all(by_rid[k] == v for k, v in requests.items()), m.name
            assert len(set(requests.values())) == len(requests)
    finally:
        for s in stores:
            s.close()

    # Every agent runs the final revision, with exactly the compiled flows.
    f.wait_agents(final, timeout=60)
    f.wait_agents(final, timeout=10, api=1)
    env.check_flows(final)


# --- quorum loss: two of three members stopped --------------------------------------------
def test_quorum_loss_keeps_reads_and_flows_and_recovers(env: Env) -> None:
    f = env.fleet
    r0 = env.revision()
    f.wait_agents(r0)
    before = {br.name: table_text(br.name) for _, br in env.all_bridges()}
    ages = {br.name: durations(br.name) for _, br in env.all_bridges()}
    t_before = time.monotonic()
    lead = f.wait_leader()
    stopped = [m for m in f.members if m is not lead]
    for m in stopped:
        f.stop_member(m)
    t_lost = time.monotonic()
    try:
        # A write answers 503 within the timeout (plus slack for the HTTP round trip).
        rid = f"quorum{f.tag}"
        body = chaos_body(N_WRITES + 1)
        t = time.monotonic()
        status, answer = f.api(0, timeout=30).request(
            "PUT", "/v1/vms/after-quorum", body, headers={"X-Request-Id": rid})
        took = time.monotonic() - t
        print(f"\nquorum loss: write answered {status} after {took:.2f} s "
              f"(--db-timeout {DB_TIMEOUT:g})")
        assert status == 503, answer
        assert answer["error"]["code"] == "unavailable"
        assert took < DB_TIMEOUT + 2.0
        # Reads still answer, from the replica, at the last revision.
        for i in range(len(f.apis)):
            assert env.revision(i) == r0
            assert "chaos-0" in f.api(i).get("/v1/vms")["vms"]
        # Every API server and agent says the database is not connected.
        for url in [s.url for s in f.apis] + [a.url for a in f.agents]:
            wait_until(lambda url=url: not Client(url, timeout=5).get("/v1/health")
                       ["database"]["connected"], timeout=30,
                       what=f"{url} to report the database as not connected")
        print(f"quorum loss: every API server and agent reported the database not "
              f"connected {time.monotonic() - t_lost:.1f} s after the members stopped")
        health = f.api(1).get("/v1/health")
        assert health["status"] == "degraded"
        assert any(p["code"] == "database_unreachable" for p in health["problems"])
        # An agent restarted now (a rebooted hypervisor) starts from its copy of the
        # last policy instead of giving up.
        f.kill_agent(f.agents[0])
        f.restart_agent(f.agents[0])
        assert Client(f.agents[0].url, timeout=5).get("/v1/health")["revision"] == r0
        assert "enforcing revision" in f.agents[0].ctl.log_text()
        # The agents keep enforcing: the same flows, none re-added.
        for name, table in before.items():
            wait_until(lambda name=name, table=table: table_text(name) == table,
                       timeout=10, what=f"{name} to hold the same flows without quorum")
            now, waited = durations(name), time.monotonic() - t_before
            assert set(now) == set(ages[name])
            assert all(now[c] >= ages[name][c] + waited - 0.5 for c in now), \
                f"a flow of {name} was re-added without quorum"
    finally:
        for m in stopped:
            f.start_member(m)
    # Writes go through again (the same request id: applied once), agents catch up.
    t_back = time.monotonic()
    wait_until(lambda: f.api(1, timeout=DB_TIMEOUT + 10).request(
        "PUT", "/v1/vms/after-quorum", body, headers={"X-Request-Id": rid})[0] == 200,
        timeout=60, interval=0.2, what="a write to succeed after the quorum came back")
    print(f"quorum back: the retried write succeeded {time.monotonic() - t_back:.1f} s "
          "after the members were started again")
    assert env.revision(1) == r0 + 1
    wait_until(lambda: f.api(0).get("/v1/health")["database"]["connected"], timeout=30,
               what="api 0 connected again")
    f.wait_agents(r0 + 1, timeout=60)
    env.check_flows(r0 + 1)


# --- an agent killed with -9 while a TCP stream runs through its bridge -------------------
def test_agent_kill9_during_traffic_keeps_stream_and_flows(env: Env) -> None:
    f = env.fleet
    agent = f.agents[1]
    br = agent.bridges[0].name
    rev = env.revision()
    f.wait_agents(rev)
    wait_until(lambda: env.t1.probe("tcp", env.t2.ip4(), STREAM_PORT)["verdict"] == "allow",
               timeout=15, what="t1 -> t2 allowed")
    # A long stream: it is stopped once it has run well past the restart.
    stream = env.t1.stream(env.t2.ip4(), STREAM_PORT, seconds=120)
    lines: list[dict[str, Any]] = []

    def read() -> None:
        for ln in stream.stdout:
            lines.append(json.loads(ln))

    threading.Thread(target=read, daemon=True).start()
    try:
        wait_until(lambda: lines, timeout=15, what="the stream to run")
        table, ages, t_before = table_text(br), durations(br), time.monotonic()
        f.kill_agent(agent)
        f.restart_agent(agent)
        # Back: it reports this revision again, in sync, from a new process.
        wait_until(lambda: (lambda r: r["applied_revision"] == rev and not r["stale"]
                            and r["heartbeat_age"] < 2 and br in r["bridges"])(
                                f.agent_rows()[agent.name]),
                   timeout=30, what="the restarted agent to report its bridge's revision")
        own = agent.ctl.get("/v1/switches")[1]["switches"]
        assert [s["applied_revision"] for s in own] == [rev], own
        # No churn: the same flows, each older by the time that passed (none re-added).
        assert table_text(br) == table
        now, waited = durations(br), time.monotonic() - t_before
        assert set(now) == set(ages)
        readded = [c for c in now if now[c] < ages[c] + waited - 0.5]
        assert not readded, f"re-added after the restart: {readded[:5]}"
        # The same connection still carries data after the restart: new echoes come
        # back and it neither ended nor failed (the stream prints its error and exits).
        back, echoed = time.time(), lines[-1]["recv"]
        wait_until(lambda: lines[-1]["t"] > back + 1 and lines[-1]["recv"] > echoed,
                   timeout=15, what="the stream to go on after the restart")
        assert stream.poll() is None and not any(ln.get("done") for ln in lines), lines[-1]
        last = lines[-1]
        assert last["sent"] - last["recv"] <= 64 * 1024, last   # echoes keep up
    finally:
        stream.kill()
        stream.wait(timeout=10)
    log = agent.ctl.log_text()
    assert "Traceback" not in log, log[-3000:]


# --- the vgw-api HTTP adapter ---------------------------------------------------------------
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


# --- the fleet lab ------------------------------------------------------------------------------
def test_vgw_lab_run_fleet(env: Env) -> None:
    p = subprocess.run([str(VENV_BIN / "vgw-lab"), "run", "fleet"], capture_output=True,
                       text=True, timeout=300, cwd=str(netlab.ROOT))
    assert p.returncode == 0, p.stdout[-5000:] + p.stderr[-2000:]
    out = p.stdout
    assert "10 of 10 verdicts as expected" in out and "MISMATCH" not in out
    run = re.search(r"\[lab\] run (v\d{4}): bridges (\S+), (\S+), (\S+);", out)
    assert run, out[:2000]
    # Where everything runs: three members (one leader), two API servers, an agent per
    # hypervisor with its own bridge.
    where = out.split("[fleet] where everything runs:")[1]
    members = re.findall(r"member db\d: tcp:127\.0\.0\.1:\d+ \(raft \S+, (\w+)", where)
    assert sorted(members) == ["follower", "follower", "leader"], where[:2000]
    assert len(re.findall(r"api \d: http://127\.0\.0\.1:\d+", where)) == 2
    for br in run.group(2, 3, 4):
        assert f"agent {br}: OpenFlow" in where and f"bridges {br}" in where
    # Nothing of the run is left: its bridges, its database servers, its directory.
    assert not [b for b in netlab.sh("ovs-vsctl", "list-br").split()
                if b.startswith(run.group(1))]
    gone = subprocess.run(["pgrep", "-f", f"/{run.group(1)}/fleet/"], capture_output=True)
    assert gone.returncode == 1, gone.stdout
