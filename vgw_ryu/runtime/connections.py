"""A VM's connection table as operators want to see it: from its conntrack zone.

``dpctl/dump-conntrack zone=N`` (read over ovs-vswitchd's unixctl socket) lists the
entries of one VM's zone; each is shown with the VM's side of it (egress: the VM opened
it, ingress: a peer did), the protocol state, whether a policy change blocked it, and
the rule that admitted it, which the pipeline keeps in ``ct_label`` when it commits.
The userspace datapath keeps no packet or byte counters per entry. No Ryu here.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from vgw_ryu.policy.ids import Ids
from vgw_ryu.policy.model import IpAddr

# ct_label layout: bits 0..31 the admitting rule's number (0: a default), bit 32 set
# when the label was written (entries committed before labels existed have none).
LABEL_RULE_MASK = 0xFFFFFFFF
LABEL_SET = 1 << 32
MARK_BLOCKED = 0x80000000

_TUPLE = re.compile(r"(orig|reply)=\(([^)]*)\)")
_FIELD = re.compile(r"(?:^|,)(zone|mark|labels|timeout)=([^,()]+)")
_STATE = re.compile(r"protoinfo=\(state=([A-Z_0-9]+)")


@dataclass(frozen=True)
class Entry:
    """One conntrack entry."""
    protocol: str
    orig: dict[str, str]
    reply: dict[str, str]
    zone: int
    mark: int
    label: int
    state: str | None
    timeout: int | None


def _tuple(text: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in text.split(",") if "=" in kv)


def _int(text: str | None) -> int:
    if not text:
        return 0
    return int(text, 16) if text.startswith("0x") else int(text)


def parse_dump(text: str) -> list[Entry]:
    """Entries of ``dpctl/dump-conntrack [-s]`` output (lines that do not parse: skipped)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        tuples = dict(_TUPLE.findall(line))
        if "orig" not in tuples or "," not in line:
            continue
        rest = _TUPLE.sub("", line)
        fields = dict(_FIELD.findall(rest))
        state = _STATE.search(line)
        out.append(Entry(line.split(",", 1)[0], _tuple(tuples["orig"]),
                         _tuple(tuples.get("reply", "")), _int(fields.get("zone")),
                         _int(fields.get("mark")), _int(fields.get("labels")),
                         state.group(1) if state else None,
                         _int(fields["timeout"]) if "timeout" in fields else None))
    return out


def _addr(text: str | None) -> IpAddr | None:
    try:
        return ipaddress.ip_address(text) if text else None
    except ValueError:
        return None


def view(entries: Iterable[Entry], vm_ips: set[IpAddr], ids: Ids, *,
         peer: IpAddr | None = None, port: int | None = None,
         rule: str | None = None, limit: int = 1000) -> dict[str, Any]:
    """The entries as the VM sees them, filtered; ``rule`` is "policy/id" or "default"."""
    shown: list[dict[str, Any]] = []
    total = 0
    for e in entries:
        src, dst = _addr(e.orig.get("src")), _addr(e.orig.get("dst"))
        if src not in vm_ips and dst not in vm_ips:
            continue   # not this VM's: a zone number another VM had (flushed or not)
        egress = src in vm_ips
        other = dst if egress else src
        admitted = None
        if e.label & LABEL_SET:
            number = e.label & LABEL_RULE_MASK
            owner = ids.rule_owner(number) if number else None
            admitted = "/".join(owner) if owner else "default"
        dport = e.orig.get("dport")
        if peer is not None and other != peer:
            continue
        if port is not None and port not in {_int(e.orig.get("sport")), _int(dport)}:
            continue
        if rule is not None and admitted != rule:
            continue
        total += 1
        if len(shown) >= limit:
            continue
        item: dict[str, Any] = {
            "protocol": e.protocol, "direction": "egress" if egress else "ingress",
            "src": e.orig.get("src"), "dst": e.orig.get("dst"),
            "state": e.state, "blocked": bool(e.mark & MARK_BLOCKED), "rule": admitted,
            "timeout": e.timeout}
        for k in ("sport", "dport", "type", "code", "id"):
            if k in e.orig:
                item[k] = _int(e.orig[k])
        shown.append(item)
    return {"connections": shown, "total": total, "truncated": total > len(shown)}
