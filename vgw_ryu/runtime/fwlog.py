"""The firewall log: JSON-lines records in a rotating file plus a recent-records buffer.

Fed by the punt path (packet-ins of log/reject/default-deny), read by GET /v1/logs and
``vgwctl logs``; optionally sent to syslog (RFC 5424). Packets of one flow within a
second fold into records with a count, so a flood makes few records. The file is
written in batches (one write and flush per batch, at most BATCH_SECONDS late; the
recent-records buffer has every record at once). No Ryu here.
"""

from __future__ import annotations

import atexit
import collections
import json
import logging
import logging.handlers
import os
import threading
import time
import weakref
from datetime import UTC, datetime
from typing import Any

from vgw_ryu.runtime import fwsyslog

FOLD_SECONDS = 1.0
BATCH_SECONDS = 0.25   # a record waits at most this long for its batch (or the 0.5 s timer)
BATCH_RECORDS = 512    # ... or until this many are pending
LOG = logging.getLogger("vgw_ryu")
# json.dumps(rec, sort_keys=True) builds an encoder per call; one made once writes the
# same text.
_to_json = json.JSONEncoder(sort_keys=True).encode


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

    The file gets records in batches: ``flush()`` (the controller calls it every 0.5 s)
    writes what is pending, and so does a record finding the batch full or its oldest
    record BATCH_SECONDS old. ``close()`` - also run at interpreter exit - writes the
    rest, folded counts included.
    """

    def __init__(self, path: str | None, max_bytes: int = 10 * 1024 * 1024,
                 keep: int = 10000, backups: int = 5, syslog: str | None = None):
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)
        self.lock = threading.Lock()
        self._fold: dict[tuple, dict[str, Any]] = {}   # key -> {"rec", "since", "pending"}
        self._next_sweep = 0.0
        self._handlers: list[logging.Handler] = []
        self._file: BatchFile | None = None
        self._syslog: fwsyslog.Sender | None = None
        # The handlers hang on a logger of their own (never propagating), so whoever
        # holds the logger can flush or close them the standard way.
        self.logger = logging.getLogger(f"vgw_ryu.fwlog.{id(self)}")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._file = BatchFile(path, max_bytes, backups)
            self._handlers.append(self._file)
        if syslog:
            self._syslog = fwsyslog.handler(syslog)
            self._handlers.append(self._syslog)
        for h in self._handlers:
            self.logger.addHandler(h)
        _OPEN.add(self)

    def record(self, rec: dict[str, Any], now: float | None = None) -> dict[str, Any] | None:
        """Log one punted packet; returns the record written, or None when folded."""
        now = time.time() if now is None else now
        key = tuple(map(rec.get, FOLD_KEY))
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
        """Write the counts of windows that are over, and the pending batch.

        Call it about twice a second; returns how many count records it made.
        """
        now = time.time() if now is None else now
        with self.lock:
            out = self._expire(now)
        self._emit(out)
        for h in self._handlers:
            h.flush()
        return len(out)

    def _expire(self, now: float, final: bool = False) -> list[dict[str, Any]]:
        """Records for every fold window that ended with packets counted (lock held).

        ``final``: every window ends now (closing).
        """
        out = []
        for key, fold in list(self._fold.items()):
            if now - fold["since"] < FOLD_SECONDS and not final:
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
            if self._file is not None:
                self._file.add(_to_json(rec))
            if self._syslog is not None:
                self._syslog.send(rec, fwsyslog.SEVERITY.get(rec.get("verdict"), "INFO"))

    def write_out(self) -> None:
        """Write every pending record and count now, waiting for no lock (exit paths).

        For a signal handler, which runs on top of whatever it interrupted: a lock that
        code holds would never be released, so a busy lock means that part is skipped.
        """
        if self.lock.acquire(blocking=False):
            try:
                out = self._expire(time.time(), final=True)
            finally:
                self.lock.release()
            self._emit(out)
        if self._file is not None:
            self._file.write_out()

    def close(self) -> None:
        """Write pending counts and records, and close the file and syslog handlers."""
        _OPEN.discard(self)
        with self.lock:
            out = self._expire(time.time(), final=True)
        self._emit(out)
        for h in self._handlers:
            self.logger.removeHandler(h)
            h.close()
        self._handlers = []
        self._file = self._syslog = None

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


class BatchFile(logging.handlers.RotatingFileHandler):
    """A rotating JSON-lines file written in batches: one write and flush per batch.

    ``add`` queues a line (the punt path's call: no LogRecord); ``flush`` writes the
    queued lines, rotating first when they would take the file past ``max_bytes``.
    Records logged through the handler the standard way are queued the same way.
    """

    def __init__(self, path: str, max_bytes: int, backups: int):
        super().__init__(path, maxBytes=max_bytes, backupCount=backups)
        self.setFormatter(_JsonLines())
        self.pending: list[str] = []
        self._oldest = 0.0            # monotonic time the oldest pending line was queued
        self._failed: str | None = None
        self.is_closed = False

    def add(self, line: str) -> None:
        """Queue one line; write the batch when it is full or has waited long enough."""
        with self.lock:
            if self.is_closed:
                return   # closed (shutting down): nothing may reopen the file
            if not self.pending:
                self._oldest = time.monotonic()
            self.pending.append(line)
            if len(self.pending) >= BATCH_RECORDS or \
                    time.monotonic() - self._oldest >= BATCH_SECONDS:
                self._write()

    def emit(self, record: logging.LogRecord) -> None:
        self.add(self.format(record))

    def flush(self) -> None:
        with self.lock:
            self._write()
            super().flush()

    def _write(self) -> None:
        """Write the pending lines (lock held); a failure is logged, not raised."""
        if not self.pending:
            return
        lines, self.pending = self.pending, []
        try:
            if self.stream is None:
                self.stream = self._open()
            rotates = self.maxBytes > 0 and os.path.isfile(self.baseFilename)
            size = self.stream.tell()
            chunk: list[str] = []
            for line in lines:
                # The rotating handler's rule, per line: rotate before the line that
                # would reach max_bytes (never a special file such as /dev/stdout).
                if rotates and size + len(line) + 1 >= self.maxBytes and (chunk or size):
                    self._put(chunk)
                    chunk = []
                    self.doRollover()
                    size = self.stream.tell()
                chunk.append(line)
                size += len(line) + 1
            self._put(chunk)
            self._failed = None
        except OSError as e:
            if self._failed != str(e):   # once per kind of failure, not per batch
                self._failed = str(e)
                LOG.warning("firewall log %s: %d records could not be written: %s",
                            self.baseFilename, len(lines), e)

    def _put(self, lines: list[str]) -> None:
        if lines:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()

    def write_out(self) -> None:
        """Write the pending lines unless another thread holds the handler (exit paths)."""
        if self.lock.acquire(blocking=False):   # an RLock: the interrupted code's is ours
            try:
                self._write()
            finally:
                self.lock.release()

    def close(self) -> None:
        with self.lock:
            self._write()
            self.is_closed = True
        super().close()


_OPEN: weakref.WeakSet[FirewallLog] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """At interpreter exit, no firewall log keeps records or counts unwritten."""
    for fw in list(_OPEN):
        fw.close()


def write_out_all() -> None:
    """FirewallLog.write_out() for every open log: for a process about to die (SIGTERM)."""
    for fw in list(_OPEN):
        try:
            fw.write_out()
        except Exception:   # dying anyway: the other logs still get their turn
            LOG.exception("firewall log: writing out at exit failed")


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return _to_json(record.msg) if isinstance(record.msg, dict) \
            else str(record.msg)
