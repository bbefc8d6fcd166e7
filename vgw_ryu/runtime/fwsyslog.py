"""Firewall log records as RFC 5424 syslog messages (UDP, TCP or a unix socket).

Operators ship firewall logs with syslog. Each record becomes one message: header,
the record's fields as structured data (SD-ID ``vgw@32473``), and the record as JSON
for the message text. Sending is the standard library's SysLogHandler made
non-blocking: the punt path sends records, and a slow or gone syslog server must cost it
records, never time. No Ryu here.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import socket
import time
from datetime import UTC, datetime
from typing import Any

SD_ID = "vgw@32473"   # 32473: the enterprise number RFC 5612 reserves for examples
APP_NAME = "vgw_ryu"
MSG_ID = "fw"
# What a record's verdict means to syslog: drops are warnings, the rest notices.
SEVERITY = {"deny": "WARNING", "reject": "WARNING", "allow": "INFO"}
MAX_BACKLOG = 1 << 20      # bytes of TCP messages held while the server reads slowly
WARN_EVERY = 60.0          # seconds between warnings about dropped records
LOG = logging.getLogger("vgw_ryu")
_to_json = json.JSONEncoder(sort_keys=True).encode   # json.dumps(..., sort_keys=True), made once


def parse_target(text: str) -> tuple[Any, int]:
    """``udp:HOST:PORT``, ``tcp:HOST:PORT`` or ``unix:PATH`` -> (address, socket type)."""
    kind, _, rest = text.partition(":")
    if kind == "unix" and rest:
        return rest, socket.SOCK_DGRAM
    if kind in ("udp", "tcp"):
        host, _, port = rest.rpartition(":")
        host = host.strip("[]")
        if host and port.isdigit() and 0 < int(port) < 65536:
            return (host, int(port)), socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
    raise ValueError(f"syslog target {text!r}: use udp:HOST:PORT, tcp:HOST:PORT or unix:PATH")


def _sd_value(v: Any) -> str:
    # RFC 5424 6.3.3: inside PARAM-VALUE, '"', '\' and ']' are escaped with '\'.
    text = v if isinstance(v, str) else json.dumps(v)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _sd_name(k: str) -> str:
    # PARAM-NAME: printable ASCII without '=', ' ', ']', '"', at most 32 characters.
    return "".join(c for c in k if c.isascii() and c.isprintable() and c not in '= ]"')[:32]


def format_5424(rec: dict[str, Any], hostname: str | None = None) -> str:
    """The message after ``<PRI>``: version, timestamp, host, app, pid, msgid, SD, text."""
    ts = rec.get("ts")
    when = datetime.fromtimestamp(ts, UTC) if isinstance(ts, (int, float)) \
        else datetime.now(UTC)
    stamp = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    params = " ".join(f'{_sd_name(k)}="{_sd_value(v)}"' for k, v in sorted(rec.items())
                      if v is not None and k != "ts")
    host = (hostname or socket.gethostname() or "-")[:255].replace(" ", "-")
    return (f"1 {stamp} {host} {APP_NAME} {os.getpid()} {MSG_ID} [{SD_ID} {params}] "
            f"{_to_json(rec)}")


class _Formatter(logging.Formatter):
    def __init__(self, stream: bool):
        super().__init__()
        self.stream = stream

    def format(self, record: logging.LogRecord) -> str:
        text = format_5424(record.msg) if isinstance(record.msg, dict) else str(record.msg)
        return text + "\n" if self.stream else text   # RFC 6587 newline framing on TCP


class Sender(logging.handlers.SysLogHandler):
    """A SysLogHandler whose sends never block (the socket is non-blocking).

    A datagram (UDP, unix socket) that cannot go at once is dropped; TCP messages queue
    in a bounded backlog that every send and ``flush()`` drains as far as the socket
    takes. Records dropped either way are counted in ``dropped`` and warned about at
    most once a minute.
    """

    def __init__(self, address: Any, socktype: int):
        super().__init__(address=address, socktype=socktype,
                         facility=logging.handlers.SysLogHandler.LOG_LOCAL0)
        self.append_nul = False
        self.is_stream = socktype == socket.SOCK_STREAM
        self.setFormatter(_Formatter(self.is_stream))
        self.dropped = 0
        self._backlog = bytearray()
        self._queued = 0           # messages in the backlog
        self._warned = -WARN_EVERY
        self._nonblocking()

    def _nonblocking(self) -> None:
        if self.socket is not None and self.socket.fileno() >= 0:
            self.socket.setblocking(False)

    def send(self, rec: dict[str, Any], level: str) -> None:
        """Send one record at ``level`` (a logging level name); never blocks."""
        prio = self.encodePriority(self.facility, self.mapPriority(level))
        text = format_5424(rec) + ("\n" if self.is_stream else "")
        self._send(f"<{prio}>{text}".encode())

    def emit(self, record: logging.LogRecord) -> None:
        """The logging entry point, for records logged the usual way."""
        try:
            prio = self.encodePriority(self.facility, self.mapPriority(record.levelname))
            self._send(f"<{prio}>{self.format(record)}".encode())
        except Exception:
            self.handleError(record)

    def _send(self, msg: bytes) -> None:
        with self.lock:
            if self.is_stream:
                if len(self._backlog) + len(msg) > MAX_BACKLOG:
                    self._dropped(1, "the server reads too slowly")
                    return
                self._backlog += msg
                self._queued += 1
                self._drain()
                return
            try:
                self._send_datagram(msg)
            except BlockingIOError:
                self._dropped(1, "the socket buffer is full")
            except OSError as e:
                self._dropped(1, str(e))

    def _send_datagram(self, msg: bytes) -> None:
        if not self.unixsocket:
            self.socket.sendto(msg, self.address)
            return
        try:
            self.socket.send(msg)
        except BlockingIOError:
            raise
        except OSError:
            # The syslog daemon restarted (its socket is new): connect again, once.
            self.socket.close()
            self._connect_unixsocket(self.address)
            self._nonblocking()
            self.socket.send(msg)

    def _drain(self) -> None:
        """Send as much of the TCP backlog as the socket takes now (lock held)."""
        while self._backlog:
            try:
                n = self.socket.send(self._backlog)
            except BlockingIOError:
                return
            except OSError as e:
                self._dropped(self._queued, str(e))
                self._backlog.clear()
                self._queued = 0
                return
            if n <= 0:
                return
            self._queued -= self._backlog.count(b"\n", 0, n)
            del self._backlog[:n]

    def _dropped(self, n: int, why: str) -> None:
        self.dropped += n
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY:
            self._warned = now
            LOG.warning("syslog %s: %d firewall log records dropped so far (%s)",
                        self.address, self.dropped, why)

    def flush(self) -> None:
        """Send what the TCP backlog holds, as far as the socket takes it now."""
        with self.lock:
            if self.is_stream and self._backlog:
                self._drain()

    def close(self) -> None:
        """Give the TCP backlog up to a second to go out, then close."""
        with self.lock:
            if self.is_stream and self._backlog and self.socket is not None:
                try:
                    self.socket.settimeout(1.0)
                    self.socket.sendall(self._backlog)
                except OSError:
                    pass
                self._backlog.clear()
        super().close()


def handler(target: str) -> Sender:
    """A non-blocking handler that sends dict records to ``target`` as RFC 5424."""
    address, socktype = parse_target(target)
    return Sender(address, socktype)
