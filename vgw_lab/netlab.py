"""Real OVS bridges, namespace "VMs" and the controller as a process (tests, demo, bench).

Everything here is created under a unique name and removed by the fixture that made
it, even when the test fails. Nothing else on the machine is touched.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vgw_ryu.api.client import ApiError, Client

ROOT = Path(__file__).resolve().parent.parent  # the checkout
VENV_BIN = Path(sys.executable).parent
_seq = itertools.count()
# Names must fit IFNAMSIZ (15); pid keeps parallel runs apart, seq keeps tests apart.
_TAG = f"{os.getpid() % 10000:04d}"


def uniq(prefix: str) -> str:
    """A short name unique to this test process, e.g. ``vb1234x3``."""
    return f"{prefix}{_TAG}x{next(_seq)}"


def sh(*args: str, check: bool = True, timeout: float = 30, **kw: Any) -> str:
    """Run a command given as separate arguments (never a shell string)."""
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} -> {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def wait_until(pred: Callable[[], Any], timeout: float = 10, interval: float = 0.05,
               what: str = "condition") -> Any:
    """Poll ``pred`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:
            last_exc = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                         + (f" (last error: {last_exc})" if last_exc else ""))


_GIVEN: set[int] = set()


def free_port() -> int:
    """A free TCP port, never one this process was given before: the kernel may hand
    the same ephemeral port out twice in a row (CI once got one port for a
    controller's OpenFlow and its REST API, and the switches spoke OpenFlow to HTTP)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port



@dataclass
class Bridge:
    name: str

    def dump_flows(self, *filters: str) -> list[str]:
        out = sh("ovs-ofctl", "-O", "OpenFlow13,OpenFlow14", "--no-stats", "dump-flows",
                 self.name, *filters)
        return [ln.strip() for ln in out.splitlines() if ln.strip() and "reply" not in ln]


def make_bridge(controller_port: int | None = None, name: str | None = None) -> Bridge:
    """A ``datapath_type=netdev`` bridge in secure fail mode, optionally with a controller."""
    name = name or uniq("vb")
    cmd = ["ovs-vsctl", "--", "add-br", name, "--", "set", "Bridge", name,
           "datapath_type=netdev", "fail_mode=secure",
           "protocols=OpenFlow13,OpenFlow14",
           # A fixed datapath id keeps flows and logs readable across reconnects.
           f"other_config:datapath-id={abs(hash(name)) % (1 << 48):016x}"]
    sh(*cmd)
    if controller_port is not None:
        sh("ovs-vsctl", "set-controller", name, f"tcp:127.0.0.1:{controller_port}")
    return Bridge(name)


def load_flows(br: Bridge, flows_text: str, path: Path) -> None:
    """Install an ``ovs-ofctl add-flows`` file, with every meter its flows name (the
    punt meters and each VM's log meter), as the controller would."""
    meters = {1, 2, 3} | {int(m) for m in re.findall(r"meter:(\d+)", flows_text)}
    for meter in sorted(meters):
        sh("ovs-ofctl", "-O", "OpenFlow13", "add-meter", br.name,
           f"meter={meter},pktps,band=type=drop,rate=100")
    path.write_text(flows_text)
    sh("ovs-ofctl", "-O", "OpenFlow14", "add-flows", br.name, str(path))


def compiled_bridge(state: Any, ports: list[tuple[int, str, str, str | None, str | None]],
                    workdir: Path) -> tuple[Bridge, Any]:
    """A bridge loaded with what the compiler makes of ``state`` for these ports
    ((ofport, name, kind, vm, mac), each an internal port), checked against the declared
    pipeline; returns (bridge, ids). The caller deletes the bridge."""
    from vgw_ryu.compiler import PortFacts, SwitchFacts, compile_switch, render
    from vgw_ryu.pipeline import tables
    from vgw_ryu.policy.ids import Ids

    ids = Ids()
    ids.sync(state)
    facts = SwitchFacts(tuple(PortFacts(*p) for p in ports))
    flows = compile_switch(state, facts, ids)
    problems = tables.check(flows)
    if problems:
        raise AssertionError(f"flows outside the declared pipeline: {problems[:5]}")
    br = make_bridge()
    try:
        for p in facts.ports:
            add_internal_port(br, p.ofport)
        load_flows(br, render(flows), workdir / "flows.txt")
    except Exception:
        delete_bridge(br)
        raise
    return br, ids


def add_internal_port(br: Bridge, ofport: int) -> str:
    """An internal port with a fixed OpenFlow number (enough for ofproto/trace)."""
    name = uniq("ti")
    sh("ovs-vsctl", "add-port", br.name, name, "--", "set", "Interface", name,
       "type=internal", f"ofport_request={ofport}")
    return name


def delete_bridge(br: Bridge) -> None:
    sh("ovs-vsctl", "--if-exists", "del-br", br.name, check=False)


@dataclass
class NsVm:
    """A 'VM': a network namespace with one veth whose peer is a bridge port."""
    name: str
    ns: str
    host_if: str
    mac: str
    ips: list[str]
    bridge: Bridge | None = None
    servers: list[subprocess.Popen] = field(default_factory=list)

    def ip4(self) -> str:
        return next(a for a in self.ips if ":" not in a)

    def exec(self, *args: str, check: bool = True, timeout: float = 30) -> str:
        return sh("ip", "netns", "exec", self.ns, *args, check=check, timeout=timeout)

    def popen(self, *args: str, **kw: Any) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.ns, *args], **kw)

    def ping(self, dst: str, count: int = 1, timeout: float = 1) -> bool:
        fam = "-6" if ":" in dst else "-4"
        p = subprocess.run(["ip", "netns", "exec", self.ns, "ping", fam, "-c", str(count), "-W",
                            str(timeout), "-i", "0.2", dst], capture_output=True)
        return p.returncode == 0

    def serve(self, tcp: list[int] = (), udp: list[int] = (), v6: bool = False
              ) -> subprocess.Popen:
        """Start echo servers (vgw_lab.traffic serve); returns once they listen."""
        args = [sys.executable, "-m", "vgw_lab.traffic", "serve",
                "--tcp", ",".join(map(str, tcp)), "--udp", ",".join(map(str, udp))]
        if v6:
            args.append("--v6")
        proc = self.popen(*args, stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
        line = proc.stdout.readline()
        if line.strip() != "ready":
            proc.kill()
            raise RuntimeError(f"traffic server in {self.name} did not start: {line!r}")
        self.servers.append(proc)
        return proc

    def probe(self, proto: str, host: str, port: int | None = None,
              timeout: float = 1.5) -> dict:
        """One verdict (allow/deny/reject) for tcp, udp or icmp from this VM."""
        if proto == "icmp":
            t0 = time.monotonic()
            ok = self.ping(host, count=2, timeout=timeout)
            return {"verdict": "allow" if ok else "deny",
                    "ms": round((time.monotonic() - t0) * 1000)}
        out = self.exec(sys.executable, "-m", "vgw_lab.traffic", "probe", proto, host,
                        str(port), "--timeout", str(timeout), timeout=timeout + 30)
        return json.loads(out)

    def stream(self, host: str, port: int, seconds: float) -> subprocess.Popen:
        """A TCP echo stream (vgw_lab.traffic stream) printing JSON progress lines."""
        return self.popen(sys.executable, "-m", "vgw_lab.traffic", "stream", host, str(port),
                          "--seconds", str(seconds), stdout=subprocess.PIPE, text=True,
                          cwd=str(ROOT))

    def attach(self, br: Bridge, external_ids: dict[str, str] | None = None,
               ofport: int | None = None, attached_mac: bool = True) -> None:
        """Plug the host side into ``br`` with libvirt-style external_ids."""
        ids = {**({"attached-mac": self.mac} if attached_mac else {}), **(external_ids or {})}
        cmd = ["ovs-vsctl", "add-port", br.name, self.host_if]
        settings = [f'external_ids:{k}="{v}"' for k, v in ids.items()]
        if ofport is not None:
            settings.append(f"ofport_request={ofport}")
        if settings:
            cmd += ["--", "set", "Interface", self.host_if, *settings]
        sh(*cmd)
        self.bridge = br

    def detach(self) -> None:
        if self.bridge is not None:
            sh("ovs-vsctl", "--if-exists", "del-port", self.bridge.name, self.host_if,
               check=False)
            self.bridge = None


def make_vm(name: str, mac: str, ips: list[str]) -> NsVm:
    """Create namespace + veth; TX checksum offload off on the VM side (userspace dp)."""
    tag = uniq("")
    ns, host_if, vm_if = f"vgwt-{name}-{tag}", f"vh{tag}", f"vv{tag}"
    sh("ip", "netns", "add", ns)
    vm = NsVm(name, ns, host_if, mac, ips)
    try:
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", vm_if)
        sh("ip", "link", "set", vm_if, "netns", ns)
        sh("ip", "link", "set", host_if, "up")
        vm.exec("ip", "link", "set", vm_if, "name", "eth0")
        vm.exec("ip", "link", "set", "eth0", "address", mac)
        vm.exec("ethtool", "-K", "eth0", "tx", "off")
        vm.exec("sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0")
        vm.exec("sysctl", "-qw", "net.ipv6.conf.eth0.accept_ra=0")
        for ip in ips:
            plen = "64" if ":" in ip else "24"
            extra = ["nodad"] if ":" in ip else []
            vm.exec("ip", "addr", "add", f"{ip}/{plen}", "dev", "eth0", *extra)
        vm.exec("ip", "link", "set", "eth0", "up")
        vm.exec("ip", "link", "set", "lo", "up")
    except Exception:
        delete_vm(vm)
        raise
    return vm


def delete_vm(vm: NsVm) -> None:
    for proc in vm.servers:
        proc.kill()
        proc.wait(timeout=10)
    vm.detach()
    sh("ip", "link", "del", vm.host_if, check=False)
    sh("ip", "netns", "del", vm.ns, check=False)


class Controller:
    """``ryu-manager vgw_ryu.app`` as a user starts it, on free ports."""

    def __init__(self, workdir: Path, extra_args: list[str] | None = None,
                 state_file: Path | None = None, db: Path | None = None):
        self.workdir = workdir
        self.of_port = free_port()
        self.api_port = free_port()
        self.db = db or workdir / "vgw.db"
        self.log_path = workdir / f"controller-{self.api_port}.log"
        self.state_file = state_file
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{self.api_port}"

    def argv(self) -> list[str]:
        args = [str(VENV_BIN / "ryu-manager"), "vgw_ryu.app",
                "--ofp-tcp-listen-port", str(self.of_port),
                "--wsapi-port", str(self.api_port),
                "--vgw-db", str(self.db),
                "--vgw-log-file", str(self.workdir / "firewall.jsonl")]
        if self.state_file is not None:
            args += ["--vgw-state", str(self.state_file)]
        return args + self.extra_args

    def start(self, wait: bool = True) -> Controller:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                     cwd=str(self.workdir), start_new_session=True)
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        """Wait until the started controller answers GET /v1/health."""
        wait_until(self._healthy, timeout=20, what=f"controller health on {self.url}")

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"controller exited with {self.proc.returncode}:\n"
                                 + self.log_text()[-3000:])
        try:
            return self.get("/v1/health")[0] == 200
        except (OSError, ApiError):
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None, raw: bytes | None = None,
                timeout: float = 10) -> tuple[int, Any]:
        """(status, parsed JSON or raw bytes) of any answer; see vgw_ryu.api.client."""
        return Client(self.url, timeout=timeout).request(method, path, body, headers=headers,
                                                         raw=raw)

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)
