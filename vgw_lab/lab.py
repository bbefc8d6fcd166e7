"""One lab run: its run directory, controller (its own, or a target over --api), the
Mininet network, traffic servers, the verdict checks and moves, and the teardown that
removes exactly what this run built."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from vgw_lab import netlab, runs
from vgw_lab.fleet import Fleet
from vgw_lab.remote import RemoteTarget
from vgw_lab.report import Observation
from vgw_lab.topology import Expectation, Topology
from vgw_ryu.api.client import Client

ROOT = Path(__file__).resolve().parent.parent


def say(msg: str) -> None:
    print(msg, flush=True)


def pick_run(hypervisors: list[str]) -> str:
    """A run name (``v1234``) whose directory and bridge names nobody uses; claims it."""
    existing = set(netlab.sh("ovs-vsctl", "list-br").split())
    base = runs.runs_dir()
    base.mkdir(parents=True, exist_ok=True)
    start = os.getpid() % 10000
    for i in range(10000):
        run = f"v{(start + i) % 10000:04d}"
        if any(f"{run}{hv}"[:15] in existing for hv in hypervisors):
            continue
        try:
            (base / run).mkdir(mode=0o700)
        except FileExistsError:
            continue
        return run
    raise RuntimeError(f"no free run name under {base}")


class Lab:
    """One running lab: run directory, controller (maybe ours) or fleet, Mininet network,
    servers."""

    def __init__(self, topo: Topology, args: argparse.Namespace):
        self.topo = topo
        self.args = args
        self.ctl: netlab.Controller | None = None
        self.fleet: Fleet | None = None
        self.target: RemoteTarget | None = None
        self.net = None
        self.servers: list = []
        self.run = pick_run(topo.hypervisors)
        self.dir = runs.runs_dir() / self.run
        # Bridge names unique to this run: Mininet deletes a bridge of the same name
        # before creating its own, and we must never touch anyone else's.
        self.names = {hv: f"{self.run}{hv}"[:15] for hv in topo.hypervisors}
        self.dpid_base = (int(self.run[1:]) + 1) << 16
        self.vm_ids = {vm: vm for vm in topo.vms}  # the controller's name of each VM
        self.state: dict[str, Any] = {"run": self.run, "pid": os.getpid(),
                                      "topology": topo.name, "dir": str(self.dir),
                                      "bridges": self.names, "hosts": {}, "links": []}
        self.save()

    def save(self) -> None:
        runs.write_state(self.dir, self.state)

    # --- set-up ---------------------------------------------------------------------
    def start_controller(self) -> tuple[str, int]:
        """Our own controller, or the --api target once every check passed."""
        if self.args.api:
            client = Client(self.args.api, self.args.token, timeout=30)
            self.target = RemoteTarget(client, f"lab-{self.run}-", record=self._record)
            say(f"[lab] using the controller at {self.args.api}: checking access, settings "
                f"and names (the lab's objects are named lab-{self.run}-*)")
            self.target.prepare(self.topo.state_document())  # TargetError: nothing built
            self.vm_ids = {vm: self.target.name(vm) for vm in self.topo.vms}
            self.state.update(api=self.args.api, api_objects=[])
            self.save()
            return self.args.api, self.args.of_port
        self.ctl = netlab.Controller(self.dir)
        say(f"[lab] starting controller: {' '.join(self.ctl.argv())}")
        self.ctl.start()
        self.state.update(api=self.ctl.url, controller={"pid": self.ctl.proc.pid,
                                                        "marker": str(self.dir)})
        self.save()
        return self.ctl.url, self.ctl.of_port

    def start_fleet(self, members: int = 3, apis: int = 2) -> tuple[str, dict[str, int]]:
        """The policy database as a Raft cluster (``vgw-db``), ``apis`` vgw-api servers
        and one agent per hypervisor for its bridge; (first API URL, OpenFlow port of
        each hypervisor's agent). Its files go to the run directory."""
        self.fleet = Fleet(self.dir / "fleet", members=members, apis=apis, agents=0,
                           on_started=self._record_fleet)
        say(f"[lab] starting the fleet: {members} database members (vgw-db), {apis} vgw-api, "
            f"one agent per hypervisor ({len(self.topo.hypervisors)})")
        try:
            self.fleet.start()
            for hv in self.topo.hypervisors:
                # The chassis is named after its bridge (which Mininet makes in build()).
                self.fleet.add_agent(name=self.names[hv], bridge_names=[self.names[hv]])
        finally:  # even half-started: record what runs (and what start() stopped)
            self._record_fleet()
        ports = {hv: a.ctl.of_port for hv, a in zip(self.topo.hypervisors,
                                                     self.fleet.agents, strict=True)}
        return self.fleet.apis[0].url, ports

    def _record_fleet(self) -> None:
        f = self.fleet
        if f is None:
            return
        self.state["fleet"] = {
            "members": [{"db": str(m.files.db), "pid": m.pid(), "remote": m.remote}
                        for m in f.members],
            "apis": [{"url": s.url, "pid": s.proc.pid if s.proc else None} for s in f.apis],
            "agents": [{"name": a.name, "pid": a.ctl.proc.pid if a.ctl.proc else None,
                        "url": a.url, "bridges": [b.name for b in a.bridges]}
                       for a in f.agents]}
        self.save()

    def _record(self, created: list[tuple[str, str]]) -> None:
        self.state["api_objects"] = [list(c) for c in created]
        self.save()

    def build(self, of_port: int | dict[str, int]) -> None:
        """The Mininet network; ``of_port`` is the controller's OpenFlow port, or one
        per hypervisor (a fleet: each bridge gets only its own agent)."""
        from mininet.log import setLogLevel
        from mininet.net import Mininet
        from mininet.node import RemoteController

        from vgw_lab.mnlab import LabTopo

        setLogLevel("warning")
        mtopo = LabTopo(lab=self.topo, names=self.names, dpid_base=self.dpid_base,
                        vm_ids=self.vm_ids)
        self.net = Mininet(topo=mtopo, controller=None, autoSetMacs=False,
                           waitConnected=False, build=False)
        ports = of_port if isinstance(of_port, dict) else None
        if ports is None:
            self.net.addController("c0", controller=RemoteController, ip="127.0.0.1",
                                   port=of_port)
        else:
            for hv in self.topo.hypervisors:
                self.net.addController(f"c{hv}", controller=RemoteController,
                                       ip="127.0.0.1", port=ports[hv])
        try:
            self.net.build()
        finally:  # even half-built: record what exists so `vgw-lab down` can find it
            self.state["hosts"] = {h.name: {"pid": h.pid, "ip": self.topo.vms[h.name].ip(4)
                                                or self.topo.vms[h.name].ip(6)}
                                   for h in self.net.hosts if h.pid}
            self.state["links"] = sorted(str(i) for sw in self.net.switches
                                         for i in sw.intfList() if str(i) != "lo")
            self.save()
        if ports is None:
            self.net.start()
        else:
            self._start_per_bridge()
        bridges = ", ".join(f"{hv}={br}" for hv, br in self.names.items())
        say(f"[lab] Mininet up: {len(self.topo.vms)} VMs on {bridges}")

    def _start_per_bridge(self) -> None:
        """Mininet's ``net.start()``, except that each bridge gets only its own
        hypervisor's controller (net.start() gives every bridge all of them)."""
        by_bridge = {self.names[hv]: self.net.get(f"c{hv}") for hv in self.topo.hypervisors}
        for c in self.net.controllers:
            c.start()
        for sw in self.net.switches:
            sw.start([by_bridge[sw.name]])
        # Mininet's OVS switches queue their ovs-vsctl commands; this runs them.
        for cls in {type(sw) for sw in self.net.switches}:
            if hasattr(cls, "batchStartup"):
                cls.batchStartup([sw for sw in self.net.switches if type(sw) is cls])

    def apply_policy(self, api: Client) -> int:
        if self.target is not None:
            rev = self.target.apply()
            if self.target.restore_settings is not None:
                say("[lab] the controller was empty: it has the lab's settings for this run, "
                    "its own come back at teardown")
            say(f"[lab] {len(self.target.created)} lab objects written one by one "
                f"(revision {rev}); the controller's other objects are untouched")
            return rev
        rev = api.call("PUT", "/v1/state", self.topo.state_document())["revision"]
        say(f"[lab] policy applied over REST as revision {rev}")
        return rev

    def wait_ready(self, api: Client, revision: int, timeout: float = 30) -> None:
        want = {self.names[hv]: {self.vm_ids[v.name] for v in self.topo.vms.values()
                                 if v.hypervisor == hv}
                for hv in self.topo.hypervisors}
        dpids = {self._dpid(hv): self.names[hv] for hv in self.topo.hypervisors}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sws = {s["dpid"]: s for s in api.call("GET", "/v1/switches")["switches"]}
            ready = all(d in sws and (sws[d]["applied_revision"] or 0) >= revision and
                        {p["vm"] for p in sws[d]["vm_ports"]} == want[br]
                        for d, br in dpids.items())
            if ready:
                return
            time.sleep(0.1)
        hint = "" if any(d in sws for d in dpids) else (
            f" (none of the lab's switches connected: is OpenFlow port {self.args.of_port} "
            "the controller's? --of-port)" if self.target else "")
        raise RuntimeError(f"switches did not reach revision {revision} with every VM in "
                           f"{timeout:.0f} s{hint}: {json.dumps(sws)[:2000]}")

    def wait_agents_ready(self, revision: int, timeout: float = 30) -> None:
        """Every API server shows every hypervisor's agent at ``revision`` or later,
        fresh, with its bridge and exactly its VMs' ports (GET /v1/switches agents)."""
        assert self.fleet is not None
        want = {self.names[hv]: {self.vm_ids[v.name] for v in self.topo.vms.values()
                                 if v.hypervisor == hv}
                for hv in self.topo.hypervisors}
        deadline = time.monotonic() + timeout
        rows: dict[str, Any] = {}
        for s in self.fleet.apis:
            api = s.client(timeout=10)
            while True:
                rows = {r["name"]: r for r in api.call("GET", "/v1/switches")["agents"]}
                if all(br in rows and rows[br]["applied_revision"] >= revision
                       and not rows[br]["stale"] and br in rows[br]["bridges"]
                       and set(rows[br]["vm_ports"]) == vms for br, vms in want.items()):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"agents did not reach revision {revision} with every "
                                       f"VM in {timeout:.0f} s (through {s.url}): "
                                       f"{json.dumps(rows)[:2000]}")
                time.sleep(0.1)
        say(f"[lab] every agent runs revision {revision} with its VMs (as both API servers "
            "show it)" if len(self.fleet.apis) > 1 else
            f"[lab] every agent runs revision {revision} with its VMs")

    def where(self) -> list[str]:
        """Where the fleet's pieces run (members with their role, API URLs, agents)."""
        return self.fleet.where() if self.fleet is not None else []

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
            self.servers.append(proc)
            self.state.setdefault("servers", []).append(proc.pid)
            self.save()
            line = proc.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"server on {vm} did not start: {line}")

    # --- traffic ----------------------------------------------------------------------
    def probe(self, e: Expectation, timeout: float) -> Observation:
        src = self.net.get(e.src)
        dst_ip = self.topo.vms[e.dst].ip(6 if e.ipv6 else 4)
        t0 = time.monotonic()
        if e.protocol == "icmp":
            p = src.popen(["ping", "-6" if e.ipv6 else "-4", "-c", "2", "-i", "0.2", "-W",
                           f"{timeout:g}", dst_ip], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
            verdict = "allow" if p.wait(timeout=timeout * 2 + 30) == 0 else "deny"
            return Observation(e, verdict, round((time.monotonic() - t0) * 1000))
        p = src.popen([sys.executable, "-m", "vgw_lab.traffic", "probe", e.protocol, dst_ip,
                       str(e.port), "--timeout", f"{timeout:g}"], stdout=subprocess.PIPE,
                      stderr=subprocess.STDOUT, cwd=str(ROOT), text=True)
        out, _ = p.communicate(timeout=timeout + 30)
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
            vm_id = self.vm_ids[m.vm]
            src = self.net.get(m.stream_from)
            proc = src.popen([sys.executable, "-m", "vgw_lab.traffic", "stream", vm.ip(),
                              str(m.port), "--seconds", "5"], stdout=subprocess.PIPE,
                             text=True, cwd=str(ROOT))
            time.sleep(1.5)  # the stream must be running when the VM moves
            old, new = self.names[vm.hypervisor], self.names[m.to]
            host = self.net.get(m.vm)
            link = host.defaultIntf().link
            intf = link.intf2 if link.intf1.node is host else link.intf1
            say(f"[lab] moving {m.vm}: {old} -> {new} (port {intf}) while {m.stream_from} "
                f"streams to it")
            t0 = time.monotonic()
            netlab.sh("ovs-vsctl", "del-port", old, str(intf), "--", "add-port", new,
                      str(intf), "--", "set", "Interface", str(intf),
                      f'external_ids:vm-id="{vm_id}"', f'external_ids:attached-mac="{vm.mac}"')
            followed = None
            while time.monotonic() - t0 < 10:
                seen = api.call("GET", f"/v1/vms/{vm_id}")["seen"]
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
    def stop(self, keep_dir: bool = False) -> list[str]:
        """Remove what this run built (its servers, network, bridges, controller, and
        its objects on an --api controller); then its run directory unless keep_dir."""
        problems = []
        for p in self.servers:
            p.kill()
        if self.net is not None:
            self.net.stop()
        # Mininet removes its bridges and links; make sure of it, by our exact names only.
        for br in self.names.values():
            netlab.sh("ovs-vsctl", "--if-exists", "del-br", br, check=False)
        if self.target is not None:
            problems += self.target.remove()
        if self.ctl is not None:
            self.ctl.stop()
        if self.fleet is not None:
            problems += self.fleet.stop(remove_dir=False)
        leftovers = runs.cleanup(dict(self.state, pid=None), self.args.token, say=say)
        problems += leftovers
        if problems:
            say(f"[lab] run directory {self.dir} kept: its state.json names what is left; "
                f"retry with: vgw-lab down {self.run}")
            self.state["pid"] = None
            self.save()
        elif keep_dir:
            (self.dir / runs.STATE).unlink(missing_ok=True)
            say(f"[lab] run directory kept (--keep): {self.dir} (controller and firewall "
                "logs); remove it with rm -r")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        return problems
