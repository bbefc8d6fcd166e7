"""Where the policy database (``VGW``) is: its file, the files named after it, and the
addresses it is served and reached at.

A database is one file (``DbFiles.db``) with its companions next to it: the client
socket, the unixctl socket, pid file, log and a small JSON config. Addresses are checked
here before any OVS tool sees them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DB_FILE_NAME", "DB_NAME", "DEFAULT_DATA_DIR", "SCHEMA_PATH", "DbError",
           "DbFiles", "check_active", "check_passive", "client_remote"]

SCHEMA_PATH = Path(__file__).with_name("vgw.ovsschema")
DB_NAME = "VGW"
DEFAULT_DATA_DIR = Path("/var/lib/vgw_ryu")
DB_FILE_NAME = "vgw.db"

_HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[A-Za-z0-9](?:[A-Za-z0-9.-]*))"
_ACTIVE_RE = re.compile(rf"^tcp:{_HOST}:(?P<port>[0-9]+)$")
_PASSIVE_RE = re.compile(rf"^ptcp:(?P<port>[0-9]+)(?::{_HOST})?$")


class DbError(RuntimeError):
    """An OVSDB file or ``ovsdb-server`` operation failed; the message names what."""


@dataclass(frozen=True)
class DbFiles:
    """The database file and the files derived from its name."""

    db: Path

    def __post_init__(self) -> None:
        # ovsdb-server --detach changes to "/", so every path it gets must be absolute.
        object.__setattr__(self, "db", Path(os.path.abspath(os.fspath(self.db))))

    @classmethod
    def in_dir(cls, data_dir: str | os.PathLike[str] = DEFAULT_DATA_DIR) -> DbFiles:
        """The standard file name (``vgw.db``) in ``data_dir``."""
        return cls(Path(data_dir) / DB_FILE_NAME)

    def _with(self, suffix: str) -> Path:
        return self.db.with_name(self.db.name + suffix)

    @property
    def sock(self) -> Path:
        return self._with(".sock")

    @property
    def ctl(self) -> Path:
        return self._with(".ctl")

    @property
    def pid(self) -> Path:
        return self._with(".pid")

    @property
    def log(self) -> Path:
        return self._with(".log")

    @property
    def raft_sock(self) -> Path:
        return self._with(".raft.sock")

    @property
    def config(self) -> Path:
        return self._with(".json")

    @property
    def remote(self) -> str:
        """What local clients connect to: ``unix:<sock>``."""
        return f"unix:{self.sock}"


# --- addresses ---------------------------------------------------------------------------
def _check_port(addr: str, port: str, what: str) -> None:
    if not 0 < int(port) < 65536:
        raise DbError(f"{what} {addr!r}: port {port} is not in 1-65535")


# SSL (ssl:/pssl:) is not offered: ovsdb-server would also need keys and certificates.
def check_active(addr: str, what: str = "address") -> str:
    """Validate a connect address (``tcp:IP:PORT`` or ``unix:PATH``)."""
    if addr.startswith("unix:") and len(addr) > 5:
        return addr
    m = _ACTIVE_RE.match(addr)
    if not m:
        raise DbError(f"{what} {addr!r} is not tcp:IP:PORT or unix:PATH")
    _check_port(addr, m["port"], what)
    return addr


def check_passive(addr: str, what: str = "listen remote") -> str:
    """Validate a listen remote (``ptcp:PORT[:IP]`` or ``punix:PATH``)."""
    if addr.startswith("punix:") and len(addr) > 6:
        return addr
    m = _PASSIVE_RE.match(addr)
    if not m:
        raise DbError(f"{what} {addr!r} is not ptcp:PORT[:IP] or punix:PATH")
    _check_port(addr, m["port"], what)
    return addr


def client_remote(listen: str) -> str:
    """The address a client on this host connects to for a listen remote.

    ``ptcp:6641:10.0.0.1`` -> ``tcp:10.0.0.1:6641``; a wildcard address (none,
    0.0.0.0, ::) -> the loopback address.
    """
    if listen.startswith("punix:"):
        return "unix:" + listen[len("punix:"):]
    proto, _, rest = listen[1:].partition(":")
    port, _, host = rest.partition(":")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host in ("[::]", "::"):
        host = "[::1]"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{proto}:{host}:{port}"

