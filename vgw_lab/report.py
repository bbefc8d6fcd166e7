"""What vgw-lab prints: the verdict matrix, the topology list, how to reach a lab."""

from __future__ import annotations

import shlex
import textwrap
from dataclasses import dataclass

from vgw_lab.topology import Expectation, Topology


@dataclass
class Observation:
    exp: Expectation
    verdict: str
    ms: int

    @property
    def ok(self) -> bool:
        return self.verdict == self.exp.expect


def matrix(obs: list[Observation]) -> str:
    rows = [["FROM", "TO", "PROTO", "PORT", "EXPECTED", "OBSERVED", "TIME", ""]]
    for o in obs:
        e = o.exp
        rows.append([e.src, e.dst + (" (v6)" if e.ipv6 else ""), e.protocol,
                     str(e.port or "-"), e.expect, o.verdict, f"{o.ms} ms",
                     "ok" if o.ok else "MISMATCH"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    bad = sum(not o.ok for o in obs)
    lines.append(f"\n{len(obs) - bad} of {len(obs)} verdicts as expected"
                 + (f", {bad} MISMATCH" if bad else ""))
    return "\n".join(lines)


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def topology_line(name: str, t: Topology, width: int = 88) -> str:
    """One entry of ``vgw-lab list``: name and counts, then the whole description
    wrapped at word boundaries under it."""
    checks = _n(t.checks, "verdict")
    if t.moves:
        checks += f" ({len(t.verdicts)} before and after {_n(len(t.moves), 'move')})"
    head = f"{name:18} {_n(len(t.hypervisors), 'hypervisor')}, {_n(len(t.vms), 'VM')}, {checks}"
    desc = " ".join(t.description.split())
    body = textwrap.fill(desc, width=width, initial_indent=" " * 19,
                         subsequent_indent=" " * 19, break_long_words=False,
                         break_on_hyphens=False) if desc else ""
    return head + ("\n" + body if body else "")


def reach(run: str, url: str, src: str, dst: str, trace: str, keep: bool) -> str:
    """How to reach a lab that is up, from another shell, and how to end it."""
    ex = f"  .venv/bin/vgw-lab exec --run {run} {shlex.quote(src)}"
    lines = [f"Explore (lab {run} is up; from another shell):",
             f"{ex} ping -c1 {shlex.quote(dst)}   # a VM name stands for its address",
             f"{ex}                  # a shell in that VM",
             f"  .venv/bin/vgwctl --url {url} get vms",
             f"  .venv/bin/vgwctl --url {url} logs --follow",
             f"  .venv/bin/vgwctl --url {url} {trace}"]
    if keep:
        lines.append(f"Tear down: Ctrl-C here, or .venv/bin/vgw-lab down {run}")
    else:
        lines.append(f"Tear down: `exit` (or Ctrl-D) in the CLI, or .venv/bin/vgw-lab down {run}")
    return "\n".join(lines)


def hint(topology: str) -> str:
    """After a run that tears down: how to get a lab that stays up."""
    t = shlex.quote(topology)
    return (f"To explore a running lab: vgw-lab run {t} --cli (Mininet CLI),\n"
            f"or vgw-lab run {t} --keep (then vgw-lab exec / vgwctl from another shell)")
