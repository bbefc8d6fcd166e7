"""The firewall log: JSON-lines records in a rotating file plus a recent-records buffer.

Fed by the punt path (packet-ins of log/reject/default-deny), read by GET /v1/logs and
``vgwctl logs``. Repeated drops of one flow within a second fold into one record with
a count, so a flood makes few records. No Ryu here.
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


class FirewallLog:
    """Writes records to ``path`` (rotated at ``max_bytes``) and keeps the last N."""

    def __init__(self, path: str | None, max_bytes: int = 10 * 1024 * 1024,
                 keep: int = 10000, backups: int = 5):
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)
        self.lock = threading.Lock()
        self._fold: dict[tuple, dict[str, Any]] = {}
        self.logger: logging.Logger | None = None
        self.suppressed = 0
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes,
                                                           backupCount=backups)
            handler.setFormatter(logging.Formatter("%(message)s"))
            self.logger = logging.getLogger(f"vgw_ryu.fwlog.{id(self)}")
            self.logger.propagate = False
            self.logger.setLevel(logging.INFO)
            self.logger.addHandler(handler)

    def record(self, rec: dict[str, Any], now: float | None = None) -> dict[str, Any] | None:
        """Log one event; drops of a flow seen in the last second only bump its count."""
        now = time.time() if now is None else now
        with self.lock:
            if rec.get("verdict") != "allow":
                key = (rec.get("switch"), rec.get("direction"), rec.get("verdict"),
                       rec.get("protocol"), rec.get("src"), rec.get("dst"),
                       rec.get("sport"), rec.get("dport"))
                prev = self._fold.get(key)
                if prev is not None and now - prev["ts"] < FOLD_SECONDS:
                    prev["count"] += 1
                    return None
                if len(self._fold) > 4096:
                    self._fold = {k: v for k, v in self._fold.items() if now - v["ts"] < 1}
            rec = {"time": utc_iso(now), "ts": round(now, 6), "count": 1, **rec}
            if rec.get("verdict") != "allow":
                self._fold[key] = rec
            self.recent.append(rec)
        if self.logger is not None:
            self.logger.info(json.dumps(rec, sort_keys=True))
        return rec

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
