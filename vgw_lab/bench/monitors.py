"""Simulated agents for the fleet bench: raw JSON-RPC ``monitor_cond`` clients of the
policy database, one socket each, all read by one thread of this process; each records
when every ``Global.revision`` reached it."""

from __future__ import annotations

import json
import os
import selectors
import socket
import threading
import time

from vgw_lab.netlab import wait_until

TABLES = ("Global", "VM", "Group", "Policy", "Rule")    # what an agent monitors

class _Conn:
    __slots__ = ("addr", "buf", "i", "out", "rev", "seen", "sock")

    def __init__(self, i: int, addr: tuple[str, int], out: bytes):
        self.i, self.addr, self.out, self.buf, self.rev = i, addr, out, "", -1
        self.sock: socket.socket | None = None
        self.seen: dict[int, float] = {}     # revision -> when it arrived


class MonitorClients:
    """N JSON-RPC clients, each monitoring the policy tables as an agent does, served
    by one thread (which also connects them, a batch at a time, so that the servers'
    inactivity probes are answered from the first second); ``seen(rev)`` says when
    each client first had revision ``rev``."""

    CONNECTING = 50     # connects in flight at once (the servers' listen backlog)

    def __init__(self, remotes: list[str], n: int, timeout: float = 120):
        self.sel = selectors.DefaultSelector()
        self.decoder = json.JSONDecoder()
        self.stop = threading.Event()
        self.errors: list[str] = []
        requests = {t: [{"columns": ["revision"]}] if t == "Global" else [{}] for t in TABLES}
        self.conns = []
        for i in range(n):
            host, port = remotes[i % len(remotes)].split(":")[1:]
            self.conns.append(_Conn(i, (host, int(port)), json.dumps(
                {"id": 0, "method": "monitor_cond",
                 "params": ["VGW", ["sim", i], requests]}).encode()))
        self._next = 0
        self._connecting = 0
        self.thread = threading.Thread(target=self._loop, daemon=True, name="monitors")
        self.thread.start()
        wait_until(lambda: self.all_at(0) or self.errors, timeout=timeout,
                   what=f"{n} monitors to get their initial replies")
        if self.errors:
            self.close()
            raise RuntimeError(f"simulated agents failed: {self.errors[:5]}")

    def _connect_more(self) -> None:
        while self._connecting < self.CONNECTING and self._next < len(self.conns):
            c = self.conns[self._next]
            self._next += 1
            c.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.sock.setblocking(False)
            c.sock.connect_ex(c.addr)     # in progress: writable once connected
            self.sel.register(c.sock, selectors.EVENT_WRITE, c)
            self._connecting += 1

    def _loop(self) -> None:
        while not self.stop.is_set():
            self._connect_more()
            for key, events in self.sel.select(timeout=0.1):
                c: _Conn = key.data
                if events & selectors.EVENT_WRITE:
                    self._connected(c)
                    continue
                try:
                    data = c.sock.recv(1 << 20)
                except BlockingIOError:
                    continue
                except OSError as e:
                    self._fail(c, str(e))
                    continue
                at = time.monotonic()
                if not data:
                    self._fail(c, "closed by the server")
                    continue
                c.buf += data.decode()
                self._parse(c, at)

    def _connected(self, c: _Conn) -> None:
        self._connecting -= 1
        err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._fail(c, os.strerror(err))
            return
        self._send(c, c.out)
        self.sel.modify(c.sock, selectors.EVENT_READ, c)

    def _fail(self, c: _Conn, why: str) -> None:
        self.errors.append(f"client {c.i}: {why}")
        self.sel.unregister(c.sock)

    @staticmethod
    def _send(c: _Conn, data: bytes) -> None:
        # Small messages on an idle socket: blocking for that moment is fine.
        c.sock.setblocking(True)
        c.sock.sendall(data)
        c.sock.setblocking(False)

    def _parse(self, c: _Conn, at: float) -> None:
        while True:
            text = c.buf.lstrip()
            if not text:
                c.buf = ""
                return
            try:
                msg, end = self.decoder.raw_decode(text)
            except ValueError:
                c.buf = text    # an incomplete message: wait for the rest
                return
            c.buf = text[end:]
            if msg.get("method") == "echo":    # the server's inactivity probe
                self._send(c, json.dumps({"id": msg["id"], "result": msg["params"],
                                          "error": None}).encode())
                continue
            if msg.get("error"):
                self.errors.append(f"client {c.i}: {msg['error']}")
                continue
            if "result" in msg:
                updates = msg["result"]
                c.rev = max(c.rev, 0)    # an empty database has no Global row yet
            elif msg.get("method") == "update2":
                updates = msg["params"][1]
            else:
                continue
            for row in (updates or {}).get("Global", {}).values():
                for op in ("initial", "insert", "modify"):
                    rev = (row.get(op) or {}).get("revision")
                    if rev is not None and rev > c.rev:
                        c.rev = rev
                        c.seen.setdefault(rev, at)

    def all_at(self, rev: int) -> bool:
        return all(c.rev >= rev for c in self.conns)

    def seen(self, rev: int) -> list[float]:
        """When each client first had ``rev`` (or a later revision)."""
        out = []
        for c in self.conns:
            ts = [t for r, t in c.seen.items() if r >= rev]
            out.append(min(ts))
        return out

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        for c in self.conns:
            if c.sock is not None:
                c.sock.close()
        self.sel.close()

