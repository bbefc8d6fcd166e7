"""Firewall log records as RFC 5424 syslog messages (UDP, TCP or a unix socket).

Operators ship firewall logs with syslog. Each record becomes one message: header,
the record's fields as structured data (SD-ID ``vgw@32473``), and the record as JSON
for the message text. Sending is the standard library's SysLogHandler. No Ryu here.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import socket
from datetime import UTC, datetime
from typing import Any

SD_ID = "vgw@32473"   # 32473: the enterprise number RFC 5612 reserves for examples
APP_NAME = "vgw_ryu"
MSG_ID = "fw"
# What a record's verdict means to syslog: drops are warnings, the rest notices.
SEVERITY = {"deny": "WARNING", "reject": "WARNING", "allow": "INFO"}


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
            f"{json.dumps(rec, sort_keys=True)}")


class _Formatter(logging.Formatter):
    def __init__(self, stream: bool):
        super().__init__()
        self.stream = stream

    def format(self, record: logging.LogRecord) -> str:
        text = format_5424(record.msg) if isinstance(record.msg, dict) else str(record.msg)
        return text + "\n" if self.stream else text   # RFC 6587 newline framing on TCP


def handler(target: str) -> logging.Handler:
    """A logging handler that sends dict records to ``target`` as RFC 5424 messages."""
    address, socktype = parse_target(target)
    h = logging.handlers.SysLogHandler(address=address, socktype=socktype,
                                       facility=logging.handlers.SysLogHandler.LOG_LOCAL0)
    h.append_nul = False
    h.setFormatter(_Formatter(socktype == socket.SOCK_STREAM))
    return h
