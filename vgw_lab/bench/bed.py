"""The experiment bed: one bridge, namespace VMs, the vgw_ryu and slow-path controllers.

Modes A (NORMAL), B (vgw_ryu fast path) and C (slow path) interleaved on the same bed,
and the punt-isolation runs (floods while iperf3 measures the fast path).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from vgw_lab import netlab
from vgw_lab.bench.common import (
    CLIENT,
    CONN_PORT,
    FLOOD_PORT,
    FLOODER,
    IPERF_PORT,
    SERVER,
    STRANGER,
    say,
    summary,
)

# The fast path in three cases (issue: one zone, two zones, a stateless rule):
#   B  both VMs protected: two zones, two conntrack passes per packet (VM-to-VM same host);
#   B1 the client unprotected (the north-south case): one zone;
#   S  the measured traffic on stateless rules: no conntrack on its path at all.
FAST_MODES = {"B": "two zones", "B1": "one zone", "S": "stateless rules"}
MODES = ["A", *FAST_MODES, "C"]


def experiment_state(log_iperf: bool = False, variant: str = "B") -> dict[str, Any]:
    """A realistic policy: 120 port rules on the server plus the measured ones."""
    stateless = {"stateful": False} if variant == "S" else {}
    rules = [{"id": f"svc{i}", "direction": "ingress", "action": "allow", "protocol": "tcp",
              "ports": str(10000 + i), "peer": "cidr:10.250.0.0/24"} for i in range(120)]
    rules += [
        {"id": "iperf", "direction": "ingress", "action": "allow", "protocol": "tcp",
         "ports": str(IPERF_PORT), "peer": "group:clients", "log": log_iperf, **stateless},
        {"id": "conn", "direction": "ingress", "action": "allow", "protocol": "tcp",
         "ports": str(CONN_PORT), "peer": "group:clients", **stateless},
        {"id": "flood", "direction": "ingress", "action": "deny", "protocol": "udp",
         "ports": str(FLOOD_PORT), "log": True},
    ]
    if variant == "S":   # the replies need their own (stateless) rule
        rules.append({"id": "replies", "direction": "egress", "action": "allow",
                      "protocol": "tcp", "peer": "group:clients", "stateful": False})
    return {
        "settings": {"default_ingress": "deny", "default_egress": "allow"},
        "vms": {n: {"mac": m, "ips": ips, "labels": {"role": "client"} if n == "client"
                    else {}, "protected": n != "client" or variant == "B"}
                for n, m, ips in (CLIENT, SERVER, FLOODER)},
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

    def variant(self, name: str) -> None:
        """Make the controller's state the one of fast-path case ``name`` (B, B1, S)."""
        want = experiment_state(variant=name)
        self.state_file.write_text(yaml.safe_dump(want))

        def applied() -> bool:
            st = self.vgw.get("/v1/state")[1]
            return st["vms"]["client"]["protected"] == want["vms"]["client"]["protected"] \
                and len(st["policies"]["server-in"]["rules"]) == \
                len(want["policies"]["server-in"]["rules"])
        netlab.wait_until(applied, timeout=30, what=f"state of case {name}")

    def mode(self, name: str) -> None:
        """Point the bridge at mode A, C or a fast-path case, and wait until it forwards."""
        br = self.br.name
        if name in FAST_MODES:
            self.variant(name)
        # Start every mode from an empty table: switching controllers does not always
        # clear the previous mode's flows, and a leftover fast path would flatter C.
        netlab.sh("ovs-vsctl", "del-controller", br)
        netlab.sh("ovs-ofctl", "-O", "OpenFlow13", "del-flows", br)
        if name == "A":
            netlab.sh("ovs-ofctl", "-O", "OpenFlow13", "add-flow", br, "actions=NORMAL")
        else:
            ctl = self.slow if name == "C" else self.vgw
            netlab.sh("ovs-vsctl", "set-controller", br, f"tcp:127.0.0.1:{ctl.of_port}")
        if name in FAST_MODES:
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

    @staticmethod
    def clear_passes() -> None:
        netlab.sh("ovs-appctl", "dpif-netdev/pmd-stats-clear")

    @staticmethod
    def passes_per_packet() -> float:
        """Datapath passes per packet since clear_passes (1 + recirculations/packet)."""
        out = netlab.sh("ovs-appctl", "dpif-netdev/pmd-stats-show")
        got = {k.strip(): v for k, _, v in (ln.partition(":") for ln in out.splitlines())}
        packets = int(got.get("packets received", "0").split()[0] or 0)
        recirc = int(got.get("packet recirculations", "0").split()[0] or 0)
        return 1 + recirc / packets if packets else 0.0

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


def run_experiment(bed: Bed, reps: int, seconds: float, conn_seconds: float
                   ) -> dict[str, Any]:
    tput: dict[str, list[float]] = {m: [] for m in MODES}
    conns: dict[str, list[float]] = {m: [] for m in MODES}
    passes: dict[str, list[float]] = {m: [] for m in MODES}
    punted: list[int] = []
    for rep in range(1, reps + 1):
        for m in MODES:
            bed.mode(m)
            bed.clear_passes()
            tput[m].append(bed.iperf(seconds))
            passes[m].append(bed.passes_per_packet())
            conns[m].append(bed.conn_rate(conn_seconds))
            if m == "C":
                punted.append(bed.controller_packets())
            say(f"experiment rep {rep}/{reps} mode {m}: {tput[m][-1]:.3f} Gbit/s, "
                f"{conns[m][-1]:.0f} conn/s, {passes[m][-1]:.2f} datapath passes/packet")
    t = {m: summary(v) for m, v in tput.items()}
    c = {m: summary(v) for m, v in conns.items()}
    fast = {f"{m}/A {what}": d[m]["median"] / d["A"]["median"]
            for m in FAST_MODES for what, d in (("throughput", t), ("connections", c))}
    return {"throughput_gbps": t, "connections_per_s": c,
            "datapath_passes_per_packet": {m: summary(v) for m, v in passes.items()},
            "slow_path_packets_through_controller": punted, "ratios": {
        **fast,
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
