"""make bench: the fast-path vs slow-path experiment, policy scale and punt isolation.

Everything is measured in one run on this machine, modes interleaved (A B C A B C ...),
and reported as medians with min/max and ratios computed within the run:

  A  no firewall: the bridge forwards with NORMAL
  B  vgw_ryu fast path: the controller's conntrack flows, a policy of >100 rules
  C  slow path: every packet through a Python firewall in the controller (vgw_lab.slowpath)

Results go to bench/results/ (JSON, Markdown, PNG). ``--smoke`` runs tiny sizes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from vgw_lab import netlab
from vgw_ryu.compiler import PortFacts, SwitchFacts, compile_switch
from vgw_ryu.policy.ids import Ids
from vgw_ryu.policy.model import parse_state
from vgw_ryu.runtime.ovstrace import trace

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CLIENT = ("client", "02:00:00:00:b0:01", ["10.250.0.1"])
SERVER = ("server", "02:00:00:00:b0:02", ["10.250.0.2"])
FLOODER = ("flooder", "02:00:00:00:b0:03", ["10.250.0.3"])
STRANGER = ("stranger", "02:00:00:00:b0:99", ["10.250.0.4"])
IPERF_PORT, CONN_PORT, FLOOD_PORT = 5201, 7000, 9


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def experiment_state(log_iperf: bool = False) -> dict[str, Any]:
    """A realistic policy: 120 port rules on the server plus the measured ones."""
    rules = [{"id": f"svc{i}", "direction": "ingress", "action": "allow", "protocol": "tcp",
              "ports": str(10000 + i), "peer": "cidr:10.250.0.0/24"} for i in range(120)]
    rules += [
        {"id": "iperf", "direction": "ingress", "action": "allow", "protocol": "tcp",
         "ports": str(IPERF_PORT), "peer": "group:clients", "log": log_iperf},
        {"id": "conn", "direction": "ingress", "action": "allow", "protocol": "tcp",
         "ports": str(CONN_PORT), "peer": "group:clients"},
        {"id": "flood", "direction": "ingress", "action": "deny", "protocol": "udp",
         "ports": str(FLOOD_PORT), "log": True},
    ]
    return {
        "settings": {"default_ingress": "deny", "default_egress": "allow"},
        "vms": {n: {"mac": m, "ips": ips, "labels": {"role": "client"} if n == "client"
                    else {}} for n, m, ips in (CLIENT, SERVER, FLOODER)},
        "groups": {"clients": {"match_labels": {"role": "client"}}},
        "policies": {"server-in": {"applied_to": ["vm:server"], "rules": rules}},
    }


CONN_CLIENT = """
import socket, struct, sys, time
host, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
linger = struct.pack('ii', 1, 0)   # close with RST: no TIME_WAIT to run out of ports
n = 0; end = time.time() + secs
while time.time() < end:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
    s.settimeout(2)
    s.connect((host, port)); s.close(); n += 1
print(n / secs)
"""

CONN_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(4096); print('ready', flush=True)
while True:
    c, _ = s.accept(); c.close()
"""

FLOOD = """
import socket, sys, time
dst, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); end = time.time() + secs; n = 0
while time.time() < end:
    for _ in range(100):
        s.sendto(b'f' * 64, (dst, port)); n += 1
print(n)
"""


class Bed:
    """The experiment's bridge, VMs and the two controllers."""

    def __init__(self, work: Path):
        self.work = work
        self.state_file = work / "state.yaml"
        self.state_file.write_text(yaml.safe_dump(experiment_state()))
        self.vgw = netlab.Controller(work / "vgw", state_file=self.state_file,
                                     extra_args=["--vgw-audit-interval", "0"])
        self.slow = netlab.Controller(work / "slow", state_file=self.state_file)
        self.slow.argv = lambda: [str(netlab.VENV_BIN / "ryu-manager"), "vgw_lab.slowpath",
                                  "--ofp-tcp-listen-port", str(self.slow.of_port),
                                  "--wsapi-port", str(self.slow.api_port),
                                  "--vgw-state", str(self.state_file)]
        self.br: netlab.Bridge | None = None
        self.vms: dict[str, netlab.NsVm] = {}
        self.procs: list[subprocess.Popen] = []

    def up(self) -> None:
        (self.work / "vgw").mkdir(exist_ok=True)
        (self.work / "slow").mkdir(exist_ok=True)
        self.vgw.start()
        self.slow.start(wait=False)
        self.br = netlab.make_bridge()
        for spec in (CLIENT, SERVER, FLOODER, STRANGER):
            vm = netlab.make_vm(*spec)
            vm.attach(self.br, {"vm-id": spec[0]} if spec is not STRANGER else {},
                      attached_mac=spec is not STRANGER)
            self.vms[spec[0]] = vm
        server = self.vms["server"]
        self.procs.append(server.popen("iperf3", "-s", "-p", str(IPERF_PORT),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        p = server.popen(sys.executable, "-c", CONN_SERVER, str(CONN_PORT),
                         stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        self.procs.append(p)
        netlab.wait_until(lambda: str(IPERF_PORT) in server.exec("ss", "-ltnH"),
                          what="iperf3 server")

    def mode(self, name: str) -> None:
        """Point the bridge at mode A, B or C and wait until it forwards."""
        br = self.br.name
        # Start every mode from an empty table: switching controllers does not always
        # clear the previous mode's flows, and a leftover fast path would flatter C.
        netlab.sh("ovs-vsctl", "del-controller", br)
        netlab.sh("ovs-ofctl", "-O", "OpenFlow13", "del-flows", br)
        if name == "A":
            netlab.sh("ovs-ofctl", "-O", "OpenFlow13", "add-flow", br, "actions=NORMAL")
        else:
            ctl = self.vgw if name == "B" else self.slow
            netlab.sh("ovs-vsctl", "set-controller", br, f"tcp:127.0.0.1:{ctl.of_port}")
        if name == "B":
            netlab.wait_until(self._vgw_programmed, timeout=30, what="vgw flows")
        if name == "C":
            netlab.wait_until(lambda: self.controller_packets() >= 0 and any(
                "CONTROLLER" in f for f in self.br.dump_flows()), timeout=30,
                what="slow-path table-miss flow")
        netlab.wait_until(self._can_connect, timeout=30, what=f"mode {name} forwarding")

    def _can_connect(self) -> bool:
        code = (f"import socket; socket.create_connection(({SERVER[2][0]!r}, {CONN_PORT}), "
                "timeout=1).close(); print('ok')")
        return self.vms["client"].exec(sys.executable, "-c", code, check=False,
                                       timeout=10).strip() == "ok"

    def _vgw_programmed(self) -> bool:
        sws = self.vgw.get("/v1/switches")[1]["switches"]
        return bool(sws) and sws[0]["applied_revision"] == self.vgw.get(
            "/v1/health")[1]["revision"] and len(sws[0]["vm_ports"]) == 3 and \
            len(self.br.dump_flows()) > 100

    def controller_packets(self) -> int:
        """Packets the bridge sent to the controller (mode C: should be all of them)."""
        out = netlab.sh("ovs-ofctl", "-O", "OpenFlow13", "dump-flows", self.br.name)
        return sum(int(ln.split("n_packets=")[1].split(",")[0]) for ln in out.splitlines()
                   if "CONTROLLER" in ln and "n_packets=" in ln)

    def iperf(self, seconds: float) -> float:
        out = self.vms["client"].exec("iperf3", "-c", SERVER[2][0], "-p", str(IPERF_PORT),
                                      "-t", str(seconds), "-J", timeout=seconds + 60)
        return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9

    def conn_rate(self, seconds: float) -> float:
        out = self.vms["client"].exec(sys.executable, "-c", CONN_CLIENT, SERVER[2][0],
                                      str(CONN_PORT), str(seconds), timeout=seconds + 60)
        return float(out.strip())

    def flood(self, who: str, seconds: float, port: int = FLOOD_PORT) -> subprocess.Popen:
        return self.vms[who].popen(sys.executable, "-c", FLOOD, SERVER[2][0],
                                   str(port), str(seconds), stdout=subprocess.PIPE,
                                   text=True)

    def down(self) -> None:
        for p in self.procs:
            p.kill()
        for vm in self.vms.values():
            netlab.delete_vm(vm)
        if self.br is not None:
            netlab.delete_bridge(self.br)
        self.vgw.stop()
        self.slow.stop()


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": values}


def run_experiment(bed: Bed, reps: int, seconds: float, conn_seconds: float
                   ) -> dict[str, Any]:
    tput: dict[str, list[float]] = {"A": [], "B": [], "C": []}
    conns: dict[str, list[float]] = {"A": [], "B": [], "C": []}
    punted: list[int] = []
    for rep in range(1, reps + 1):
        for m in "ABC":
            bed.mode(m)
            tput[m].append(bed.iperf(seconds))
            conns[m].append(bed.conn_rate(conn_seconds))
            if m == "C":
                punted.append(bed.controller_packets())
            say(f"experiment rep {rep}/{reps} mode {m}: {tput[m][-1]:.3f} Gbit/s, "
                f"{conns[m][-1]:.0f} conn/s")
    t = {m: summary(v) for m, v in tput.items()}
    c = {m: summary(v) for m, v in conns.items()}
    return {"throughput_gbps": t, "connections_per_s": c,
            "slow_path_packets_through_controller": punted, "ratios": {
        "B/A throughput": t["B"]["median"] / t["A"]["median"],
        "B/A connections": c["B"]["median"] / c["A"]["median"],
        "C/B throughput": t["C"]["median"] / t["B"]["median"],
        "C/B connections": c["C"]["median"] / c["B"]["median"]}}


def run_isolation(bed: Bed, reps: int, seconds: float) -> dict[str, Any]:
    bed.mode("B")
    base, flooded, plain, logged = [], [], [], []
    for rep in range(1, reps + 1):
        base.append(bed.iperf(seconds))
        # The same flood to a port whose drops are not logged: what the flood costs
        # the 2-core machine anyway, punts or not.
        floods = [bed.flood("flooder", seconds + 2, FLOOD_PORT + 1),
                  bed.flood("stranger", seconds + 2)]
        time.sleep(0.5)
        plain.append(bed.iperf(seconds))
        for f in floods:
            f.communicate(timeout=60)
        floods = [bed.flood("flooder", seconds + 2), bed.flood("stranger", seconds + 2)]
        time.sleep(0.5)
        flooded.append(bed.iperf(seconds))
        sent = sum(int(f.communicate(timeout=60)[0] or 0) for f in floods)
        bed.state_file.write_text(yaml.safe_dump(experiment_state(log_iperf=True)))
        netlab.wait_until(lambda: bed.vgw.get("/v1/policies/server-in")[1]["rules"][120]
                          ["log"] is True and bed._vgw_programmed(), timeout=30,
                          what="logged policy")
        logged.append(bed.iperf(seconds))
        bed.state_file.write_text(yaml.safe_dump(experiment_state()))
        netlab.wait_until(lambda: bed.vgw.get("/v1/policies/server-in")[1]["rules"][120]
                          ["log"] is False and bed._vgw_programmed(), timeout=30,
                          what="unlogged policy")
        say(f"isolation rep {rep}/{reps}: {base[-1]:.3f} Gbit/s quiet, {plain[-1]:.3f} under "
            f"an unlogged flood, {flooded[-1]:.3f} under punting floods "
            f"({sent / (seconds + 2):.0f} pps), "
            f"{logged[-1]:.3f} with the rule logged")
    stats = bed.vgw.get("/v1/stats")[1]
    return {"quiet_gbps": summary(base), "flooded_gbps": summary(flooded),
            "plain_flood_gbps": summary(plain), "logged_rule_gbps": summary(logged),
            "ratios": {"flooded/quiet": statistics.median(flooded) / statistics.median(base),
                       "flooded/plain flood": statistics.median(flooded)
                       / statistics.median(plain),
                       "logged/unlogged": statistics.median(logged) / statistics.median(base)},
            "punts_suppressed": stats["punts_suppressed"], "packet_ins": stats["packet_ins"]}


# --- policy scale -------------------------------------------------------------------------

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
    """Compiler alone: 1,000 VMs x 20 rules, groups of 100 (issue 3's benchmark entry)."""
    state = parse_state(scale_state(n))
    ids = Ids()
    ids.sync(state)
    facts = SwitchFacts(tuple(PortFacts(i + 1, f"p{i}", "vm", f"vm{i}") for i in range(n)))
    t0 = time.perf_counter()
    flows = compile_switch(state, facts, ids)
    dt = time.perf_counter() - t0
    say(f"compile {n} VMs x 20 rules: {len(flows)} flows in {dt:.2f} s")
    return {"vms": n, "rules": 20, "group_size": 100, "seconds": dt, "flows": len(flows),
            "flows_per_vm": len(flows) / n}


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


def run_scale(sizes: list[int], changes: int, per_bridge: int, work: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"sizes": [], "change": None}
    ctl = netlab.Controller(work / "scale", extra_args=["--vgw-audit-interval", "0"])
    (work / "scale").mkdir(exist_ok=True)
    ctl.start()
    bridges: list[netlab.Bridge] = []
    try:
        for n in sizes:
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
            say(f"scale {n} VMs x 20 rules on {n_br} bridge(s): {flows} flows "
                f"({flows / n:.1f}/VM), programmed in {dt:.2f} s (REST answered in "
                f"{t_answer:.2f} s)")
            out["sizes"].append({"vms": n, "bridges": n_br, "flows": flows,
                                 "flows_per_vm": flows / n, "seconds": dt,
                                 "rest_answer_s": t_answer})
            if n == 1000 or (n == sizes[-1] and out["change"] is None and n < 1000):
                out["change"] = run_changes(ctl, bridges[0], doc, changes)
        return out
    finally:
        # Controller first: a bridge it is still programming is slow to delete.
        ctl.stop()
        for br in bridges:
            netlab.sh("ovs-vsctl", "--timeout=600", "--if-exists", "del-br", br.name,
                      check=False, timeout=600)


def run_changes(ctl: netlab.Controller, br: netlab.Bridge, doc: dict, changes: int
                ) -> dict[str, Any]:
    """Change one rule's port; time from the REST answer until ofproto/trace allows it."""
    vms = doc["vms"]
    dst, src = "vm0", "vm1"   # vm1 is in g0, the peer group of rule r0 (ingress to vm0)
    flow = ("in_port=2,tcp,dl_src={},dl_dst={},nw_src={},nw_dst={},tp_src=40000,"
            "tp_dst={}").format(vms[src]["mac"], vms[dst]["mac"], vms[src]["ips"][0],
                                vms[dst]["ips"][0], "{}")
    policy = doc["policies"]["p"]
    lat = []
    for k in range(changes):
        port = 30000 + k
        rules = [dict(r) for r in policy["rules"]]
        rules[0]["ports"] = str(port)
        t0 = time.monotonic()
        status, _ = ctl.request("PUT", "/v1/policies/p", {**policy, "rules": rules})
        assert status == 200
        t_ans = time.monotonic()
        # The VM ports are patch ports with no peer, so nothing is output: "enforced" is
        # the destination's ingress stage committing the connection (its allow).
        while not (tr := trace(br.name, flow.format(port), ("trk,new", "trk,new"))).commits >= 2:
            if time.monotonic() - t_ans > 30:
                raise RuntimeError(f"a rule change was never enforced:\n{tr.text[-3000:]}")
        lat.append((time.monotonic() - t_ans) * 1000)
        say(f"change {k + 1}/{changes}: enforced {lat[-1]:.0f} ms after the REST answer "
            f"(answer took {(t_ans - t0) * 1000:.0f} ms)")
    lat.sort()
    p99 = lat[min(len(lat) - 1, math.ceil(0.99 * len(lat)) - 1)]
    return {"vms": len(vms), "changes": changes, "p50_ms": statistics.median(lat),
            "p99_ms": p99, "all_ms": lat}


# --- output --------------------------------------------------------------------------------

def markdown(r: dict[str, Any]) -> str:
    lines = [f"Measured {r['date']} on {r['machine']['cpus']} cores ({r['machine']['cpu']}), "
             f"`{r['command']}`.", ""]
    if "experiment" in r:
        e = r["experiment"]
        t, c = e["throughput_gbps"], e["connections_per_s"]
        lines += ["| path | TCP Gbit/s (median, min-max) | new TCP conn/s (median, min-max) |",
                  "|---|---|---|"]
        for m, label in (("A", "(a) NORMAL, no firewall"),
                         ("B", "(b) vgw_ryu fast path, 123 rules"),
                         ("C", "(c) slow path: every packet through the controller")):
            lines.append(f"| {label} | {t[m]['median']:.2f} ({t[m]['min']:.2f}-"
                         f"{t[m]['max']:.2f}) | {c[m]['median']:,.0f} ({c[m]['min']:,.0f}-"
                         f"{c[m]['max']:,.0f}) |")
        lines += ["", "| ratio | value | target |", "|---|---|---|"]
        targets = {"B/A throughput": ">= 0.97", "B/A connections": ">= 0.90",
                   "C/B throughput": "reported (well under 0.3 expected)",
                   "C/B connections": "reported"}
        for k, v in e["ratios"].items():
            lines.append(f"| {k} | {v:.3f} | {targets[k]} |")
    if "isolation" in r:
        i = r["isolation"]
        lines += ["", "| punt isolation | Gbit/s (median) | ratio |", "|---|---|---|",
                  f"| fast path, quiet | {i['quiet_gbps']['median']:.2f} | 1 |",
                  f"| under the same flood, drops not logged (no punts) | "
                  f"{i['plain_flood_gbps']['median']:.2f} | "
                  f"{i['plain_flood_gbps']['median'] / i['quiet_gbps']['median']:.3f} |",
                  f"| under a log flood + unknown-port flood (punting) | "
                  f"{i['flooded_gbps']['median']:.2f} | {i['ratios']['flooded/quiet']:.3f} "
                  f"(target >= 0.95); vs the unlogged flood: "
                  f"{i['ratios']['flooded/plain flood']:.3f} |",
                  f"| measured rule with `log: true` | {i['logged_rule_gbps']['median']:.2f} | "
                  f"{i['ratios']['logged/unlogged']:.3f} |"]
    if "scale" in r:
        s = r["scale"]
        lines += ["", "| VMs x 20 rules | bridges | flows | flows/VM | programmed in |",
                  "|---|---|---|---|---|"]
        for row in s["sizes"]:
            lines.append(f"| {row['vms']:,} | {row['bridges']} | {row['flows']:,} | "
                         f"{row['flows_per_vm']:.1f} | {row['seconds']:.2f} s |")
        if s.get("change"):
            ch = s["change"]
            lines += ["", f"Single rule change at {ch['vms']:,} VMs, REST answer to enforced "
                          f"(ofproto/trace), {ch['changes']} changes: p50 {ch['p50_ms']:.0f} ms,"
                          f" p99 {ch['p99_ms']:.0f} ms (target p99 <= 100 ms)."]
    if "compile" in r:
        cp = r["compile"]
        lines += ["", f"Compiler alone: {cp['vms']:,} VMs x {cp['rules']} rules (groups of "
                      f"{cp['group_size']}): {cp['flows']:,} flows ({cp['flows_per_vm']:.1f}/VM)"
                      f" in {cp['seconds']:.2f} s."]
    return "\n".join(lines) + "\n"


def plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [k for k in ("experiment", "scale") if k in r]
    fig, axes = plt.subplots(1, 3 if "experiment" in r else 1, figsize=(14, 4.2))
    axes = list(axes) if isinstance(axes, (list, tuple)) or hasattr(axes, "__len__") \
        else [axes]
    ax_i = 0
    if "experiment" in panels:
        e = r["experiment"]
        labels = ["(a) NORMAL", "(b) vgw fast path", "(c) slow path"]
        for key, title, unit in (("throughput_gbps", "TCP throughput", "Gbit/s"),
                                 ("connections_per_s", "New TCP connections", "per second")):
            ax = axes[ax_i]
            ax_i += 1
            med = [e[key][m]["median"] for m in "ABC"]
            lo = [med[i] - e[key][m]["min"] for i, m in enumerate("ABC")]
            hi = [e[key][m]["max"] - med[i] for i, m in enumerate("ABC")]
            ax.bar(labels, med, yerr=[lo, hi], color=["#999999", "#2a7ab0", "#c0504d"],
                   capsize=4)
            ax.set_title(title)
            ax.set_ylabel(unit)
    if "scale" in panels and ax_i < len(axes):
        s = r["scale"]["sizes"]
        ax = axes[ax_i]
        xs = [row["vms"] for row in s]
        ax.plot(xs, [row["flows"] for row in s], "o-", color="#2a7ab0", label="flows")
        ax.set_xlabel("VM ports (x 20 rules)")
        ax.set_ylabel("flows")
        ax2 = ax.twinx()
        ax2.plot(xs, [row["seconds"] for row in s], "s--", color="#c0504d",
                 label="programming time")
        ax2.set_ylabel("seconds to program")
        ax.set_title("Policy scale")
        ax.legend(loc="upper left")
        ax2.legend(loc="lower right")
    fig.suptitle(f"vgw_ryu on {r['machine']['cpus']} cores, {r['date'][:10]}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; write bench/results/latest.{json,md,png}."""
    ap = argparse.ArgumentParser(prog="vgw_lab.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5, help="iperf3 duration")
    ap.add_argument("--conn-seconds", type=float, default=3)
    ap.add_argument("--scale", default="100,1000,5000")
    ap.add_argument("--changes", type=int, default=20)
    ap.add_argument("--per-bridge", type=int, default=1000)
    ap.add_argument("--skip", default="", help="comma list of experiment,isolation,scale")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, seconds not minutes")
    ap.add_argument("--out", default=str(RESULTS))
    a = ap.parse_args(argv)
    if a.smoke:
        a.reps, a.seconds, a.conn_seconds, a.scale, a.changes = 1, 1, 1, "20,50", 3
    skip = set(filter(None, a.skip.split(",")))
    if os.geteuid() != 0:
        print("bench: needs root (namespaces, OVS)", file=sys.stderr)
        return 2
    subprocess.run([str(ROOT / "scripts" / "ovs-up.sh")], check=True)
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                .splitlines() if ln.startswith("model name")), platform.machine())
    r: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "cpu": cpu,
                    "ovs": netlab.sh("ovs-vswitchd", "--version").splitlines()[0]},
        "command": "make bench" + (" (smoke)" if a.smoke else ""),
        "settings": vars(a)}
    work = Path(tempfile.mkdtemp(prefix="vgw-bench-"))
    # A SIGTERM still runs the clean-up below (bridges, namespaces, controllers).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "smoke" if a.smoke else "latest"

    def save() -> None:
        # After every section: a failure later still leaves what was measured.
        (out / f"{stem}.json").write_text(json.dumps(r, indent=2) + "\n")
        (out / f"{stem}.md").write_text(markdown(r))

    r["compile"] = run_compile(100 if a.smoke else 1000)
    if not {"experiment", "isolation"} <= skip:
        bed = Bed(work)
        try:
            say("setting up: bridge, 4 namespace VMs, vgw_ryu and slow-path controllers")
            bed.up()
            if "experiment" not in skip:
                r["experiment"] = run_experiment(bed, a.reps, a.seconds, a.conn_seconds)
                save()
            if "isolation" not in skip:
                r["isolation"] = run_isolation(bed, a.reps, a.seconds)
                save()
        finally:
            bed.down()
    if "scale" not in skip:
        r["scale"] = run_scale([int(x) for x in a.scale.split(",")], a.changes,
                               a.per_bridge, work)
    save()
    plot(r, out / f"{stem}.png")
    say(f"results: {out / stem}.json, .md, .png")
    print(markdown(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
