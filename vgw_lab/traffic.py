"""Traffic for labs and tests, run inside a VM namespace or Mininet host.

    python -m vgw_lab.traffic serve --tcp 80,8080 --udp 53     # echo servers
    python -m vgw_lab.traffic probe tcp 10.0.0.2 80            # one verdict, as JSON
    python -m vgw_lab.traffic stream 10.0.0.2 80 --seconds 5   # progress lines, JSON

A probe's verdict: ``allow`` (connected / answered), ``reject`` (refused at once:
TCP RST or ICMP unreachable), ``deny`` (silence until the timeout).
"""

from __future__ import annotations

import argparse
import errno
import json
import selectors
import socket
import sys
import threading
import time


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def probe_tcp(host: str, port: int, timeout: float) -> dict:
    t0 = time.monotonic()
    s = socket.socket(_family(host), socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        s.sendall(b"ping\n")
        data = s.recv(64)
        verdict = "allow" if data else "deny"
        detail = "echoed" if data else "closed"
    except ConnectionRefusedError:
        verdict, detail = "reject", "connection refused"
    except TimeoutError:
        verdict, detail = "deny", "timeout"
    except OSError as e:
        unreachable = (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM)
        verdict = "reject" if e.errno in unreachable else "deny"
        detail = e.strerror or str(e)
    finally:
        s.close()
    return {"verdict": verdict, "detail": detail, "ms": round((time.monotonic() - t0) * 1000)}


def probe_udp(host: str, port: int, timeout: float) -> dict:
    t0 = time.monotonic()
    s = socket.socket(_family(host), socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        deadline = t0 + timeout
        # Resend a few times: the first datagram may wait for ARP/ND.
        while True:
            s.send(b"ping\n")
            try:
                s.settimeout(min(0.3, max(deadline - time.monotonic(), 0.01)))
                s.recv(64)
                verdict, detail = "allow", "echoed"
                break
            except TimeoutError:
                if time.monotonic() >= deadline:
                    verdict, detail = "deny", "timeout"
                    break
    except ConnectionRefusedError:
        verdict, detail = "reject", "port unreachable"
    except OSError as e:
        verdict, detail = ("reject" if e.errno in (errno.EHOSTUNREACH, errno.EACCES)
                           else "deny"), e.strerror or str(e)
    finally:
        s.close()
    return {"verdict": verdict, "detail": detail, "ms": round((time.monotonic() - t0) * 1000)}


def serve(tcp_ports: list[int], udp_ports: list[int], v6: bool) -> None:
    """Echo servers on every given port, IPv4 and (with v6) IPv6, until killed."""
    sel = selectors.DefaultSelector()
    fams = [socket.AF_INET] + ([socket.AF_INET6] if v6 else [])
    for fam in fams:
        any_addr = "::" if fam == socket.AF_INET6 else "0.0.0.0"
        for p in tcp_ports:
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((any_addr, p))
            s.listen(64)
            sel.register(s, selectors.EVENT_READ, "tcp")
        for p in udp_ports:
            s = socket.socket(fam, socket.SOCK_DGRAM)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((any_addr, p))
            sel.register(s, selectors.EVENT_READ, "udp")
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if key.data == "udp":
                data, addr = s.recvfrom(65535)
                s.sendto(data, addr)
            else:
                conn, _ = s.accept()
                threading.Thread(target=_echo, args=(conn,), daemon=True).start()


def _echo(conn: socket.socket) -> None:
    with conn:
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            try:
                conn.sendall(data)
            except OSError:
                return


def stream(host: str, port: int, seconds: float, chunk: int, interval: float) -> int:
    """Send ``chunk`` bytes every ``interval`` and read the echo; report progress."""
    s = socket.create_connection((host, port), timeout=10)
    s.settimeout(0.05)
    sent = recv = 0
    t0 = time.monotonic()
    next_report = t0
    error = None
    payload = b"x" * chunk
    while time.monotonic() - t0 < seconds:
        try:
            s.sendall(payload)
            sent += chunk
        except OSError as e:
            error = str(e)
            break
        end = time.monotonic() + interval
        while time.monotonic() < end:
            try:
                data = s.recv(65536)
                if not data:
                    error = "closed by peer"
                    break
                recv += len(data)
            except TimeoutError:
                pass
            except OSError as e:
                error = str(e)
                break
        if error:
            break
        now = time.monotonic()
        if now >= next_report:
            print(json.dumps({"t": round(time.time(), 3), "sent": sent, "recv": recv}),
                  flush=True)
            next_report = now + 0.1
    # Drain what is still in flight.
    drain_end = time.monotonic() + 2
    while recv < sent and time.monotonic() < drain_end and not error:
        try:
            data = s.recv(65536)
            if not data:
                break
            recv += len(data)
        except TimeoutError:
            pass
        except OSError:
            break
    s.close()
    print(json.dumps({"t": round(time.time(), 3), "sent": sent, "recv": recv, "done": True,
                      "error": error}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m vgw_lab.traffic")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sv = sub.add_parser("serve")
    sv.add_argument("--tcp", default="")
    sv.add_argument("--udp", default="")
    sv.add_argument("--v6", action="store_true")
    pr = sub.add_parser("probe")
    pr.add_argument("proto", choices=["tcp", "udp"])
    pr.add_argument("host")
    pr.add_argument("port", type=int)
    pr.add_argument("--timeout", type=float, default=1.5)
    st = sub.add_parser("stream")
    st.add_argument("host")
    st.add_argument("port", type=int)
    st.add_argument("--seconds", type=float, default=5)
    st.add_argument("--chunk", type=int, default=1024)
    st.add_argument("--interval", type=float, default=0.01)
    a = ap.parse_args(argv)
    if a.cmd == "serve":
        ports = [int(p) for p in a.tcp.split(",") if p]
        uports = [int(p) for p in a.udp.split(",") if p]
        serve(ports, uports, a.v6)
        return 0
    if a.cmd == "probe":
        fn = probe_tcp if a.proto == "tcp" else probe_udp
        print(json.dumps(fn(a.host, a.port, a.timeout)))
        return 0
    return stream(a.host, a.port, a.seconds, a.chunk, a.interval)


if __name__ == "__main__":
    sys.exit(main())
