"""Checks made before the controller starts serving: a failure exits with a message.

Ryu's OpenFlow server binds its port in a green thread; when the port is taken that
thread dies with "Address already in use" and the process would go on running with
no switch able to connect. So the app binds the same address itself first (with
SO_REUSEADDR, as eventlet does) and stops if it cannot.
"""

from __future__ import annotations

import socket

from ryu.ofproto import ofproto_common


def openflow_address(conf) -> tuple[str, int]:
    """(host, port) Ryu's OpenFlowController will listen on."""
    port = conf.ofp_tcp_listen_port or ofproto_common.OFP_TCP_PORT
    return conf.ofp_listen_host or "", port


def check_openflow_listen(conf) -> None:
    """SystemExit naming the address when the OpenFlow port cannot be bound."""
    host, port = openflow_address(conf)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
            s.listen(1)
    except OSError as e:
        shown = f"[{host}]" if ":" in host else (host or "0.0.0.0")
        raise SystemExit(
            f"vgw_ryu: cannot listen for OpenFlow switches on {shown}:{port}: "
            f"{e.strerror or e} (another controller running? choose a port with "
            "--ofp-tcp-listen-port)") from None
