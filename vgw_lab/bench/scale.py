"""Policy scale: programming time and flows for 100 to 5,000 VMs next to the time
``ovs-ofctl --bundle add-flows`` takes for the very same flows on the same bridge (the
physical anchor), the controller's memory, the latency of one rule change at every size
(the REST answer, and from it to enforced), of a label change, a VM added and a burst of
ports at 1,000 VMs, and the compiler alone."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vgw_lab import netlab
from vgw_lab.bench.changes import (
    add_vm_ports,
    run_changes,
    run_label_changes,
    run_mass_delete,
    run_port_burst,
    run_vm_adds,
)
from vgw_lab.bench.common import say
from vgw_ryu.compiler import PortFacts, SwitchFacts, compile_switch
from vgw_ryu.policy.analysis import analyze
from vgw_ryu.policy.ids import Ids
from vgw_ryu.policy.model import parse_state, state_doc
from vgw_ryu.policy.ruleset import effective_rules
from vgw_ryu.runtime.connections import parse_dump
from vgw_ryu.runtime.impact import cuts

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


def ports_settled(ctl: netlab.Controller, ports: int) -> Callable[[], bool]:
    """A check: every switch on the current revision with all ``ports`` classified (as
    anything: before the VMs are declared their ports count as uplinks), and
    the switches' flow counts the same as at the previous check (no sync under way)."""
    last: list[int] = []

    def check() -> bool:
        rev = ctl.get("/v1/health")[1]["revision"]
        sws = ctl.get("/v1/switches")[1]["switches"]
        seen = sum(len(s["vm_ports"]) + len(s["uplinks"]) + len(s["unknown_ports"])
                   for s in sws)
        flows = [s["flows"] for s in sws]
        steady = flows == last
        last[:] = flows
        return seen == ports and steady and all(s["applied_revision"] == rev for s in sws)
    return check


def _all_there(sws: list[dict[str, Any]], n: int, n_br: int, rev: int) -> bool:
    """All ``n_br`` switches on revision ``rev``, with ``n`` VM ports between them."""
    return len(sws) == n_br and all(s["applied_revision"] == rev and len(s["vm_ports"]) > 0
                                    for s in sws) and sum(len(s["vm_ports"]) for s in sws) == n


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
                # 5,250 zones x 2 directions is 2.5 million flush messages per switch;
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
                add_vm_ports(br.name, members)
            netlab.wait_until(lambda k=n_br: ctl.get("/v1/health")[1]["switches"] == k,
                              timeout=60, what="bridges connected")
            # Timed from a quiet controller: every port seen and its flows programmed
            # (5,000 ports plugged just before were still being synced when the write
            # came, and their syncs were timed as part of programming).
            netlab.wait_until(ports_settled(ctl, n), timeout=300, interval=0.25,
                              what="the bridges' ports seen and programmed")
            doc = scale_state(n)
            t0 = time.monotonic()
            status, body = ctl.request("PUT", "/v1/state", doc, timeout=300)
            assert status == 200, body
            rev = body["revision"]
            t_answer = time.monotonic() - t0

            def done(n=n, n_br=n_br, rev=rev):
                return _all_there(ctl.get("/v1/switches")[1]["switches"], n, n_br, rev)
            # One request that answers when every switch runs the revision (the server
            # checks every 5 ms): polling GET /v1/switches instead added half its interval
            # to the time on average and took the controller's CPU (13 ms a poll at
            # 5,000 VMs). Polled as before only if the ports are not all in yet.
            status, waited = ctl.request("GET", f"/v1/switches?wait_revision={rev}"
                                                "&timeout=300", timeout=330)
            assert status == 200 and waited["wait"]["applied"], waited
            if not _all_there(waited["switches"], n, n_br, rev):
                netlab.wait_until(done, timeout=900, interval=max(0.05, n / 20_000),
                                  what=f"{n} VMs programmed")
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
            after = dt - t_answer
            say(f"  ovs-ofctl --bundle add-flows of the same {anchor_flows} flows: "
                f"{anchor_s:.2f} s; programming / anchor = {dt / anchor_s:.1f}x "
                f"(from the REST answer: {after / anchor_s:.1f}x; the controller's sync "
                f"alone: {sync_s / anchor_s:.1f}x)")
            out["sizes"].append({"vms": n, "bridges": n_br, "flows": flows,
                                 "flows_per_vm": flows / n, "seconds": dt,
                                 "rest_answer_s": t_answer, "sync_s": sync_s,
                                 "sync_parts_s": {k: sync[k] for k in SYNC_PARTS},
                                 "ofctl_seconds": anchor_s, "ofctl_flows": anchor_flows,
                                 "ofctl_ratio": dt / anchor_s,
                                 "after_answer_ofctl_ratio": after / anchor_s,
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
                out["mass_delete"] = run_mass_delete(ctl, max(1, n // 4))
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
