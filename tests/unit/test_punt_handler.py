"""PuntHandler on real OpenFlow packet-ins: the new log path writes what the old one did.

The old path (Ryu's full parse, an engine snapshot per packet) is the baseline kept in
vgw_lab.bench.puntrate; both are fed the same messages and must log the same records.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ryu.lib.packet import icmp, icmpv6, ipv4, ipv6, tcp, udp
from ryu.ofproto import ofproto_v1_3, ofproto_v1_3_parser

from tests.unit.test_pktfields import CORPUS, frame
from vgw_lab.bench import puntrate
from vgw_ryu.pipeline import fields as F  # noqa: N812 - reads like the register map
from vgw_ryu.pipeline import tables as pl
from vgw_ryu.policy.ids import Ids
from vgw_ryu.policy.model import parse_state
from vgw_ryu.runtime.fwlog import FirewallLog
from vgw_ryu.ryuapp import punts
from vgw_ryu.ryuapp.punt_handler import PuntHandler


class Engine:
    """The engine's side of the punt path: naming, state-change callbacks, MACs."""

    def __init__(self, state: dict):
        self.ids = Ids()
        self.ids.sync(parse_state(state))
        self.revision = 1
        self.listeners: list = []
        self.snapshots = 0
        self.learned: list[tuple[int, int, str]] = []

    def snapshot(self) -> Any:
        self.snapshots += 1
        return SimpleNamespace(ids=self.ids, revision=self.revision)

    def on_change(self, cb) -> None:
        self.listeners.append(cb)

    def change(self, state: dict) -> None:
        ids = Ids()
        ids.sync(parse_state(state))
        self.ids, self.revision = ids, self.revision + 1
        for cb in self.listeners:
            cb()

    def learn_new_mac(self, dpid: int, ofport: int, mac: str) -> bool | None:
        self.learned.append((dpid, ofport, mac))
        return False


class Datapath(SimpleNamespace):
    def __init__(self) -> None:
        super().__init__(id=0xAB, ofproto=ofproto_v1_3, ofproto_parser=ofproto_v1_3_parser,
                         sent=[])

    def send_msg(self, msg: Any) -> None:
        self.sent.append(msg)


def handler(engine: Engine, log: FirewallLog, schedule=lambda dpid: None) -> PuntHandler:
    return PuntHandler(engine, log, schedule, handle_sigterm=False)   # not in pytest


def msg_of(data: bytes, table: str, regs: dict[str, int], in_port: int = 3) -> Any:
    """A packet-in as Ryu parses it off the wire (the frame cut to the table's max_len)."""
    wire = bytearray(puntrate.packet_in_wire(data, regs, in_port))
    max_len = pl.PUNT_BY_PURPOSE[table.removeprefix("punt_")].max_len
    if max_len != puntrate.LOG_MAX_LEN:   # packet_in_wire cuts like the log table
        wire = bytearray(puntrate.packet_in_wire(b"", regs, in_port)) + data[:max_len]
        wire[2:4] = len(wire).to_bytes(2, "big")
        wire[12:14] = len(data).to_bytes(2, "big")   # total_len
    wire[15] = pl.T[table]                           # table_id
    msg = puntrate.parse(bytes(wire))
    msg.datapath = Datapath()
    return msg


def strip(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("time", "ts")} for r in records]


def test_new_and_old_log_paths_write_the_same_records():
    engine = Engine(puntrate.STATE)
    ids = engine.ids
    rng = random.Random(15)
    choices = [(pl.VERDICT_DENY | pl.LOG_BIT, ids.rule("a-out", "noisy"), ids.zone("a")),
               (pl.VERDICT_ALLOW | pl.LOG_BIT | pl.DIR_BIT, ids.rule("b-out", "web"),
                ids.zone("b")),
               (pl.VERDICT_DENY | pl.LOG_BIT, 0, ids.zone("srv")),          # a default
               (pl.VERDICT_ALLOW | pl.LOG_BIT, 0, 0)]
    msgs = []
    for _, data in CORPUS:
        reg0, rule, zone = rng.choice(choices)
        msgs.append(msg_of(data, "punt_log", {"reg0": reg0, "reg3": rule, "reg4": zone}))
    old_log, new_log = FirewallLog(None), FirewallLog(None)
    old = puntrate.BaselineHandler(engine, old_log)
    new = handler(engine, new_log)
    try:
        for m in msgs:
            old.packet_in(m)
            new.packet_in(m)
        got, want = strip(new_log.query(limit=10000)), strip(old_log.query(limit=10000))
    finally:
        old_log.close()
        new_log.close()
    ipv6_ext = [r for r in want if r.get("protocol") in ("0", "43", "44", "60", "51")]
    assert not ipv6_ext, "the corpus has no IPv6 extension headers: the paths agree"
    assert got == want
    assert len(got) > 300 and {r["vm"] for r in got} == {"a", "b", "srv", None}
    assert new.packet_ins == old.packet_ins == len(msgs)


def test_names_are_looked_up_once_per_state_and_again_after_a_change():
    state = puntrate.STATE
    engine = Engine(state)
    log = FirewallLog(None)
    h = handler(engine, log)
    regs = {"reg0": pl.VERDICT_DENY | pl.LOG_BIT, "reg3": engine.ids.rule("a-out", "noisy"),
            "reg4": engine.ids.zone("a")}
    data = puntrate.flood_frame()
    for sport in range(5):
        d = bytearray(data)
        d[34:36] = (1000 + sport).to_bytes(2, "big")
        h.packet_in(msg_of(bytes(d), "punt_log", regs))
    assert engine.snapshots == 1
    # The rule is renamed: the old number now belongs to nobody, and a record must
    # not name the old rule.
    renamed = {**state, "policies": {**state["policies"], "a-out": {
        "applied_to": ["vm:a"], "rules": [{**state["policies"]["a-out"]["rules"][0],
                                           "id": "loud"}]}}}
    engine.change(renamed)
    h.packet_in(msg_of(data, "punt_log", regs))
    assert engine.snapshots == 2
    last = log.query()[-1]
    assert last["vm"] == "a" and last["rule"] != "noisy"
    log.close()


def test_revocation_records_carry_the_revision_in_force():
    engine = Engine(puntrate.STATE)
    log = FirewallLog(None)
    h = handler(engine, log)
    regs = {"reg0": pl.VERDICT_DENY | pl.LOG_BIT | pl.DIR_BIT | F.REVOKE.mask, "reg3": 0,
            "reg4": engine.ids.zone("srv")}
    h.packet_in(msg_of(puntrate.syn_frame(5555), "punt_log", regs))
    engine.change(puntrate.STATE)
    h.packet_in(msg_of(puntrate.syn_frame(5556), "punt_log", regs))
    assert [(r["event"], r["revision"]) for r in log.query()] == [("revoked", 1),
                                                                   ("revoked", 2)]
    log.close()


def test_unknown_port_learns_the_source_mac_without_a_log_record():
    engine = Engine(puntrate.STATE)
    log = FirewallLog(None)
    scheduled = []
    h = handler(engine, log, scheduled.append)
    data = puntrate.flood_frame()
    h.packet_in(msg_of(data, "punt_unknown", {}, in_port=7))
    assert engine.learned == [(0xAB, 7, puntrate.MAC["a"])]
    assert scheduled == [0xAB] and log.query() == []
    log.close()


def test_reject_still_answers_from_the_full_parse():
    engine = Engine(puntrate.STATE)
    log = FirewallLog(None)
    h = handler(engine, log)
    regs = {"reg0": pl.VERDICT_REJECT | pl.LOG_BIT | pl.DIR_BIT, "reg3": 0,
            "reg4": engine.ids.zone("srv")}
    m = msg_of(puntrate.syn_frame(4242), "punt_reject", regs, in_port=2)
    h.packet_in(m)
    (out,) = m.datapath.sent
    assert out.actions[0].port == 2 and out.data
    rec = log.query()[-1]
    assert (rec["verdict"], rec["sport"], rec["dport"]) == ("reject", 4242, 80)
    log.close()


def test_registers_are_decoded_once_per_combination():
    regs = {"reg0": pl.VERDICT_DENY | pl.LOG_BIT, "reg3": 7, "reg4": 3}
    m1 = msg_of(puntrate.flood_frame(), "punt_log", regs)
    m2 = msg_of(puntrate.syn_frame(1), "punt_log", regs)
    m3 = msg_of(puntrate.syn_frame(1), "punt_log", {**regs, "reg3": 8})
    p1, p2, p3 = punts.decode(m1), punts.decode(m2), punts.decode(m3)
    assert p1.regs is p2.regs and p3.regs.rule == 8
    assert (p1.summary()["protocol"], p2.summary()["protocol"]) == ("udp", "tcp")


def test_ryu_layers_are_parsed_only_when_asked_for():
    m = msg_of(frame(ipv6.ipv6(src="fd00::1", dst="fd00::2", nxt=58),
                     icmpv6.icmpv6(type_=128, data=icmpv6.echo(id_=1, seq=1))),
               "punt_log", {"reg0": pl.VERDICT_DENY | pl.LOG_BIT})
    p = punts.decode(m)
    assert "pkt" not in vars(p)
    assert p.summary()["icmp_type"] == 128 and "pkt" not in vars(p)
    assert isinstance(p.l3, ipv6.ipv6) and isinstance(p.l4, icmpv6.icmpv6)
    for l3, l4 in ((ipv4.ipv4(proto=6), tcp.tcp(src_port=1, dst_port=2)),
                   (ipv4.ipv4(proto=17), udp.udp(src_port=1, dst_port=2)),
                   (ipv4.ipv4(proto=1), icmp.icmp(data=icmp.echo()))):
        p = punts.decode(msg_of(frame(l3, l4), "punt_log", {"reg0": pl.VERDICT_DENY}))
        assert type(p.l4) is type(l4)


SIGTERM_CHILD = """
import os, signal, sys, time
from vgw_ryu.ryuapp import compat
compat.apply()
from vgw_ryu.ryuapp.punt_handler import write_log_on_sigterm
from vgw_ryu.runtime.fwlog import FirewallLog
if sys.argv[2] == "taken":
    signal.signal(signal.SIGTERM, lambda *a: print("theirs", flush=True))
print(write_log_on_sigterm(), flush=True)
fw = FirewallLog(sys.argv[1])
rec = {"vm": "a", "verdict": "deny", "dport": 9}
fw.record(rec); fw.record(rec); fw.record({**rec, "dport": 10})   # batched, one folded
os.kill(os.getpid(), signal.SIGTERM)
print("still here", flush=True)
"""


def test_sigterm_writes_the_batch_then_ends_the_process_as_before(tmp_path):
    root = Path(__file__).resolve().parents[2]
    path = tmp_path / "fw.jsonl"
    p = subprocess.run([sys.executable, "-c", SIGTERM_CHILD, str(path), "free"],
                       capture_output=True, text=True, timeout=60, cwd=str(root))
    assert (p.returncode, p.stdout.split()) == (-signal.SIGTERM, ["True"])
    recs = [json.loads(ln) for ln in path.read_text().splitlines()]
    assert [(r["dport"], r["count"]) for r in recs] == [(9, 1), (10, 1), (9, 1)]
    # Someone else's handler stays; nothing is written early then (exit writes it).
    p = subprocess.run([sys.executable, "-c", SIGTERM_CHILD, str(path), "taken"],
                       capture_output=True, text=True, timeout=60, cwd=str(root))
    assert (p.returncode, p.stdout.split()) == (0, ["False", "theirs", "still", "here"])
