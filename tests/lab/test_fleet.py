"""A fleet under failure (issue #12): the leader member killed during a stream of writes,
a quorum lost and regained, an agent killed with -9 during traffic; real processes and
real traffic, on the fleet the fleet tests share (tests/lab/fleet_env.py, fixture
``env``).

The tests run in file order and build on each other's state (the chaos writes stay in
the database); each one states the revision it starts from. Waits are polls with
deadlines; the measured numbers (write outage, 503 time) are printed (``pytest -s``).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from tests.lab.fleet_env import (
    DB_TIMEOUT,
    N_WRITES,
    STREAM_PORT,
    Env,
    chaos_body,
    member_stores,
)
from vgw_lab.fleet import Fleet, durations, table_text
from vgw_lab.netlab import wait_until
from vgw_ryu.api.client import ApiError, Client

MAX_OUTAGE = 10.0         # seconds without an acknowledged write around the leader kill


# --- chaos: the leader is killed during a stream of writes --------------------------------
@dataclass
class Ack:
    i: int
    revision: int
    at: float          # monotonic time of the acknowledgment
    api: int
    tries: int


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
        # Back: the new process runs its bridge on this revision, and its row says so.
        # (The killed one's row alone looks the same for a second or two: fresh, in
        # sync, naming the bridge.)
        def back() -> bool:
            r = f.agent_rows()[agent.name]
            own = agent.ctl.get("/v1/switches")[1]["switches"]
            return [s["applied_revision"] for s in own] == [rev] and \
                r["applied_revision"] == rev and not r["stale"] and \
                r["heartbeat_age"] < 2 and br in r["bridges"]
        wait_until(back, timeout=30, what="the restarted agent to run its bridge's revision")
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
