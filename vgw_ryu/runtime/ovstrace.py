"""Run ``ovs-appctl ofproto/trace`` and read its verdict: OVS as the oracle.

Used by the tests (flow logic is checked against real OVS, not a simulator) and by
the REST ``trace`` endpoint to show what the datapath would do next to the model.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field

from vgw_ryu.pipeline.cookies import KIND_RULE, split_cookie
from vgw_ryu.pipeline.tables import PUNT_BY_TABLE

_TABLE_LINE = re.compile(r"^\s*(\d+)\. .*?(?:cookie (0x[0-9a-f]+))?$")


@dataclass
class TraceResult:
    outputs: set[int] = field(default_factory=set)   # OpenFlow ports the packet leaves by
    punts: set[str] = field(default_factory=set)     # log | reject | unknown
    committed: bool = False                           # a ct(commit) ran
    commits: int = 0                                  # how many (one per allowing stage)
    blocked: bool = False                             # committed with the blocked mark
    tables: list[int] = field(default_factory=list)   # tables visited, in order
    rules: list[int] = field(default_factory=list)    # rule numbers that decided
    text: str = ""

    @property
    def forwarded(self) -> bool:
        return bool(self.outputs)


def _split_top(actions: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in actions:
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur:
        out.append(cur)
    return [a.strip() for a in out]


def odp_ports(bridge: str) -> dict[int, int]:
    """Datapath port number -> OpenFlow port number for one bridge."""
    text = subprocess.run(["ovs-appctl", "dpif/show"], capture_output=True, text=True,
                          check=True, timeout=10).stdout
    ports, inside = {}, False
    for line in text.splitlines():
        if re.match(r"^\s{2}\S.*:$", line):
            inside = line.strip()[:-1] == bridge
            continue
        m = re.match(r"^\s{4}\S+ (\d+)/(\d+):", line)
        if inside and m:
            ports[int(m.group(2))] = int(m.group(1))
    return ports


def parse(text: str, odp_to_of: dict[int, int]) -> TraceResult:
    """Read a trace's visited tables, deciding rules and datapath actions."""
    r = TraceResult(text=text)
    for line in text.splitlines():
        m = _TABLE_LINE.match(line)
        if m and not line.lstrip().startswith("Datapath"):
            table = int(m.group(1))
            r.tables.append(table)
            if table in PUNT_BY_TABLE:
                r.punts.add(PUNT_BY_TABLE[table].purpose)
            if m.group(2):
                owner = split_cookie(int(m.group(2), 16))
                if owner and owner[0] == KIND_RULE:
                    r.rules.append(owner[1])
        if line.startswith("Datapath actions:"):
            for act in _split_top(line.split(":", 1)[1].strip()):
                if act.isdigit():
                    r.outputs.add(odp_to_of.get(int(act), -int(act)))
                elif act.startswith("ct(commit"):
                    r.committed = True
                    r.commits += 1
                    r.blocked |= "mark=0x80000000/" in act
    return r


def trace(bridge: str, flow: str, ct_states: list[str] | tuple[str, ...] = ()) -> TraceResult:
    """Trace ``flow`` through ``bridge``; ``ct_states`` feed successive ct() results."""
    args = ["ovs-appctl", "ofproto/trace", bridge, flow]
    for st in ct_states:
        args += ["--ct-next", st]
    p = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError(f"ofproto/trace failed: {p.stderr.strip()}")
    return parse(p.stdout, odp_ports(bridge))
