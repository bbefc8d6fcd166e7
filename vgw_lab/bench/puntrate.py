"""Log packet-ins per second one core handles: the punt path before and after issue #15.

Two implementations of the log path are fed the same OpenFlow packet-ins, interleaved
round by round in one run:

* ``baseline`` - the path as it was before issue #15, kept below (clearly marked) so it
  can be measured next to the new one: Ryu's full packet parse (ryu.lib.packet) of every
  packet-in, and a write and flush of the firewall log file per record (logging's
  RotatingFileHandler behind ``logger.log``);
* ``new`` - vgw_ryu's own PuntHandler and FirewallLog as they are now: the header
  fields a record uses read with ``struct`` (vgw_ryu.runtime.pktfields) and the file
  written in batches.

Both fold records the same way (that code is shared), so they write the same records
(in ``flood``, one more count record for each second a slower run lasts).
Scenarios: ``flood`` (one flow, VM A's logged drops: every packet after the first folds
into the flow's count) and ``new_flows`` (VM B's connections: every packet a new
connection, so every packet a record and a line in the file). Each is timed on the
handler alone (``handler``: messages parsed beforehand) and with Ryu's parsing of the
OpenFlow message included (``with_openflow_parse``: what the controller does per
packet-in before our handler runs). Packet-ins/s are per wall-clock second and per
CPU second of this process (one core: the handler is single-threaded).

Not included, in either path: engine.snapshot() (the engine is a stub here; the real
one copies every switch's port table per call, which the new handler no longer does
per packet), the socket read and Ryu's event queue.

    python -m vgw_lab.bench.puntrate [--smoke] [--packets N] [--rounds R]

Prints one JSON document.
"""

from __future__ import annotations

from vgw_ryu.ryuapp import compat

compat.apply()  # before any Ryu import: ryu.app.wsgi needs it at import time

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import logging.handlers  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402
from typing import Any  # noqa: E402

from ryu.lib.packet import ethernet, icmp, icmpv6, ipv4, ipv6, packet, tcp, udp  # noqa: E402
from ryu.ofproto import ofproto_parser, ofproto_v1_3, ofproto_v1_3_parser  # noqa: E402

from vgw_ryu.pipeline import tables as pl  # noqa: E402
from vgw_ryu.policy.ids import Ids  # noqa: E402
from vgw_ryu.policy.model import PROTO_NAME, parse_state  # noqa: E402
from vgw_ryu.runtime import fwsyslog  # noqa: E402
from vgw_ryu.runtime.fwlog import FirewallLog  # noqa: E402
from vgw_ryu.runtime.puntregs import decode_registers, log_record  # noqa: E402
from vgw_ryu.ryuapp.punt_handler import PuntHandler  # noqa: E402

# The lab's VMs (tests/lab/test_logging.py): A floods a logged deny, B opens logged
# connections to srv.
MAC = {"a": "02:00:00:00:d1:01", "b": "02:00:00:00:d1:02", "srv": "02:00:00:00:d1:03"}
IP = {"a": "10.242.0.1", "b": "10.242.0.2", "srv": "10.242.0.3"}
STATE = {
    "settings": {"default_ingress": "deny", "default_egress": "allow"},
    "vms": {n: {"mac": MAC[n], "ips": [IP[n]]} for n in MAC},
    "policies": {
        "a-out": {"applied_to": ["vm:a"], "rules": [
            {"id": "noisy", "direction": "egress", "action": "deny", "protocol": "udp",
             "ports": "9", "log": True}]},
        "b-out": {"applied_to": ["vm:b"], "rules": [
            {"id": "web", "direction": "egress", "action": "allow", "protocol": "tcp",
             "ports": "80", "log": True}]},
        "srv-in": {"applied_to": ["vm:srv"], "rules": [
            {"id": "http", "direction": "ingress", "action": "allow", "protocol": "tcp",
             "ports": "80"}]}}}
LOG_MAX_LEN = pl.PUNT_BY_PURPOSE["log"].max_len   # what OVS sends of a log copy
SCENARIOS = ("flood", "new_flows")
TIMINGS = ("handler", "with_openflow_parse")


# === BASELINE: the log path before issue #15, kept as it was for this comparison =======
def baseline_summary(data: bytes) -> dict[str, Any] | None:
    """Old punts.decode() + Punt.summary(): Ryu's full parse of the packet; None without
    an Ethernet header."""
    pkt = packet.Packet(data)
    eth = pkt.get_protocol(ethernet.ethernet)
    if eth is None:
        return None
    l3 = pkt.get_protocol(ipv4.ipv4) or pkt.get_protocol(ipv6.ipv6)
    l4 = (pkt.get_protocol(tcp.tcp) or pkt.get_protocol(udp.udp) or pkt.get_protocol(icmp.icmp)
          or pkt.get_protocol(icmpv6.icmpv6))
    out: dict[str, Any] = {"src_mac": eth.src, "dst_mac": eth.dst}
    if l3 is not None:
        out["src"], out["dst"] = l3.src, l3.dst
        number = l3.proto if isinstance(l3, ipv4.ipv4) else l3.nxt
        out["protocol"] = PROTO_NAME.get(number, str(number))
    if isinstance(l4, (tcp.tcp, udp.udp)):
        out["sport"], out["dport"] = l4.src_port, l4.dst_port
    elif isinstance(l4, (icmp.icmp, icmpv6.icmpv6)):
        out["icmp_type"] = l4.type_ if isinstance(l4, icmpv6.icmpv6) else l4.type
        out["icmp_code"] = l4.code
    return out


class _BaselineJsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(record.msg, sort_keys=True)


class BaselineLog(FirewallLog):
    """Old FirewallLog output: every record through ``logger.log`` to a
    RotatingFileHandler, which writes and flushes it at once (folding is shared)."""

    def __init__(self, path: str, max_bytes: int = 10 * 1024 * 1024):
        super().__init__(None)
        h = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=5)
        h.setFormatter(_BaselineJsonLines())
        self._handlers.append(h)
        self.logger.addHandler(h)

    def _emit(self, records: list[dict[str, Any]]) -> None:
        for rec in records:
            level = getattr(logging, fwsyslog.SEVERITY.get(rec.get("verdict"), "INFO"))
            self.logger.log(level, rec)


class BaselineHandler:
    """Old PuntHandler.packet_in, log path: registers, Ryu parse, snapshot, record."""

    def __init__(self, engine: Any, fwlog: FirewallLog):
        self.engine = engine
        self.fwlog = fwlog
        self.packet_ins = 0

    def packet_in(self, msg: Any) -> None:
        self.packet_ins += 1
        regs = decode_registers(msg.table_id, dict(msg.match.items()))
        if regs is None:
            return
        summary = baseline_summary(msg.data)
        if summary is None:
            return
        if regs.purpose == "log" or regs.log:
            snap = self.engine.snapshot()
            self.fwlog.record(log_record(msg.datapath.id, regs, snap.ids, summary,
                                         msg.total_len or len(msg.data), snap.revision))
# === end of BASELINE ====================================================================


class StubEngine:
    """What a PuntHandler asks of the engine on the log path: ids and revision.

    The ids are real (the lab state's); snapshot() is a prebuilt object, the same for
    both paths.
    """

    def __init__(self) -> None:
        ids = Ids()
        ids.sync(parse_state(STATE))
        self.ids, self.revision = ids, 1
        self._snap = SimpleNamespace(ids=ids, revision=1)

    def snapshot(self) -> Any:
        return self._snap

    def on_change(self, callback: Callable[[], None]) -> None:
        pass   # the state never changes here

    def learn_new_mac(self, dpid: int, ofport: int, mac: str) -> bool | None:
        return None


def _frame(l3: Any, l4: Any, payload: bytes, src: str, dst: str) -> bytes:
    p = packet.Packet()
    p.add_protocol(ethernet.ethernet(dst=MAC[dst], src=MAC[src], ethertype=0x0800))
    for proto in (l3, l4, payload):
        p.add_protocol(proto)
    p.serialize()
    return bytes(p.data)


def flood_frame() -> bytes:
    """A's flood: UDP to srv port 9 with 32 bytes of payload (tests/lab FLOOD)."""
    return _frame(ipv4.ipv4(src=IP["a"], dst=IP["srv"], proto=17, ttl=64),
                  udp.udp(src_port=40000, dst_port=9), b"f" * 32, "a", "srv")


def syn_frame(sport: int) -> bytes:
    """B's connection to srv:80: a SYN with Linux's options (MSS, SACK, TS, WS)."""
    opts = [tcp.TCPOptionMaximumSegmentSize(max_seg_size=1460), tcp.TCPOptionSACKPermitted(),
            tcp.TCPOptionTimestamps(ts_val=1, ts_ecr=0), tcp.TCPOptionNoOperation(),
            tcp.TCPOptionWindowScale(shift_cnt=7)]
    return _frame(ipv4.ipv4(src=IP["b"], dst=IP["srv"], proto=6, ttl=64),
                  tcp.tcp(src_port=sport, dst_port=80, seq=1, bits=tcp.TCP_SYN,
                          window_size=64240, option=opts), b"", "b", "srv")


def packet_in_wire(frame: bytes, regs: dict[str, int], in_port: int) -> bytes:
    """An OpenFlow 1.3 packet-in from the log punt table, as OVS sends it (the frame
    cut to the table's max_len)."""
    ofp = ofproto_v1_3
    buf = bytearray(ofp.OFP_PACKET_IN_SIZE - ofp.OFP_MATCH_SIZE)
    ofproto_v1_3_parser.OFPMatch(in_port=in_port, **regs).serialize(buf, len(buf))
    buf += bytes(2) + frame[:LOG_MAX_LEN]
    struct.pack_into(ofp.OFP_HEADER_PACK_STR, buf, 0, ofp.OFP_VERSION, ofp.OFPT_PACKET_IN,
                     len(buf), 0)
    struct.pack_into(ofp.OFP_PACKET_IN_PACK_STR, buf, ofp.OFP_HEADER_SIZE,
                     ofp.OFP_NO_BUFFER, len(frame), ofp.OFPR_ACTION, pl.T["punt_log"], 0)
    return bytes(buf)


DATAPATH = SimpleNamespace(id=0xAB, ofproto=ofproto_v1_3, ofproto_parser=ofproto_v1_3_parser)


def parse(wire: bytes) -> Any:
    """Ryu's parse of one OpenFlow message, as its OpenFlow handler does it."""
    version, msg_type, msg_len, xid = ofproto_parser.header(wire)
    return ofproto_parser.msg(DATAPATH, version, msg_type, msg_len, xid, wire)


def workload(scenario: str, n: int, ids: Ids) -> list[bytes]:
    """``n`` packet-in messages (wire bytes) of a scenario."""
    if scenario == "flood":
        regs = {"reg0": pl.VERDICT_DENY | pl.LOG_BIT, "reg3": ids.rule("a-out", "noisy"),
                "reg4": ids.zone("a")}
        return [packet_in_wire(flood_frame(), regs, 1)] * n
    regs = {"reg0": pl.VERDICT_ALLOW | pl.LOG_BIT, "reg3": ids.rule("b-out", "web"),
            "reg4": ids.zone("b")}
    template = packet_in_wire(syn_frame(1024), regs, 2)
    at = template.index(syn_frame(1024)[:LOG_MAX_LEN]) + 14 + 20   # TCP source port
    out = []
    for i in range(n):   # distinct source ports: every packet a new connection
        wire = bytearray(template)
        struct.pack_into("!H", wire, at, 1024 + i % 64000)
        out.append(bytes(wire))
    return out


def _lines(path: Path) -> int:
    return sum(p.read_text().count("\n") for p in path.parent.glob(path.name + "*"))


def run_once(path_name: str, wires: Sequence[bytes], msgs: Sequence[Any], timing: str,
             workdir: Path, engine: StubEngine) -> dict[str, float]:
    """Feed every message through one path with a fresh log; its rates and records."""
    log_path = workdir / f"{path_name}-{time.monotonic_ns()}.jsonl"
    if path_name == "baseline":
        fwlog: FirewallLog = BaselineLog(str(log_path))
        handle = BaselineHandler(engine, fwlog).packet_in
    else:
        fwlog = FirewallLog(str(log_path))
        handle = PuntHandler(engine, fwlog, lambda dpid: None,
                             handle_sigterm=False).packet_in
    try:
        w0, c0 = time.perf_counter(), time.process_time()
        if timing == "handler":
            for m in msgs:
                handle(m)
        else:
            for wire in wires:
                handle(parse(wire))
        fwlog.flush()   # the new path's last batch belongs to the measured work
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    finally:
        fwlog.close()
    n = len(wires)
    return {"pps": n / wall, "pps_cpu": n / cpu if cpu > 0 else float("inf"),
            "records": _lines(log_path)}


def measure(packets: int, rounds: int, workdir: Path) -> dict[str, Any]:
    engine = StubEngine()
    out: dict[str, Any] = {}
    for scenario in SCENARIOS:
        wires = workload(scenario, packets, engine.ids)
        msgs = [parse(w) for w in wires]
        per: dict[str, Any] = {}
        records: dict[str, int] = {}
        for timing in TIMINGS:
            runs: dict[str, list[dict[str, float]]] = {"baseline": [], "new": []}
            for _ in range(rounds):   # interleaved: drifts of a shared machine hit both
                for name in runs:
                    runs[name].append(run_once(name, wires, msgs, timing, workdir, engine))
            res: dict[str, Any] = {}
            for name, rs in runs.items():
                res[f"{name}_pps"] = statistics.median(r["pps"] for r in rs)
                res[f"{name}_pps_cpu"] = statistics.median(r["pps_cpu"] for r in rs)
                records[name] = int(rs[-1]["records"])
            res["ratio"] = res["new_pps"] / res["baseline_pps"]
            res["ratio_cpu"] = res["new_pps_cpu"] / res["baseline_pps_cpu"]
            per[timing] = res
        out[scenario] = {**per, "records_written": records}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vgw_lab.bench.puntrate",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: a check that it runs")
    ap.add_argument("--packets", type=int, help="packet-ins per run (default 20000; "
                    "smoke 300)")
    ap.add_argument("--rounds", type=int, help="runs per path, median kept (default 3; "
                    "smoke 1)")
    args = ap.parse_args(argv)
    packets = args.packets or (300 if args.smoke else 20000)
    rounds = args.rounds or (1 if args.smoke else 3)
    if packets < 1 or rounds < 1:
        ap.error("--packets and --rounds must be at least 1")
    with tempfile.TemporaryDirectory(prefix="vgw-puntrate-") as tmp:
        scenarios = measure(packets, rounds, Path(tmp))
    head = scenarios["new_flows"]["handler"]
    doc = {"bench": "puntrate", "smoke": args.smoke, "packets": packets, "rounds": rounds,
           "python": platform.python_version(), "cpu": _cpu_model(),
           "headline": "new_flows/handler: every packet-in a new connection and a record",
           "baseline_pps": head["baseline_pps"], "new_pps": head["new_pps"],
           "ratio": head["ratio"], "scenarios": scenarios}
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    sys.exit(main())
