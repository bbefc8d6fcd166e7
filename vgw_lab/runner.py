"""vgw-lab: build a Mininet lab from a topology file and prove its verdicts with traffic.

    vgw-lab run topologies/three_tier.yaml            # build, apply, test, tear down
    vgw-lab run three-tier --cli                      # ... then the Mininet CLI
    vgw-lab run three-tier --keep                     # ... leave it up for vgwctl
    vgw-lab run three-tier --api http://127.0.0.1:8080 --of-port 6653   # your controller
    vgw-lab list

Exit status: 0 when every observed verdict matches, 1 on a mismatch, 2 on set-up errors.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from vgw_lab import netlab, topology
from vgw_lab.topology import Expectation, Topology, TopologyError
from vgw_ryu.api.client import Client

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGIES = ROOT / "topologies"


def say(msg: str) -> None:
    print(msg, flush=True)


@dataclass
class Observation:
    exp: Expectation
    verdict: str
    ms: int

    @property
    def ok(self) -> bool:
        return self.verdict == self.exp.expect


class Lab:
    """One running lab: controller (maybe ours), Mininet network, servers."""

    def __init__(self, topo: Topology, args: argparse.Namespace):
        self.topo = topo
        self.args = args
        self.ctl: netlab.Controller | None = None
        self.net = None
        self.servers: list = []
        tag = f"{os.getpid() % 10000:04d}"
        # Bridge names unique to this run: Mininet deletes a bridge of the same name
        # before creating its own, and we must never touch anyone else's.
        self.names = {hv: f"v{tag}{hv}"[:15] for hv in topo.hypervisors}
        self.dpid_base = (os.getpid() % 0xFFFF) << 16

    # --- set-up ---------------------------------------------------------------------
    def start_controller(self) -> tuple[str, int]:
        if self.args.api:
            return self.args.api, self.args.of_port
        work = Path(tempfile.mkdtemp(prefix="vgw-lab-"))
        self.ctl = netlab.Controller(work)
        say(f"[lab] starting controller: {' '.join(self.ctl.argv())}")
        say(f"[lab]   log {self.ctl.log_path}, firewall log {work / 'firewall.jsonl'}")
        self.ctl.start()
        return self.ctl.url, self.ctl.of_port

    def build(self, of_port: int) -> None:
        from mininet.log import setLogLevel
        from mininet.net import Mininet
        from mininet.node import RemoteController

        from vgw_lab.mnlab import LabTopo

        setLogLevel("warning")
        mtopo = LabTopo(lab=self.topo, names=self.names, dpid_base=self.dpid_base)
        self.net = Mininet(topo=mtopo, controller=None, autoSetMacs=False,
                           waitConnected=False, build=False)
        self.net.addController("c0", controller=RemoteController, ip="127.0.0.1",
                               port=of_port)
        self.net.build()
        self.net.start()
        bridges = ", ".join(f"{hv}={br}" for hv, br in self.names.items())
        say(f"[lab] Mininet up: {len(self.topo.vms)} VMs on {bridges}")

    def wait_ready(self, api: Client, revision: int, timeout: float = 30) -> None:
        want = {self.names[hv]: {v.name for v in self.topo.vms.values() if v.hypervisor == hv}
                for hv in self.topo.hypervisors}
        dpids = {f"{self.dpid_base + i:016x}": self.names[hv]
                 for i, hv in enumerate(self.topo.hypervisors, 1)}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sws = {s["dpid"]: s for s in api.call("GET", "/v1/switches")["switches"]}
            ready = all(d in sws and sws[d]["applied_revision"] == revision and
                        {p["vm"] for p in sws[d]["vm_ports"]} == want[br]
                        for d, br in dpids.items())
            if ready:
                return
            time.sleep(0.1)
        raise RuntimeError(f"switches did not reach revision {revision} with every VM in "
                           f"{timeout:.0f} s: {json.dumps(sws)[:2000]}")

    def start_servers(self) -> None:
        for vm, (tcp, udp) in sorted(self.topo.server_ports().items()):
            host = self.net.get(vm)
            v6 = any(":" in a for a in self.topo.vms[vm].ips)
            args = [sys.executable, "-m", "vgw_lab.traffic", "serve", "--tcp",
                    ",".join(map(str, tcp)), "--udp", ",".join(map(str, udp))]
            if v6:
                args.append("--v6")
            proc = host.popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              cwd=str(ROOT), text=True)
            line = proc.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"server on {vm} did not start: {line}")
            self.servers.append(proc)

    # --- traffic ----------------------------------------------------------------------
    def probe(self, e: Expectation, timeout: float) -> Observation:
        src = self.net.get(e.src)
        dst_ip = self.topo.vms[e.dst].ip(6 if e.ipv6 else 4)
        t0 = time.monotonic()
        if e.protocol == "icmp":
            out = src.cmd(f"ping -{'6' if e.ipv6 else '4'} -c 2 -i 0.2 -W {timeout:g} "
                          f"{dst_ip} >/dev/null 2>&1; echo $?").strip()
            verdict = "allow" if out.endswith("0") else "deny"
            return Observation(e, verdict, round((time.monotonic() - t0) * 1000))
        out = src.cmd(f"{sys.executable} -m vgw_lab.traffic probe {e.protocol} {dst_ip} "
                      f"{e.port} --timeout {timeout:g}")
        try:
            r = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return Observation(e, f"error: {out.strip()[:80]}", 0)
        return Observation(e, r["verdict"], r["ms"])

    def check_verdicts(self, title: str) -> list[Observation]:
        n = len(self.topo.verdicts)
        say(f"[lab] {title}: checking {n} verdicts with real traffic")
        out = []
        for i, e in enumerate(self.topo.verdicts, 1):
            o = self.probe(e, self.args.timeout)
            out.append(o)
            mark = "ok" if o.ok else "MISMATCH"
            say(f"[{i:2}/{n}] {e.label():34} expect {e.expect:6} got {o.verdict:6} "
                f"{o.ms:5} ms  {mark}")
        return out

    def migrate(self, api: Client) -> list[str]:
        """Move VMs while streams run; returns problems found."""
        problems = []
        for m in self.topo.moves:
            vm = self.topo.vms[m.vm]
            src = self.net.get(m.stream_from)
            proc = src.popen([sys.executable, "-m", "vgw_lab.traffic", "stream", vm.ip(),
                              str(m.port), "--seconds", "5"], stdout=subprocess.PIPE,
                             text=True, cwd=str(ROOT))
            time.sleep(1.5)
            old, new = self.names[vm.hypervisor], self.names[m.to]
            host = self.net.get(m.vm)
            intf = host.defaultIntf().link.intf2 if host.defaultIntf().link.intf1.node is host \
                else host.defaultIntf().link.intf1
            say(f"[lab] moving {m.vm}: {old} -> {new} (port {intf}) while {m.stream_from} "
                f"streams to it")
            t0 = time.monotonic()
            netlab.sh("ovs-vsctl", "del-port", old, str(intf), "--", "add-port", new,
                      str(intf), "--", "set", "Interface", str(intf),
                      f'external_ids:vm-id="{m.vm}"', f'external_ids:attached-mac="{vm.mac}"')
            followed = None
            while time.monotonic() - t0 < 10:
                seen = api.call("GET", f"/v1/vms/{m.vm}")["seen"]
                if seen and all(s["switch"] == self._dpid(m.to) for s in seen):
                    followed = time.monotonic() - t0
                    break
                time.sleep(0.02)
            out, _ = proc.communicate(timeout=60)
            last = json.loads(out.strip().splitlines()[-1])
            ok_stream = last.get("error") is None and last["recv"] == last["sent"] > 0
            say(f"[lab] policy followed {m.vm} to {m.to} in "
                f"{'%.0f ms' % (followed * 1000) if followed is not None else 'NEVER'}; "
                f"stream {'survived' if ok_stream else 'BROKE'} "
                f"({last['recv']}/{last['sent']} bytes echoed)")
            if followed is None or followed > 1.0:
                problems.append(f"{m.vm}: policy did not follow within 1 s")
            if not ok_stream:
                problems.append(f"{m.vm}: stream from {m.stream_from} broke: {last}")
            self.topo.vms[m.vm] = type(vm)(vm.name, m.to, vm.ips, vm.mac, vm.labels,
                                           vm.protected)
        return problems

    def _dpid(self, hv: str) -> str:
        return f"{self.dpid_base + self.topo.hypervisors.index(hv) + 1:016x}"

    # --- tear-down --------------------------------------------------------------------
    def stop(self) -> None:
        for p in self.servers:
            p.kill()
        if self.net is not None:
            self.net.stop()
            # Mininet removes its bridges; make sure of it, by our unique names only.
            for br in self.names.values():
                netlab.sh("ovs-vsctl", "--if-exists", "del-br", br, check=False)
        if self.ctl is not None:
            self.ctl.stop()


def print_matrix(obs: list[Observation]) -> None:
    rows = [["FROM", "TO", "PROTO", "PORT", "EXPECTED", "OBSERVED", "TIME", ""]]
    for o in obs:
        e = o.exp
        rows.append([e.src, e.dst + (" (v6)" if e.ipv6 else ""), e.protocol,
                     str(e.port or "-"), e.expect, o.verdict, f"{o.ms} ms",
                     "ok" if o.ok else "MISMATCH"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    say("")
    for r in rows:
        say("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    bad = sum(not o.ok for o in obs)
    say(f"\n{len(obs) - bad} of {len(obs)} verdicts as expected"
        + (f", {bad} MISMATCH" if bad else ""))


def cmd_run(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        say("vgw-lab: needs root (Mininet, namespaces, OVS)")
        return 2
    try:
        topo = topology.load(topology.find(args.topology, TOPOLOGIES))
    except TopologyError as e:
        say(f"vgw-lab: {e}")
        return 2
    say(f"[lab] {topo.name}: {topo.description.strip()}")
    subprocess.run([str(ROOT / "scripts" / "ovs-up.sh")], check=True)
    lab = Lab(topo, args)
    stop = {"now": False}

    def on_term(*_):
        stop["now"] = True
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    try:
        url, of_port = lab.start_controller()
        api = Client(url, args.token, timeout=30)
        lab.build(of_port)
        rev = api.call("PUT", "/v1/state", topo.state_document())["revision"]
        say(f"[lab] policy applied over REST as revision {rev}")
        lab.wait_ready(api, rev)
        lab.start_servers()
        obs = lab.check_verdicts("before any move" if topo.moves else "policy")
        problems = []
        if topo.moves:
            problems = lab.migrate(api)
            lab.wait_ready(api, rev)
            obs += lab.check_verdicts("after the move")
        print_matrix(obs)
        for p in problems:
            say(f"PROBLEM: {p}")
        failed = any(not o.ok for o in obs) or bool(problems)
        e = topo.verdicts[0]
        example = (f"trace {e.dst} ingress {topo.vms[e.src].ip(6 if e.ipv6 else 4)} "
                   f"{e.protocol} {e.port or ''}").rstrip()
        say("\nExplore further:\n"
            f"  vgw-lab run {args.topology} --cli     # Mininet CLI with the firewall running\n"
            f"  vgw-lab run {args.topology} --keep    # keep it up, then in another shell:\n"
            f"  .venv/bin/vgwctl --url {url} get vms\n"
            f"  .venv/bin/vgwctl --url {url} logs --follow\n"
            f"  .venv/bin/vgwctl --url {url} {example}")
        if args.cli:
            from mininet.cli import CLI
            CLI(lab.net)
        elif args.keep:
            say(f"[lab] kept up; REST API {url}; Ctrl-C to tear down")
            while not stop["now"]:
                time.sleep(1)
        return 1 if failed else 0
    except KeyboardInterrupt:
        say("[lab] interrupted")
        return 1
    except Exception as e:
        say(f"vgw-lab: {type(e).__name__}: {e}")
        if lab.ctl is not None:
            say(lab.ctl.log_text()[-3000:])
        return 2
    finally:
        say("[lab] tearing down (only what this run built)")
        lab.stop()


def cmd_list(args: argparse.Namespace) -> int:
    for f in sorted(TOPOLOGIES.glob("*.yaml")):
        try:
            t = topology.load(f)
            say(f"{f.stem.replace('_', '-'):18} {len(t.hypervisors)} hv, {len(t.vms)} VMs, "
                f"{len(t.verdicts)} verdicts  {t.description.strip()[:70]}")
        except TopologyError as e:
            say(f"{f.stem:18} INVALID: {e}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vgw-lab`` console script."""
    ap = argparse.ArgumentParser(prog="vgw-lab", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="build a lab and check its verdicts")
    r.add_argument("topology", help="a topologies/*.yaml file or its name (three-tier)")
    r.add_argument("--cli", action="store_true", help="open the Mininet CLI at the end")
    r.add_argument("--keep", action="store_true", help="keep the lab up until Ctrl-C")
    r.add_argument("--api", help="REST URL of a running controller (default: start one)")
    r.add_argument("--of-port", type=int, default=6653, help="its OpenFlow port")
    r.add_argument("--token", default=os.environ.get("VGW_TOKEN"))
    r.add_argument("--timeout", type=float, default=1.5,
                   help="seconds of silence that count as deny")
    r.set_defaults(fn=cmd_run)
    sub.add_parser("list", help="the known topologies").set_defaults(fn=cmd_list)
    args = ap.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
