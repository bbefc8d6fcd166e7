"""Per-VM connection limits: conntrack zone limits set through ovs-vswitchd's unixctl.

One VM must not be able to fill the connection table every VM shares. OVS caps the
entries of a zone (``dpctl/ct-set-limits``, the userspace datapath included); a new
connection over the cap gets no entry, so its first reply is invalid and dropped while
established connections are untouched. The commands go over the daemon's control
socket with the ``ovs`` library (no shell). No Ryu here.
"""

from __future__ import annotations

import glob
import logging
import os
import re

import ovs.dirs
import ovs.unixctl.client

LOG = logging.getLogger("vgw_ryu.ctlimits")
_ZONE_LINE = re.compile(r"zone=(\d+),limit=(\d+),count=(\d+)")


class UnixctlError(RuntimeError):
    """ovs-vswitchd could not be reached, or refused a command."""


def vswitchd_socket(rundir: str | None = None) -> str:
    """The control socket of the local ovs-vswitchd (found through its pid file)."""
    # Distributions run OVS from /var/run/openvswitch; the PyPI library's default
    # (/usr/local/var/run/...) is where a source build would put it.
    dirs = [rundir] if rundir else [d for d in (os.environ.get("OVS_RUNDIR"),
                                               "/var/run/openvswitch", ovs.dirs.RUNDIR) if d]
    for d in dirs:
        try:
            with open(os.path.join(d, "ovs-vswitchd.pid"), encoding="ascii") as f:
                pid = int(f.read().strip())
            path = os.path.join(d, f"ovs-vswitchd.{pid}.ctl")
            if os.path.exists(path):
                return path
        except (OSError, ValueError):
            pass
        found = sorted(glob.glob(os.path.join(d, "ovs-vswitchd.*.ctl")))
        if found:
            return found[-1]
    raise UnixctlError(f"no ovs-vswitchd control socket in {', '.join(dirs)}")


def call(command: str, *args: str, socket_path: str | None = None) -> str:
    """Run one unixctl command on ovs-vswitchd and return its text answer."""
    path = socket_path or vswitchd_socket()
    err, client = ovs.unixctl.client.UnixctlClient.create(path)
    if err or client is None:
        raise UnixctlError(f"cannot connect to {path}: {os.strerror(err) if err else '?'}")
    try:
        err, error, result = client.transact(command, list(args))
    finally:
        client.close()
    if err:
        raise UnixctlError(f"{command}: {os.strerror(err)}")
    if error is not None:
        raise UnixctlError(f"{command}: {str(error).strip()}")
    return str(result or "")


def parse_limits(text: str) -> dict[int, tuple[int, int]]:
    """zone -> (limit, count) from ``dpctl/ct-get-limits`` output."""
    return {int(z): (int(lim), int(n)) for z, lim, n in _ZONE_LINE.findall(text)}


class ZoneLimits:
    """Keeps the datapath's zone limits equal to the wanted ones (zone -> max entries)."""

    def __init__(self, socket_path: str | None = None):
        self.socket_path = socket_path
        self.applied: dict[int, int] = {}

    def apply(self, wanted: dict[int, int]) -> list[str]:
        """Set, change or remove zone limits; returns what changed (for the log)."""
        changes = []
        sets = [f"zone={z},limit={lim}" for z, lim in sorted(wanted.items())
                if self.applied.get(z) != lim]
        gone = [z for z in sorted(self.applied) if z not in wanted]
        if sets:
            call("dpctl/ct-set-limits", *sets, socket_path=self.socket_path)
            changes += sets
        if gone:
            call("dpctl/ct-del-limits", "zone=" + ",".join(str(z) for z in gone),
                 socket_path=self.socket_path)
            changes += [f"zone={z},limit=none" for z in gone]
        self.applied = dict(wanted)
        return changes

    def usage(self, zones: list[int]) -> dict[int, tuple[int, int]]:
        """zone -> (limit, current entries) for the given zones."""
        if not zones:
            return {}
        text = call("dpctl/ct-get-limits", "zone=" + ",".join(str(z) for z in zones),
                    socket_path=self.socket_path)
        return parse_limits(text)
