"""The firewall log: JSON-lines records in a rotating file plus a recent-records buffer.

Fed by the punt path (packet-ins of log/reject/default-deny), read by GET /v1/logs and
``vgwctl logs``; optionally sent to syslog (RFC 5424). Packets of one flow within a
second fold into records with a count, so a flood makes few records. No Ryu here.
"""

from __future__ import annotations

import collections
import json
import logging
import logging.handlers
import os
import threading
import time
from datetime import UTC, datetime
from typing import Any

from vgw_ryu.runtime import fwsyslog

FOLD_SECONDS = 1.0


def utc_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def parse_since(text: str | None) -> float | None:
    """UNIX seconds or ISO 8601 -> UNIX seconds."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()


FOLD_KEY = ("switch", "vm", "direction", "verdict", "policy", "rule", "protocol", "src", "dst",
            "sport", "dport")


class FirewallLog:
    """Writes records to ``path`` (rotated at ``max_bytes``) and to syslog, keeps the last N.

    Records of one flow (same switch, VM, verdict, rule and 5-tuple) fold for a second:
    the first packet makes a record at once; the packets that follow within the second
    are counted, and the count goes out as one more record (``count``: packets it stands
    for) when the second is over. A one-way stream or a flood thus makes about one
    record per second per flow, and every packet is counted in the file.
    """

    def __init__(self, path: str | None, max_bytes: int = 10 * 1024 * 1024,
                 keep: int = 10000, backups: int = 5, syslog: str | None = None):
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)
        self.lock = threading.Lock()
        self._fold: dict[tuple, dict[str, Any]] = {}   # key -> {"rec", "since", "pending"}
        self._next_sweep = 0.0
        self._handlers: list[logging.Handler] = []
        self.logger = logging.getLogger(f"vgw_ryu.fwlog.{id(self)}")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            h: logging.Handler = logging.handlers.RotatingFileHandler(
                path, maxBytes=max_bytes, backupCount=backups)
            h.setFormatter(_JsonLines())
            self._handlers.append(h)
        if syslog:
            self._handlers.append(fwsyslog.handler(syslog))
        for h in self._handlers:
            self.logger.addHandler(h)

    def record(self, rec: dict[str, Any], now: float | None = None) -> dict[str, Any] | None:
        """Log one punted packet; returns the record written, or None when folded."""
        now = time.time() if now is None else now
        key = tuple(rec.get(k) for k in FOLD_KEY)
        out: list[dict[str, Any]] = []
        with self.lock:
            fold = self._fold.get(key)
            if fold is not None and now - fold["since"] < FOLD_SECONDS:
                fold["pending"] += 1
                return None
            self._fold.pop(key, None)
            if now >= self._next_sweep:   # other flows' windows that are over
                self._next_sweep = now + FOLD_SECONDS / 4
                out += self._expire(now)
            # A window that closed with packets counted: this packet joins their record.
            rec = self._stamp(rec, now, 1 + (fold["pending"] if fold is not None else 0))
            self._fold[key] = {"rec": rec, "since": now, "pending": 0}
            out.append(rec)
        self._emit(out)
        return rec

    def flush(self, now: float | None = None) -> int:
        """Write the counts of windows that are over (call it about once a second)."""
        now = time.time() if now is None else now
        with self.lock:
            out = self._expire(now)
        self._emit(out)
        return len(out)

    def _expire(self, now: float) -> list[dict[str, Any]]:
        """Records for every fold window that ended with packets counted (lock held)."""
        out = []
        for key, fold in list(self._fold.items()):
            if now - fold["since"] < FOLD_SECONDS:
                continue
            if not fold["pending"]:
                del self._fold[key]   # the flow went quiet
                continue
            # The window's packets in one record; a new window starts, so a steady flow
            # makes one record a second.
            src = {k: v for k, v in fold["rec"].items() if k not in ("time", "ts", "count")}
            out.append(self._stamp(src, now, fold["pending"]))
            fold["since"], fold["pending"] = now, 0
        return out

    def _stamp(self, rec: dict[str, Any], now: float, count: int) -> dict[str, Any]:
        rec = {"time": utc_iso(now), "ts": round(now, 6), **rec, "count": count}
        self.recent.append(rec)
        return rec

    def _emit(self, records: list[dict[str, Any]]) -> None:
        for rec in records:
            level = getattr(logging, fwsyslog.SEVERITY.get(rec.get("verdict"), "INFO"))
            self.logger.log(level, rec)

    def close(self) -> None:
        """Write pending counts and close the file and syslog handlers."""
        self.flush(now=float("inf"))
        for h in self._handlers:
            self.logger.removeHandler(h)
            h.close()
        self._handlers = []

    def query(self, vm: str | None = None, verdict: str | None = None,
              since: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest last, at most ``limit``, filtered by VM, verdict and time."""
        t = parse_since(since)
        with self.lock:
            out = [r for r in self.recent
                   if (vm is None or r.get("vm") == vm)
                   and (verdict is None or r.get("verdict") == verdict)
                   and (t is None or r["ts"] >= t)]
        return [dict(r) for r in out[-limit:]]


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(record.msg, sort_keys=True) if isinstance(record.msg, dict) \
            else str(record.msg)
