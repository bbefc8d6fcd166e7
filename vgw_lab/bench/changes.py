"""One change at a time on a programmed controller: the REST answer of each write (a
rule, a VM's label, a new VM) and the time from it until ``ofproto/trace`` shows the
change enforced, and a burst of ports plugged at once. Used by the scale section."""

from __future__ import annotations

import json
import math
import re
import socket
import statistics
import time
from typing import Any

from vgw_lab import netlab
from vgw_lab.bench.common import say
from vgw_ryu.runtime.ctlimits import vswitchd_socket
from vgw_ryu.runtime.ovstrace import parse


def add_vm_ports(br: str, names: list[tuple[str, int]]) -> None:
    """VM ports on ``br``: (VM name, ofport) each."""
    # Patch ports: cheap (no kernel device), with an ofport and external_ids like a VM's.
    for i in range(0, len(names), 200):
        cmd = ["ovs-vsctl"]
        for vm, ofport in names[i:i + 200]:
            port = f"s{ofport}{br[-6:]}"[:15]
            cmd += ["--", "add-port", br, port, "--", "set", "Interface", port, "type=patch",
                    f"options:peer=peer-{port}", f"ofport_request={ofport}",
                    f"external_ids:vm-id={vm}"]
        netlab.sh(*cmd, timeout=300)


def _p50_p99(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return statistics.median(values), values[min(len(values) - 1,
                                                 math.ceil(0.99 * len(values)) - 1)]


def _percentiles(lat: list[float], rest: list[float]) -> dict[str, Any]:
    """p50/p99 of the REST answer to enforced (``lat``) and of the REST answers
    themselves (``rest``: request sent to answer read), ms."""
    p50, p99 = _p50_p99(lat)
    rest_p50, rest_p99 = _p50_p99(rest)
    return {"changes": len(lat), "p50_ms": p50, "p99_ms": p99, "all_ms": sorted(lat),
            "rest_p50_ms": rest_p50, "rest_p99_ms": rest_p99, "rest_all_ms": sorted(rest)}


def _said(what: str, res: dict[str, Any]) -> dict[str, Any]:
    say(f"{what} at {res['vms']:,} VMs, {res['changes']} writes: REST answer p50 "
        f"{res['rest_p50_ms']:.0f} ms, p99 {res['rest_p99_ms']:.0f} ms; enforced after "
        f"the answer p50 {res['p50_ms']:.0f} ms, p99 {res['p99_ms']:.0f} ms")
    return res


def _vm_flow(vms: dict, src: str, dst: str, src_port: int) -> str:
    """A TCP SYN from ``src`` (on ofport ``src_port``) to ``dst``, as ofproto/trace reads
    it, with the destination port left as ``{}``."""
    return ("in_port={},tcp,dl_src={},dl_dst={},nw_src={},nw_dst={},tp_src=40000,"
            "tp_dst={}").format(src_port, vms[src]["mac"], vms[dst]["mac"],
                                vms[src]["ips"][0], vms[dst]["ips"][0], "{}")


class Tracer:
    """``ofproto/trace`` over one connection to ovs-vswitchd's unixctl socket (JSON-RPC).
    An ``ovs-appctl`` process per poll costs ~5 ms of CPU: a tight poll took a core of
    the box from the controller and the switch being measured. This costs ~0.1 ms here
    (and the trace itself, ~0.3 ms in ovs-vswitchd, as before)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(30)
        self.sock.connect(vswitchd_socket())
        self.n = 0

    def trace(self, bridge: str, flow: str) -> str:
        """The trace's text (as ``ovs-appctl ofproto/trace`` prints it), two ct passes."""
        self.n += 1
        self.sock.sendall(json.dumps({"method": "ofproto/trace", "id": self.n, "params": [
            bridge, flow, "--ct-next", "trk,new", "--ct-next", "trk,new"]}).encode())
        buf = b""
        while True:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise RuntimeError("ovs-vswitchd closed its unixctl connection")
            buf += chunk
            if buf.rstrip().endswith(b"}"):
                try:
                    answer = json.loads(buf)
                    break
                except ValueError:   # a "}" inside the text, more to come
                    continue
        if answer.get("error") is not None:
            raise RuntimeError(f"ofproto/trace {flow}: {answer['error']}")
        return str(answer.get("result") or "")

    def close(self) -> None:
        self.sock.close()


# Between traces: the trace runs in ovs-vswitchd's main thread, the one taking the
# controller's flow mods, so a poll with no pause would slow what it measures.
POLL_PAUSE_S = 0.002


def _enforced_ms(br: netlab.Bridge, flow: str, since: float, what: str) -> float:
    """Poll ofproto/trace until ``flow`` is allowed by both stages (two commits: the
    source's egress and the destination's ingress); ms since ``since``. The VM ports are
    patch ports with no peer, so nothing is output: the commits are the verdict, and no
    port map is needed (ovstrace.trace's dpif/show)."""
    tracer = Tracer()
    try:
        while (commits := parse(text := tracer.trace(br.name, flow), {}).commits) < 2:
            if time.monotonic() - since > 30:
                raise RuntimeError(f"{what} was never enforced ({commits} commits):\n"
                                   f"{text[-3000:]}")
            time.sleep(POLL_PAUSE_S)
        return (time.monotonic() - since) * 1000
    finally:
        tracer.close()


def _timed_write(ctl: netlab.Controller, path: str, body: dict, br: netlab.Bridge,
                 flow: str, what: str) -> tuple[float, float]:
    """PUT ``body`` at ``path``: (ms the REST answer took, request sent to answer read;
    ms from the answer until ofproto/trace shows ``flow`` allowed). Then waits, untimed,
    for every switch to apply the write, so the next one starts on a quiet controller
    (with several bridges, the traced one may be programmed before the others)."""
    t0 = time.monotonic()
    status, answer = ctl.request("PUT", path, body)
    t_ans = time.monotonic()
    assert status == 200, answer
    enforced = _enforced_ms(br, flow, t_ans, what)
    rev = answer["revision"]
    netlab.wait_until(lambda: all(s["applied_revision"] is not None and
                                  s["applied_revision"] >= rev
                                  for s in ctl.get("/v1/switches")[1]["switches"]),
                      timeout=120, interval=0.05, what=f"{what} applied on every switch")
    return (t_ans - t0) * 1000, enforced


def _rule0_port(ctl: netlab.Controller) -> int:
    """The destination port rule r0 (ingress to every VM from group g0) allows now."""
    rules = ctl.get("/v1/policies/p")[1]["rules"]
    return int(str(next(r for r in rules if r["id"] == "r0")["ports"]).split("-")[0])


def run_changes(ctl: netlab.Controller, br: netlab.Bridge, doc: dict, changes: int
                ) -> dict[str, Any]:
    """Change one rule's port (PUT /v1/policies/p): the REST answer's time, and from the
    answer until ofproto/trace allows it."""
    vms = doc["vms"]
    # vm1 is in g0, the peer group of rule r0 (ingress to vm0)
    flow = _vm_flow(vms, "vm1", "vm0", 2)
    policy = doc["policies"]["p"]
    lat, rest = [], []
    for k in range(changes):
        port = 30000 + k
        rules = [dict(r) for r in policy["rules"]]
        rules[0]["ports"] = str(port)
        ans, enf = _timed_write(ctl, "/v1/policies/p", {**policy, "rules": rules}, br,
                                flow.format(port), "a rule change")
        rest.append(ans)
        lat.append(enf)
        say(f"change {k + 1}/{changes}: REST answer {ans:.0f} ms, enforced {enf:.0f} ms "
            "after it")
    return _said("rule change", {"vms": len(vms), **_percentiles(lat, rest)})


def run_label_changes(ctl: netlab.Controller, br: netlab.Bridge, doc: dict, changes: int
                      ) -> dict[str, Any]:
    """Move a VM from group g1 to g0 by its label (it leaves the peers of g1's rules and
    joins those of g0's); time from the REST answer until its connection to vm0 on rule
    r0's port is allowed."""
    vms = doc["vms"]
    port = _rule0_port(ctl)
    lat, rest = [], []
    for k in range(changes):
        i = 100 + k    # vm100.. are in g1 (groups of 100)
        name = f"vm{i}"
        vm = {**vms[name], "labels": {**vms[name]["labels"], "g": "g0"}}
        vms[name] = vm
        ans, enf = _timed_write(ctl, f"/v1/vms/{name}", vm, br,
                                _vm_flow(vms, name, "vm0", i + 1).format(port),
                                "a label change")
        rest.append(ans)
        lat.append(enf)
        say(f"label change {k + 1}/{changes}: REST answer {ans:.0f} ms, enforced "
            f"{enf:.0f} ms after it")
    return _said("label change", {"vms": len(vms), **_percentiles(lat, rest)})


def _new_vm(k: int) -> dict[str, Any]:
    return {"mac": f"02:02:00:00:{(k >> 8) & 255:02x}:{k & 255:02x}",
            "ips": [f"10.250.{(k >> 8) & 255}.{k & 255}"], "labels": {"g": "g0", "fleet": "yes"}}


def run_vm_adds(ctl: netlab.Controller, br: netlab.Bridge, doc: dict, changes: int
                ) -> dict[str, Any]:
    """A new VM (in group g0, under the fleet policy) whose port is already plugged:
    time from the REST answer until its connection to vm0 on r0's port is allowed (its
    own flows, its rules' zones and g0's peers all changed)."""
    vms = doc["vms"]
    port = _rule0_port(ctl)
    first = max(len(vms), 1000) + 1
    lat, rest = [], []
    for k in range(changes):
        name, ofport = f"new{k}", first + k
        add_vm_ports(br.name, [(name, ofport)])
        time.sleep(1.0)   # the port is seen and the switch settled (it revalidates)
        vm = _new_vm(k)
        vms[name] = vm
        ans, enf = _timed_write(ctl, f"/v1/vms/{name}", vm, br,
                                _vm_flow(vms, name, "vm0", ofport).format(port), "a new VM")
        rest.append(ans)
        lat.append(enf)
        say(f"VM add {k + 1}/{changes}: REST answer {ans:.0f} ms, enforced {enf:.0f} ms "
            "after it")
    return _said("VM add", {"vms": len(vms), **_percentiles(lat, rest)})


def run_port_burst(ctl: netlab.Controller, br: netlab.Bridge, doc: dict, n: int = 200
                   ) -> dict[str, Any]:
    """n VMs declared first, then their n ports plugged in one OVSDB transaction: time
    until every one is programmed and the last one enforced, and how many syncs it took."""
    vms = doc["vms"]
    port = _rule0_port(ctl)
    base = 10_000
    news = {f"burst{k}": _new_vm(base + k) for k in range(n)}
    now = {k: v for k, v in ctl.get("/v1/state")[1].items() if k != "revision"}
    status, body = ctl.request("PUT", "/v1/state", {**now, "vms": {**now["vms"], **news}},
                               timeout=300)
    assert status == 200, body
    rev = body["revision"]
    netlab.wait_until(lambda: all(s["applied_revision"] == rev for s in
                                  ctl.get("/v1/switches")[1]["switches"]),
                      timeout=120, interval=0.05, what="the burst's VMs declared")
    vms.update(news)
    first = max(p for s in ctl.get("/v1/switches")[1]["switches"]
                for p in [v["ofport"] for v in s["vm_ports"]]) + 1
    names = [(name, first + k) for k, name in enumerate(news)]
    logged = ctl.log_text().count(" programmed: ")
    runs = _sync_runs(ctl)
    before = sum(len(s["vm_ports"]) for s in ctl.get("/v1/switches")[1]["switches"])
    cmd = ["ovs-vsctl"]
    for vm, ofport in names:
        p = f"b{ofport}{br.name[-6:]}"[:15]
        cmd += ["--", "add-port", br.name, p, "--", "set", "Interface", p, "type=patch",
                f"options:peer=peer-{p}", f"ofport_request={ofport}", f"external_ids:vm-id={vm}"]
    netlab.sh(*cmd, timeout=300)
    t0 = time.monotonic()
    # Traces only: polling the REST API would load the controller being measured.
    (last, last_port), (one, one_port) = names[-1], names[0]
    ms = _enforced_ms(br, _vm_flow(vms, last, "vm0", last_port).format(port), t0,
                      f"{n} ports at once")
    ms = max(ms, _enforced_ms(br, _vm_flow(vms, one, "vm0", one_port).format(port), t0,
                              f"{n} ports at once"))
    time.sleep(1.0)   # syncs still under way count too
    syncs = ctl.log_text().count(" programmed: ") - logged
    runs = _sync_runs(ctl) - runs
    seen = sum(len(s["vm_ports"]) for s in ctl.get("/v1/switches")[1]["switches"])
    assert seen == before + n, f"{seen - before} of {n} new VM ports seen"
    say(f"{n} VM ports at once: the first and last enforced {ms:.0f} ms after ovs-vsctl "
        f"returned, in {syncs} sync(s) that changed flows ({runs} syncs in all)")
    return {"ports": n, "enforced_ms": ms, "syncs": syncs, "sync_runs": runs}


def _sync_runs(ctl: netlab.Controller) -> int:
    """How many switch syncs the controller ran so far, flows changed or not (/metrics)."""
    status, text = ctl.request("GET", "/metrics")
    text = text.decode() if isinstance(text, bytes) else str(text)
    m = re.search(r"^vgw_sync_seconds_count(?:\{[^}]*\})? ([0-9.e+]+)$", text, re.M)
    return int(float(m.group(1))) if status == 200 and m else -1


def run_mass_delete(ctl: netlab.Controller, n: int) -> dict[str, Any]:
    """n VMs deleted in one write: time from the answer until every switch runs the
    revision (their addresses flushed from every zone in use first), and the flush
    messages the controller logged (sent, and what flushing every zone would be)."""
    now = {k: v for k, v in ctl.get("/v1/state")[1].items() if k != "revision"}
    gone = sorted(now["vms"])[:n]
    logged = len(ctl.log_text())
    t0 = time.monotonic()
    status, body = ctl.request("PUT", "/v1/state", {
        **now, "vms": {k: v for k, v in now["vms"].items() if k not in gone}}, timeout=300)
    assert status == 200, body
    t_answer = time.monotonic() - t0
    rev = body["revision"]
    netlab.wait_until(lambda: all(s["applied_revision"] == rev for s in
                                  ctl.get("/v1/switches")[1]["switches"]),
                      timeout=900, interval=0.05, what=f"{n} VMs deleted")
    dt = time.monotonic() - t0
    log = ctl.log_text()[logged:]
    m = re.search(r"(\d+) message\(s\) for the entries the table holds, instead of (\d+)", log)
    sent, brute = (int(m.group(1)), int(m.group(2))) if m else (None, None)
    say(f"{n} VMs deleted in one write: every switch on the new revision {dt:.2f} s after "
        f"the write (answer {t_answer:.2f} s); flush messages sent {sent} (every zone: "
        f"{brute})")
    return {"vms": n, "seconds": dt, "rest_answer_s": t_answer, "flush_messages": sent,
            "flush_messages_every_zone": brute}
