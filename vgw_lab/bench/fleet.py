"""The fleet bench: how fast a commit reaches agents, write throughput, and a leader kill.

    python -m vgw_lab.bench.fleet [--smoke]        # JSON on stdout, progress on stderr

On one machine (vgw_lab.fleet): 3 database members, 2 ``vgw-api``, 3 real agents, and
simulated agents (raw JSON-RPC ``monitor_cond`` clients, one socket each, in this
process):

* ``visible``: a write (PUT through the API, timed from its sending) until each simulated
  agent has the new ``Global.revision``; p50/p99 over writes x clients, N=100 and 1,000
  (``--smoke``: 20). The clients are served by one thread, so the tail includes this
  process reading 1,000 sockets one after the other.
* ``enforced``: a rule change until each real agent's bridge holds its flow (polled with
  ``ovs-ofctl dump-flows``: a flow in the dump is in the switch's tables).
* ``throughput``: small object writes per second through 1 and through 2 API servers
  (2 writers per server, keep-alive connections; a 503 is retried and counted).
* ``put_state``: a 1,000-VM ``PUT /v1/state`` (its answer, then every agent at that
  revision).
* ``leader_kill``: a stream of writes with request ids during which the leader gets
  SIGKILL and later comes back: the longest time without an acknowledged write, and
  how many acknowledged writes any member lacks at the end (must be 0).
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from vgw_lab import netlab
from vgw_lab.bench.monitors import MonitorClients
from vgw_lab.fleet import Fleet, default_workdir, vm_port
from vgw_lab.netlab import wait_until
from vgw_ryu.api.client import ApiError
from vgw_ryu.store.ovsdb import OvsdbStore


def say(msg: str) -> None:
    print(f"[fleet bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of ``values``."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def dist_ms(values: list[float]) -> dict[str, float]:
    """p50/p99/max in milliseconds of durations in seconds."""
    return {"p50_ms": round(pct(values, 50) * 1000, 1), "p99_ms": round(pct(values, 99) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1), "samples": len(values)}


def vm_body(i: int, **labels: str) -> dict[str, Any]:
    return {"mac": f"02:00:00:0d:{(i >> 8) & 255:02x}:{i & 255:02x}",
            "ips": [f"10.230.{(i >> 8) & 255}.{i & 255}"], "labels": labels}



def run_visible(fleet: Fleet, n: int, writes: int) -> dict[str, Any]:
    """Write -> visible at ``n`` simulated agents spread over the members."""
    remotes = [m.remote for m in fleet.members]
    clients = MonitorClients(remotes, n)
    api = fleet.api(0)
    try:
        rev = api.get("/v1/state")["revision"]
        wait_until(lambda: clients.all_at(rev) or clients.errors, timeout=60,
                   what=f"{n} simulated agents to have revision {rev}")
        assert not clients.errors, clients.errors[:5]
        lat: list[float] = []
        last: list[float] = []
        for k in range(writes):
            t0 = time.monotonic()
            answer = api.call("PUT", f"/v1/vms/vis-{k % 20}", vm_body(k % 20, n=f"{n}-{k}"))
            assert answer.get("changed", True), answer    # a no-op write commits nothing
            rev = answer["revision"]
            wait_until(lambda rev=rev: clients.all_at(rev) or clients.errors, timeout=60,
                       interval=0.005, what=f"{n} simulated agents at revision {rev}")
            assert not clients.errors, clients.errors[:5]
            seen = [t - t0 for t in clients.seen(rev)]
            lat += seen
            last.append(max(seen))
        out = {"clients": n, "writes": writes, **dist_ms(lat),
               "all_visible_p50_ms": round(statistics.median(last) * 1000, 1)}
        say(f"write -> visible at {n} simulated agents: p50 {out['p50_ms']} ms, "
            f"p99 {out['p99_ms']} ms (all of them: median {out['all_visible_p50_ms']} ms)")
        return out
    finally:
        clients.close()


# --- real agents -------------------------------------------------------------------------------
def setup_enforcement(fleet: Fleet) -> list[str]:
    """One protected VM per agent (an internal port on its bridge), one policy on them;
    returns the VM names."""
    api = fleet.api(0)
    names = []
    for i, a in enumerate(fleet.agents):
        name = f"enf-{i}"
        api.call("PUT", f"/v1/vms/{name}", {"mac": f"02:00:00:0c:00:{i + 1:02x}",
                                            "ips": [f"10.229.0.{i + 1}"]})
        vm_port(a.bridges[0], name, 1)
        names.append(name)
    rev = api.call("PUT", "/v1/policies/bench-enf", {
        "applied_to": [f"vm:{n}" for n in names], "rules": [
            {"id": "r", "direction": "ingress", "action": "allow", "protocol": "tcp",
             "ports": "20000"}]})["revision"]
    fleet.wait_agents(rev, timeout=60)
    return names


def _has(bridge: str, text: str) -> bool:
    return text in netlab.sh("ovs-ofctl", "-O", "OpenFlow13,OpenFlow14", "--no-stats",
                             "dump-flows", bridge)


def run_enforced(fleet: Fleet, vms: list[str], changes: int) -> dict[str, Any]:
    """A rule's port changes; until each agent's bridge holds a flow for the new port."""
    api = fleet.api(0)
    bridges = [a.bridges[0].name for a in fleet.agents]
    lat: list[float] = []
    for k in range(1, changes + 1):
        port = 20000 + k
        t0 = time.monotonic()
        done: dict[str, float] = {}

        def watch(br: str, done: dict[str, float] = done, port: int = port,
                  t0: float = t0) -> None:
            deadline = t0 + 30
            while time.monotonic() < deadline:
                if _has(br, f"tp_dst={port}"):
                    done[br] = time.monotonic() - t0
                    return
                time.sleep(0.002)

        threads = [threading.Thread(target=watch, args=(br,)) for br in bridges]
        for t in threads:
            t.start()
        api.call("PUT", "/v1/policies/bench-enf", {
            "applied_to": [f"vm:{n}" for n in vms], "rules": [
                {"id": "r", "direction": "ingress", "action": "allow", "protocol": "tcp",
                 "ports": str(port)}]})
        for t in threads:
            t.join()
        missing = [br for br in bridges if br not in done]
        assert not missing, f"port {port} not enforced on {missing} within 30 s"
        lat += list(done.values())
    out = {"agents": len(bridges), "changes": changes, **dist_ms(lat)}
    say(f"write -> enforced at {len(bridges)} agents: p50 {out['p50_ms']} ms, "
        f"p99 {out['p99_ms']} ms")
    return out


# --- throughput --------------------------------------------------------------------------------
def _writer(port: int, ids: itertools.count, lock: threading.Lock, until: float,
            counts: dict[str, int]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        while time.monotonic() < until:
            with lock:
                k = next(ids)
            body = json.dumps(vm_body(100 + k % 50, n=str(k))).encode()
            while True:
                try:
                    conn.request("PUT", f"/v1/vms/tp-{k % 50}", body,
                                 {"Content-Type": "application/json",
                                  "X-Request-Id": f"tp-{port}-{k}"})
                    r = conn.getresponse()
                    r.read()
                    status = r.status
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    status = None
                with lock:
                    if status == 200:
                        counts["ok"] += 1
                        break
                    counts["retried"] += 1
                    if status not in (None, 503):
                        counts["failed"] += 1
                        break
    finally:
        conn.close()


def run_throughput(fleet: Fleet, apis: int, seconds: float, writers: int = 2
                   ) -> dict[str, Any]:
    """Small writes (a VM's labels, 50 VMs in turn) per second through ``apis`` servers."""
    ids = itertools.count()
    lock = threading.Lock()
    counts = {"ok": 0, "retried": 0, "failed": 0}
    t0 = time.monotonic()
    until = t0 + seconds
    threads = [threading.Thread(target=_writer, args=(fleet.apis[w % apis].port, ids, lock,
                                                      until, counts))
               for w in range(writers * apis)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.monotonic() - t0
    out = {"api_servers": apis, "writers": writers * apis, "seconds": round(dt, 2),
           "writes": counts["ok"], "writes_per_s": round(counts["ok"] / dt, 1),
           "retried": counts["retried"], "failed": counts["failed"]}
    say(f"throughput through {apis} API server(s): {out['writes_per_s']} writes/s "
        f"({out['retried']} retried)")
    return out


def big_state(n: int, current: dict[str, Any], keep: list[str]) -> dict[str, Any]:
    """A state of ``n`` VMs: the VMs ``keep`` (and the policies of ``current``, minus
    any other VM) plus VMs in 10 tiers, each tier a group allowed in from the next."""
    vms = {name: current["vms"][name] for name in keep}
    for i in range(n - len(vms)):
        vms[f"big-{i}"] = {"mac": f"02:00:00:0b:{(i >> 8) & 255:02x}:{i & 255:02x}",
                           "ips": [f"10.228.{(i >> 8) & 255}.{i & 255}"],
                           "labels": {"tier": f"t{i % 10}"}}
    groups = dict(current.get("groups") or {})
    groups.update({f"tier-{t}": {"match_labels": {"tier": f"t{t}"}} for t in range(10)})
    policies = dict(current.get("policies") or {})
    policies["big"] = {"applied_to": [f"group:tier-{t}" for t in range(10)], "rules": [
        {"id": f"t{t}", "direction": "ingress", "action": "allow", "protocol": "tcp",
         "ports": str(8000 + t), "peer": f"group:tier-{(t + 1) % 10}"} for t in range(10)]}
    return {"settings": current.get("settings") or {}, "vms": vms, "groups": groups,
            "policies": policies}


def run_put_state(fleet: Fleet, n: int, keep: list[str]) -> dict[str, Any]:
    """PUT /v1/state of ``n`` VMs (replacing the bench's others): the answer, then every
    agent at that revision."""
    api = fleet.api(0, timeout=120)
    doc = big_state(n, api.get("/v1/state"), keep)
    before = len(api.get("/v1/vms")["vms"])
    t0 = time.monotonic()
    rev = api.call("PUT", "/v1/state", doc)["revision"]
    answered = time.monotonic() - t0
    fleet.wait_agents(rev, timeout=180)
    enforced = time.monotonic() - t0
    out = {"vms": len(doc["vms"]), "vms_before": before, "seconds": round(answered, 2),
           "enforced_seconds": round(enforced, 2)}
    say(f"PUT /v1/state of {out['vms']} VMs (over {before}): answered in {answered:.2f} s, "
        f"every agent at that revision after {enforced:.2f} s")
    return out


# --- leader kill -------------------------------------------------------------------------------
def run_leader_kill(fleet: Fleet, writes: int) -> dict[str, Any]:
    """Sequential writes alternating between the API servers, each retried with its own
    request id on 503/no answer; the leader is killed at 30% and restarted at 60%."""
    acks: list[tuple[int, int, float]] = []    # (write, revision, when acknowledged)
    events: dict[str, float] = {}
    failures: list[BaseException] = []
    stop = threading.Event()

    def chaos() -> None:
        try:
            wait_until(lambda: len(acks) >= writes * 0.3 or stop.is_set(), timeout=300)
            lead = fleet.wait_leader()
            events["kill"] = time.monotonic()
            fleet.kill_member(lead)
            fleet.wait_leader(exclude=lead)
            events["elected_s"] = time.monotonic() - events["kill"]
            wait_until(lambda: len(acks) >= writes * 0.6 or stop.is_set(), timeout=300)
            fleet.start_member(lead)
        except BaseException as e:
            failures.append(e)

    clients = [fleet.api(i, timeout=30) for i in range(len(fleet.apis))]
    th = threading.Thread(target=chaos, daemon=True)
    th.start()
    t0 = time.monotonic()
    retried = 0
    try:
        for i in range(writes):
            if i == int(writes * 0.4):
                # Fast writes could all be done before the leader is found and killed:
                # the rest of the stream must run through the outage.
                wait_until(lambda: "kill" in events or bool(failures), timeout=120,
                           what="the leader kill")
            tries = 0
            while True:
                c = clients[(i + tries) % len(clients)]
                tries += 1
                try:
                    status, body = c.request("PUT", f"/v1/vms/lk-{i}", vm_body(300 + i),
                                             headers={"X-Request-Id": f"lk-{fleet.tag}-{i}"})
                except ApiError:
                    status, body = None, None
                if status == 200:
                    acks.append((i, body["revision"], time.monotonic()))
                    break
                if status not in (None, 503) or time.monotonic() - t0 > 300:
                    raise RuntimeError(f"write {i}: {status} {body}")
                retried += 1
                time.sleep(0.05)
    finally:
        stop.set()
        th.join(timeout=60)
    if failures:
        raise failures[0]
    times = [t0] + [t for _, _, t in acks]
    kill = events["kill"]
    outage = max(b - a for a, b in itertools.pairwise(times) if b >= kill)
    final = max(r for _, r, _ in acks)
    lost = 0
    for m in fleet.members:
        s = OvsdbStore(m.remote, timeout=30)
        try:
            wait_until(lambda s=s: (s.poll(), s.revision())[1] >= final, timeout=60,
                       what=f"member {m.name} at revision {final}")
            vms = s.load().doc["vms"]
            lost = max(lost, sum(1 for i, _, _ in acks if f"lk-{i}" not in vms))
        finally:
            s.close()
    revs = [r for _, r, _ in acks]
    out = {"writes": writes, "retried": retried, "outage_s": round(outage, 2),
           "new_leader_s": round(events["elected_s"], 2), "acked_lost": lost,
           "revisions_unique": len(set(revs)) == len(revs)}
    say(f"leader kill: write outage {outage:.2f} s (new leader after "
        f"{events['elected_s']:.2f} s), {lost} acknowledged writes lost")
    return out


# --- command line ------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vgw_lab.bench.fleet",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="small sizes: well under a minute")
    ap.add_argument("--workdir", type=Path, help="where the fleet's files go "
                    "(default: a new temporary directory, removed afterwards)")
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("fleet bench: needs root (Open vSwitch)", file=sys.stderr)
        return 2
    print(json.dumps(run_fleet(a.smoke, a.workdir), indent=2))
    return 0


def run_fleet(smoke: bool, workdir: Path | None = None) -> dict[str, Any]:
    """The fleet section of make bench (``smoke``: small sizes)."""
    sizes = [20] if smoke else [100, 1000]
    writes = 5 if smoke else 20
    # 1,000 client sockets plus the fleet's own: more than the usual soft limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    subprocess.run([str(netlab.ROOT / "scripts" / "ovs-up.sh")], check=True,
                   stdout=subprocess.DEVNULL)
    r: dict[str, Any] = {"smoke": smoke, "machine": {"cpus": os.cpu_count()}}
    say("starting the fleet: 3 database members, 2 vgw-api, 3 agents")
    fleet = Fleet(workdir or default_workdir("vgw-fleet-bench-"), members=3, apis=2,
                  agents=3, api_args=["--db-timeout", "5"])
    fleet.start()
    try:
        r["visible"] = {str(n): run_visible(fleet, n, writes) for n in sizes}
        vms = setup_enforcement(fleet)
        r["enforced"] = run_enforced(fleet, vms, writes)
        secs = 2.0 if smoke else 10.0
        r["throughput"] = {f"apis_{k}": run_throughput(fleet, k, secs) for k in (1, 2)}
        r["leader_kill"] = run_leader_kill(fleet, 60 if smoke else 300)
        r["put_state"] = run_put_state(fleet, 1000, vms)
        r["warnings"] = fleet.warnings
    finally:
        problems = fleet.stop(remove_dir=workdir is None)
        if problems:
            say(f"teardown problems: {problems}")
    return r


if __name__ == "__main__":
    sys.exit(main())
