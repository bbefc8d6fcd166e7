"""Policy scale: programming time and flows for 100 to 5,000 VMs next to the time
``ovs-ofctl --bundle add-flows`` takes for the very same flows on the same bridge (the
physical anchor), the controller's memory, the latency of one rule change at every size
(the REST answer, and from it to enforced), of a label change, a VM added and a burst of
ports at 1,000 VMs, and the compiler alone."""

from __future__ import annotations

import json
import math
import re
import socket
import statistics
import time
from pathlib import Path
from typing import Any

from vgw_lab import netlab
from vgw_lab.bench.common import say
from vgw_ryu.compiler import PortFacts, SwitchFacts, compile_switch
from vgw_ryu.policy.analysis import analyze
from vgw_ryu.policy.ids import Ids
from vgw_ryu.policy.model import parse_state, state_doc
from vgw_ryu.policy.ruleset import effective_rules
from vgw_ryu.runtime.connections import parse_dump
from vgw_ryu.runtime.ctlimits import vswitchd_socket
from vgw_ryu.runtime.impact import cuts
from vgw_ryu.runtime.ovstrace import parse

# Rule changes at sizes other than the one where every kind of change is measured.
OTHER_SIZE_CHANGES = 20


def scale_state(n: int, group_size: int = 100) -> dict[str, Any]:
    """n VMs in groups of group_size; one policy of 20 rules with group peers on all."""
    vms = {f"vm{i}": {"mac": f"02:01:{(i >> 16) & 255:02x}:{(i >> 8) & 255:02x}:"
                             f"{i & 255:02x}:01",
                      "ips": [f"10.{100 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"],
                      "labels": {"g": f"g{i // group_size}", "fleet": "yes"}}
           for i in range(n)}
    n_groups = max(1, math.ceil(n / group_size))
    groups = {f"g{g}": {"match_labels": {"g": f"g{g}"}} for g in range(n_groups)}
    groups["fleet"] = {"match_labels": {"fleet": "yes"}}
    rules = [{"id": f"r{r}", "direction": "ingress" if r % 2 == 0 else "egress",
              "action": "deny" if r % 5 == 4 else "allow", "protocol": "tcp",
              "ports": f"{2000 + 10 * r}-{2003 + 10 * r}",
              "peer": f"group:g{r % n_groups}"} for r in range(20)]
    return {"settings": {"default_ingress": "deny", "default_egress": "allow"},
            "vms": vms, "groups": groups,
            "policies": {"p": {"applied_to": ["group:fleet"], "rules": rules}}}


def run_compile(n: int = 1000) -> dict[str, Any]:
    """Compiler alone: 1,000 VMs x 20 rules, groups of 100 (the compile-time benchmark)."""
    state = parse_state(scale_state(n))
    ids = Ids()
    ids.sync(state)
    facts = SwitchFacts(tuple(PortFacts(i + 1, f"p{i}", "vm", f"vm{i}") for i in range(n)))
    t0 = time.perf_counter()
    flows = compile_switch(state, facts, ids)
    dt = time.perf_counter() - t0
    say(f"compile {n} VMs x 20 rules: {len(flows)} flows in {dt:.2f} s")
    t0 = time.perf_counter()
    warnings = analyze(state)
    da = time.perf_counter() - t0
    say(f"rule analysis of the same state: {len(warnings)} warnings in {da * 1000:.0f} ms")
    preview = run_preview(state, n_conns=10 * n)
    return {"vms": n, "rules": 20, "group_size": 100, "seconds": dt, "flows": len(flows),
            "flows_per_vm": len(flows) / n, "analysis_seconds": da,
            "analysis_warnings": len(warnings), "preview": preview}


def run_preview(state, n_conns: int) -> dict[str, Any]:
    """Impact preview's judging work: n_conns live connections over the VMs, judged
    under the state and under a candidate with one rule changed (as PUT ?preview=impact
    does after reading conntrack). The dump parse is included."""
    names = sorted(state.vms)
    lines = []
    for k in range(n_conns):
        vm = state.vms[names[k % len(names)]]
        peer = state.vms[names[(k * 7 + 1) % len(names)]]
        port = 2000 + 10 * ((k // 2) % 20)
        lines.append(f"tcp,orig=(src={peer.ips[0]},dst={vm.ips[0]},sport={30000 + k % 30000},"
                     f"dport={port}),reply=(src={vm.ips[0]},dst={peer.ips[0]},dport="
                     f"{30000 + k % 30000},sport={port}),zone={k % len(names) + 1},"
                     "protoinfo=(state=ESTABLISHED)")
    doc = state_doc(state)
    doc["policies"]["p"]["rules"][0]["action"] = "deny"   # the change being previewed
    new = parse_state(doc)
    t0 = time.perf_counter()
    entries = parse_dump("\n".join(lines))
    tables: dict[str, list] = {}
    for e in entries:
        tables.setdefault(names[e.zone - 1], []).append(e)
    result = cuts(state, new, effective_rules(state), effective_rules(new), tables)
    dt = time.perf_counter() - t0
    say(f"impact preview, {len(state.vms)} VMs with {n_conns} live connections: "
        f"{result['cut_total']} cut, {dt:.2f} s")
    return {"vms": len(state.vms), "connections": n_conns, "cut": result["cut_total"],
            "seconds": dt}


def _add_vm_ports(br: str, names: list[tuple[str, int]]) -> None:
    # Patch ports: cheap (no kernel device), with an ofport and external_ids like a VM's.
    for i in range(0, len(names), 200):
        cmd = ["ovs-vsctl"]
        for vm, ofport in names[i:i + 200]:
            port = f"s{ofport}{br[-6:]}"[:15]
            cmd += ["--", "add-port", br, port, "--", "set", "Interface", port, "type=patch",
                    f"options:peer=peer-{port}", f"ofport_request={ofport}",
                    f"external_ids:vm-id={vm}"]
        netlab.sh(*cmd, timeout=300)


def controller_memory(pid: int) -> dict[str, float]:
    """The process's resident memory now and at its peak (VmRSS, VmHWM), in MiB."""
    out = {}
    for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = ln.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[{"VmRSS": "rss_mib", "VmHWM": "peak_rss_mib"}[key]] = int(value.split()[0]) / 1024
    return out


SYNC_LOG = re.compile(r"revision (\d+) programmed: \+\d+ -\d+ flows \(\d+ total, (\d+) ms"
                      r"(?:: (?:switch read (\d+), )?compile (\d+), encode (\d+), "
                      r"switch (\d+))?")
SYNC_PARTS = ("read", "compile", "encode", "switch")


def logged_sync(log: str, rev: int) -> dict[str, float]:
    """Seconds the controller logged for programming revision ``rev`` (every switch,
    every sync of it): in all, and (controllers that say) per part: reading the switch,
    compiling and diffing, encoding, and the switch until its commit reply."""
    out = dict.fromkeys(("seconds", *SYNC_PARTS), 0.0)
    for m in SYNC_LOG.finditer(log):
        if int(m.group(1)) != rev:
            continue
        out["seconds"] += int(m.group(2)) / 1000
        for part, ms in zip(SYNC_PARTS, m.groups()[2:], strict=True):
            out[part] += int(ms or 0) / 1000
    return out


def ofctl_anchor(br: netlab.Bridge, path: Path) -> tuple[float, int]:
    """(seconds, flows): the bridge's flows, exactly as installed, taken out and put back
    by ``ovs-ofctl --bundle add-flows`` (timed: process start, parsing, encoding, one
    OpenFlow 1.4 bundle and its commit). The controller is not told, and needs not be:
    the flows come back with the same match and cookie, so what it recorded stays true."""
    text = netlab.sh("ovs-ofctl", "-O", "OpenFlow14", "--no-stats", "dump-flows", br.name,
                     timeout=600)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    path.write_text("\n".join(lines) + "\n")
    netlab.sh("ovs-ofctl", "-O", "OpenFlow14", "del-flows", br.name, timeout=600)
    t0 = time.monotonic()
    netlab.sh("ovs-ofctl", "-O", "OpenFlow14", "--bundle", "add-flows", br.name, str(path),
              timeout=600)
    dt = time.monotonic() - t0
    back = netlab.sh("ovs-ofctl", "-O", "OpenFlow14", "dump-aggregate", br.name, timeout=600)
    count = int(re.search(r"flow_count=(\d+)", back).group(1))
    if count != len(lines):
        raise RuntimeError(f"ovs-ofctl anchor on {br.name}: {count} flows back of {len(lines)}")
    return dt, len(lines)


def run_scale(sizes: list[int], changes: int, per_bridge: int, work: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"sizes": [], "change": None}
    ctl = netlab.Controller(work / "scale", extra_args=["--vgw-audit-interval", "0"])
    (work / "scale").mkdir(exist_ok=True)
    ctl.start()
    bridges: list[netlab.Bridge] = []
    try:
        for n in sizes:
            if bridges:
                # Each size starts from no VMs. Replacing the last size's VMs in one write
                # would flush every removed address in every zone in use (250 addresses x
                # 5,250 zones x 2 directions is 2.6 million flush messages per switch;
                # see README, Performance); what this section measures is programming.
                status, body = ctl.request("PUT", "/v1/state", {"vms": {}}, timeout=300)
                assert status == 200, body
                netlab.wait_until(lambda rev=body["revision"]: all(
                    s["applied_revision"] == rev for s in ctl.get("/v1/switches")[1]["switches"]),
                    timeout=300, interval=0.1, what="the previous size's VMs removed")
            for br in bridges:
                netlab.sh("ovs-vsctl", "--timeout=600", "--if-exists", "del-br", br.name,
                          check=False, timeout=600)
            bridges = []
            n_br = math.ceil(n / per_bridge)
            for b in range(n_br):
                br = netlab.make_bridge(ctl.of_port)
                bridges.append(br)
                members = [(f"vm{i}", i - b * per_bridge + 1)
                           for i in range(b * per_bridge, min(n, (b + 1) * per_bridge))]
                _add_vm_ports(br.name, members)
            netlab.wait_until(lambda k=n_br: ctl.get("/v1/health")[1]["switches"] == k,
                              timeout=60, what="bridges connected")
            doc = scale_state(n)
            t0 = time.monotonic()
            status, body = ctl.request("PUT", "/v1/state", doc, timeout=300)
            assert status == 200, body
            rev = body["revision"]
            t_answer = time.monotonic() - t0

            def done(n=n, n_br=n_br, rev=rev):
                sws = ctl.get("/v1/switches")[1]["switches"]
                return len(sws) == n_br and all(s["applied_revision"] == rev and
                                                len(s["vm_ports"]) > 0 for s in sws) and \
                    sum(len(s["vm_ports"]) for s in sws) == n
            netlab.wait_until(done, timeout=900, interval=0.05, what=f"{n} VMs programmed")
            dt = time.monotonic() - t0
            flows = sum(s["flows"] for s in ctl.get("/v1/switches")[1]["switches"])
            sync = logged_sync(ctl.log_text(), rev)
            sync_s = sync["seconds"]
            mem = controller_memory(ctl.proc.pid)
            say(f"scale {n} VMs x 20 rules on {n_br} bridge(s): {flows} flows "
                f"({flows / n:.1f}/VM), programmed in {dt:.2f} s (REST answered in "
                f"{t_answer:.2f} s; the controller's sync {sync_s:.2f} s: "
                + ", ".join(f"{k} {sync[k]:.2f}" for k in SYNC_PARTS) +
                f"); controller RSS {mem['rss_mib']:.0f} MiB (peak "
                f"{mem['peak_rss_mib']:.0f} MiB)")
            # The anchor, bridge by bridge as the controller programs them, after it.
            anchor_s = anchor_flows = 0
            for br in bridges:
                secs, count = ofctl_anchor(br, work / "scale" / f"{br.name}.flows")
                anchor_s += secs
                anchor_flows += count
            say(f"  ovs-ofctl --bundle add-flows of the same {anchor_flows} flows: "
                f"{anchor_s:.2f} s; programming / anchor = {dt / anchor_s:.1f}x "
                f"(the controller's sync alone: {sync_s / anchor_s:.1f}x)")
            out["sizes"].append({"vms": n, "bridges": n_br, "flows": flows,
                                 "flows_per_vm": flows / n, "seconds": dt,
                                 "rest_answer_s": t_answer, "sync_s": sync_s,
                                 "sync_parts_s": {k: sync[k] for k in SYNC_PARTS},
                                 "ofctl_seconds": anchor_s, "ofctl_flows": anchor_flows,
                                 "ofctl_ratio": dt / anchor_s,
                                 "sync_ofctl_ratio": sync_s / anchor_s, **mem})
            if n == 1000 or (n == sizes[-1] and out["change"] is None and n < 1000):
                out["change"] = out["sizes"][-1]["change"] = run_changes(
                    ctl, bridges[0], doc, changes)
                if n >= 200:   # a VM to move from g1 to g0
                    out["label_change"] = run_label_changes(ctl, bridges[0], doc,
                                                            min(changes, 100))
                out["vm_add"] = run_vm_adds(ctl, bridges[0], doc, changes)
                out["port_burst"] = run_port_burst(ctl, bridges[0], doc,
                                                   200 if n >= 1000 else 20)
            else:
                # The plot's change latency vs VMs; fewer changes keep the run short.
                out["sizes"][-1]["change"] = run_changes(ctl, bridges[0], doc,
                                                         min(changes, OTHER_SIZE_CHANGES))
        return out
    finally:
        # Controller first: a bridge it is still programming is slow to delete.
        ctl.stop()
        for br in bridges:
            netlab.sh("ovs-vsctl", "--timeout=600", "--if-exists", "del-br", br.name,
                      check=False, timeout=600)


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
        _add_vm_ports(br.name, [(name, ofport)])
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
