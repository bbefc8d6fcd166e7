"""Lab topologies as data: hypervisors, links, VMs, the policy and the expected verdicts.

A topology file (topologies/*.yaml) is loaded into a networkx graph and validated with
errors that name the field. The VMs of the topology become the ``vms`` of the policy
document, so a lab states each address once. No Ryu, no Mininet here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import yaml

from vgw_ryu.policy import model

VERDICTS = ("allow", "deny", "reject")
PROTOCOLS = ("tcp", "udp", "icmp")


class TopologyError(ValueError):
    """A topology file that cannot be used; the message names the field."""


@dataclass(frozen=True)
class LabVm:
    name: str
    hypervisor: str
    ips: tuple[str, ...]
    mac: str
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    protected: bool = True

    def ip(self, version: int = 4) -> str | None:
        return next((a for a in self.ips if ipaddress.ip_address(a).version == version), None)


@dataclass(frozen=True)
class Expectation:
    src: str
    dst: str
    protocol: str
    port: int | None
    expect: str
    ipv6: bool = False

    def label(self) -> str:
        what = self.protocol + (f"/{self.port}" if self.port else "")
        return f"{self.src} -> {self.dst}{' (v6)' if self.ipv6 else ''} {what}"


@dataclass(frozen=True)
class Move:
    vm: str
    to: str
    stream_from: str
    port: int


@dataclass
class Topology:
    name: str
    description: str
    graph: nx.Graph
    vms: dict[str, LabVm]
    policy: dict[str, Any]
    verdicts: list[Expectation]
    moves: list[Move]

    @property
    def hypervisors(self) -> list[str]:
        return sorted(n for n, d in self.graph.nodes(data=True) if d["kind"] == "hypervisor")

    @property
    def links(self) -> list[tuple[str, str]]:
        return sorted(tuple(sorted((a, b))) for a, b, d in self.graph.edges(data=True)
                      if d.get("kind") == "uplink")

    def state_document(self) -> dict[str, Any]:
        """The desired state: the policy with the topology's VMs filled in."""
        vms = {v.name: {"mac": v.mac, "ips": list(v.ips), "labels": dict(v.labels),
                        "protected": v.protected} for v in self.vms.values()}
        doc = {k: self.policy[k] for k in ("settings",) if k in self.policy}
        doc["vms"] = vms
        doc.update((k, v) for k, v in self.policy.items() if k not in doc)
        return doc

    @property
    def checks(self) -> int:
        """How many verdicts a run checks: each once, and again after the moves."""
        return len(self.verdicts) * (2 if self.moves else 1)

    def server_ports(self) -> dict[str, tuple[list[int], list[int]]]:
        """Per VM, the TCP and UDP ports its servers must listen on."""
        out: dict[str, tuple[list[int], list[int]]] = {}
        for e in self.verdicts:
            tcp, udp = out.setdefault(e.dst, ([], []))
            if e.protocol == "tcp" and e.port not in tcp:
                tcp.append(e.port)
            elif e.protocol == "udp" and e.port not in udp:
                udp.append(e.port)
        for m in self.moves:
            tcp, _ = out.setdefault(m.vm, ([], []))
            if m.port not in tcp:
                tcp.append(m.port)
        return out


def _mac(i: int) -> str:
    return f"02:00:00:00:{(i >> 8) & 0xFF:02x}:{i & 0xFF:02x}"


def _req(d: dict, key: str, path: str) -> Any:
    if key not in d:
        raise TopologyError(f"{path}.{key}: is required")
    return d[key]


def _check_keys(d: Any, path: str, allowed: tuple[str, ...]) -> dict:
    if not isinstance(d, dict):
        raise TopologyError(f"{path}: must be an object")
    for k in d:
        if k not in allowed:
            raise TopologyError(f"{path}.{k}: unknown field (allowed: {', '.join(allowed)})")
    return d


def load(path: str | Path) -> Topology:
    """Load and validate a topology file."""
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except OSError as e:
        raise TopologyError(f"{p}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise TopologyError(f"{p}: not YAML: {e}") from None
    return parse(doc, base=p.parent, default_name=p.stem)


def parse(doc: Any, base: Path = Path("."), default_name: str = "lab") -> Topology:
    """Validate a topology document (see topologies/README.md)."""
    d = _check_keys(doc, "topology", ("name", "description", "hypervisors", "links", "vms",
                                      "policy", "policy_file", "verdicts", "moves"))
    g = nx.Graph()
    hvs = _req(d, "hypervisors", "topology")
    if not isinstance(hvs, list) or not hvs:
        raise TopologyError("hypervisors: must be a non-empty list of names")
    for i, hv in enumerate(hvs):
        if not isinstance(hv, str) or not model.NAME_RE.match(hv) or len(hv) > 8:
            raise TopologyError(f"hypervisors[{i}]: {hv!r} is not a name of up to 8 "
                                "characters")
        if hv in g:
            raise TopologyError(f"hypervisors[{i}]: duplicate hypervisor {hv!r}")
        g.add_node(hv, kind="hypervisor")
    for i, link in enumerate(d.get("links") or []):
        if not (isinstance(link, list) and len(link) == 2):
            raise TopologyError(f"links[{i}]: must be a pair [hvA, hvB]")
        for end in link:
            if end not in g or g.nodes[end]["kind"] != "hypervisor":
                raise TopologyError(f"links[{i}]: unknown hypervisor {end!r}")
        if link[0] == link[1]:
            raise TopologyError(f"links[{i}]: a hypervisor cannot link to itself")
        g.add_edge(link[0], link[1], kind="uplink")
    if not nx.is_connected(g):
        parts = [sorted(c) for c in nx.connected_components(g)]
        raise TopologyError(f"links: hypervisors are not all connected: {parts}")
    vms: dict[str, LabVm] = {}
    seen_ips: dict[str, str] = {}
    for i, (name, v) in enumerate(sorted((_req(d, "vms", "topology") or {}).items())):
        path = f"vms.{name}"
        v = _check_keys(v, path, ("hypervisor", "ips", "mac", "labels", "protected"))
        if not model.NAME_RE.match(name):
            raise TopologyError(f"{path}: not a valid name")
        hv = _req(v, "hypervisor", path)
        if hv not in g or g.nodes[hv]["kind"] != "hypervisor":
            raise TopologyError(f"{path}.hypervisor: unknown hypervisor {hv!r}")
        ips = v.get("ips") or []
        for j, ip in enumerate(ips):
            try:
                norm = str(ipaddress.ip_address(ip))
            except ValueError:
                raise TopologyError(f"{path}.ips[{j}]: {ip!r} is not an IP address") from None
            if norm in seen_ips:
                raise TopologyError(f"{path}.ips[{j}]: duplicate IP {norm} (also "
                                    f"{seen_ips[norm]})")
            seen_ips[norm] = name
        vms[name] = LabVm(name, hv, tuple(str(ipaddress.ip_address(a)) for a in ips),
                          (v.get("mac") or _mac(i + 1)).lower(), dict(v.get("labels") or {}),
                          bool(v.get("protected", True)))
        g.add_node(name, kind="vm")
        g.add_edge(name, hv, kind="port")
    if "policy_file" in d:
        policy = yaml.safe_load((base / d["policy_file"]).read_text()) or {}
    else:
        policy = d.get("policy") or {}
    if "vms" in policy:
        raise TopologyError("policy.vms: VMs come from the topology's vms section")
    topo = Topology(str(d.get("name", default_name)), str(d.get("description", "")), g, vms,
                    policy, [], [])
    try:
        model.parse_state(topo.state_document())
    except model.ValidationError as e:
        raise TopologyError(f"policy: {e}") from None
    for i, e in enumerate(d.get("verdicts") or []):
        path = f"verdicts[{i}]"
        e = _check_keys(e, path, ("from", "to", "protocol", "port", "expect", "ipv6"))
        for end in ("from", "to"):
            if _req(e, end, path) not in vms:
                raise TopologyError(f"{path}.{end}: unknown VM {e[end]!r}")
        proto = e.get("protocol", "tcp")
        if proto not in PROTOCOLS:
            raise TopologyError(f"{path}.protocol: {proto!r} is not one of tcp, udp, icmp")
        port = e.get("port")
        if proto in ("tcp", "udp") and (not isinstance(port, int) or not 1 <= port <= 65535):
            raise TopologyError(f"{path}.port: {port!r} is not a port (1-65535)")
        if _req(e, "expect", path) not in VERDICTS:
            raise TopologyError(f"{path}.expect: {e['expect']!r} is not allow, deny or reject")
        ipv6 = bool(e.get("ipv6", False))
        version = 6 if ipv6 else 4
        for end in ("from", "to"):
            if vms[e[end]].ip(version) is None:
                raise TopologyError(f"{path}.{end}: vm {e[end]!r} has no IPv{version} address")
        topo.verdicts.append(Expectation(e["from"], e["to"], proto, port, e["expect"], ipv6))
    for i, m in enumerate(d.get("moves") or []):
        path = f"moves[{i}]"
        m = _check_keys(m, path, ("vm", "to", "stream_from", "port"))
        if _req(m, "vm", path) not in vms or _req(m, "stream_from", path) not in vms:
            raise TopologyError(f"{path}: unknown VM")
        if _req(m, "to", path) not in topo.hypervisors:
            raise TopologyError(f"{path}.to: unknown hypervisor {m['to']!r}")
        if m["to"] == vms[m["vm"]].hypervisor:
            raise TopologyError(f"{path}.to: vm {m['vm']!r} is already on {m['to']!r}")
        topo.moves.append(Move(m["vm"], m["to"], m["stream_from"], int(_req(m, "port", path))))
    return topo


def find(name_or_path: str, directory: Path) -> Path:
    """A topology by file path or by name (three-tier -> topologies/three_tier.yaml)."""
    p = Path(name_or_path)
    if p.exists():
        return p
    cand = directory / f"{name_or_path.replace('-', '_')}.yaml"
    if cand.exists():
        return cand
    known = ", ".join(sorted(f.stem.replace("_", "-") for f in directory.glob("*.yaml")))
    raise TopologyError(f"no topology {name_or_path!r} (known: {known})")
