"""Port identity from OVSDB: which interface is which VM, read with the ``ovs`` library.

libvirt and OpenStack write ``external_ids:vm-id`` / ``iface-id`` and ``attached-mac``
on a VM's Interface; operators mark uplinks with ``external_ids:vgw-role=uplink``. This
module keeps an IDL replica of Bridge/Port/Interface and returns, per datapath id,
the interfaces with their OpenFlow port number, type and external_ids. No Ryu here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import ovs.db.idl
import ovs.jsonrpc
import ovs.poller
import ovs.stream

from vgw_ryu.store import fastjson
from vgw_ryu.store.rowcache import RowCache

LOG = logging.getLogger("vgw_ryu.runtime.ports")
fastjson.install()   # the port replica's updates parsed at C speed too
COLUMNS = {
    "Bridge": ["name", "datapath_id", "ports", "datapath_type"],
    "Port": ["name", "interfaces", "tag"],
    "Interface": ["name", "ofport", "type", "external_ids"],
}


@dataclass(frozen=True)
class Iface:
    name: str
    ofport: int
    type: str
    external_ids: dict[str, str] = field(default_factory=dict, hash=False)
    bridge: str | None = None    # the OVSDB bridge it is on
    tag: int | None = None       # its port's VLAN tag (an access port), if any


def _get_schema(remote: str, timeout_ms: int = 5000) -> dict:
    err, stream = ovs.stream.Stream.open_block(ovs.stream.Stream.open(remote),
                                               timeout_ms)
    if err:
        raise ConnectionError(f"cannot connect to OVSDB at {remote}: {err}")
    rpc = ovs.jsonrpc.Connection(stream)
    try:
        err, reply = rpc.transact_block(
            ovs.jsonrpc.Message.create_request("get_schema", ["Open_vSwitch"]))
        if err or reply is None or reply.error:
            raise ConnectionError(f"OVSDB at {remote} did not send its schema: "
                                  f"{err or (reply and reply.error)}")
        return reply.result
    finally:
        rpc.close()


def _ref_uuids(row: Any, column: str) -> tuple:
    """The row uuids a reference column names, from the replica's datum itself: reading
    the column (``row.ports``) makes a Row of each and sorts them, ~10 ms for a bridge
    of 1,000 ports, on every port plugged. (The directory never writes, so every row
    it reads is committed and has its ``_data``.)"""
    return tuple(atom.value for atom in row._data[column].values)


def _bridge_row(br: Any) -> tuple:
    dpid = (br.datapath_id or [None])[0] if isinstance(br.datapath_id, list) \
        else br.datapath_id
    # An empty datapath_type is the default, "system".
    return br.name, dpid, _ref_uuids(br, "ports"), br.datapath_type or "system"


def _port_row(port: Any) -> tuple:
    tag = port.tag[0] if isinstance(port.tag, list) and port.tag else (
        port.tag if isinstance(port.tag, int) else None)
    return tag, _ref_uuids(port, "interfaces")


def _iface_row(iface: Any) -> tuple:
    ofport = iface.ofport[0] if isinstance(iface.ofport, list) and iface.ofport \
        else iface.ofport
    return (iface.name, ofport if isinstance(ofport, int) else -1, iface.type or "",
            dict(iface.external_ids))


@dataclass(eq=False)
class _BridgeView:
    """What bridges() built for one bridge, and the rows it came from."""
    row: tuple                                   # the bridge row as read
    ports: dict[Any, tuple[tuple, list[Iface]]]  # port uuid -> (its interface uuids, Ifaces)
    ifaces: list[Iface]                          # every port's, sorted by OpenFlow port
    uuids: set[Any]                              # its ports' and interfaces' row uuids


class PortDirectory:
    """A live view of the switches' interfaces; call ``poll()`` often (non-blocking)."""

    def __init__(self, remote: str):
        self.remote = remote
        helper = ovs.db.idl.SchemaHelper(None, _get_schema(remote))
        for table, cols in COLUMNS.items():
            helper.register_columns(table, cols)
        self.idl = ovs.db.idl.Idl(remote, helper)
        self._seqno = -1
        # What bridges() read from each row, until the row changes: reading an IDL
        # column converts it, and a port plugged must not cost every port again.
        self.rows = RowCache(self.idl, track=True)
        self._views: dict[Any, _BridgeView] = {}    # bridge row uuid -> what bridges() built
        self._out: dict[int, list[Iface]] | None = None
        self._sizes: tuple[int, int, int] = (0, 0, 0)   # the tables' rows at that build

    def poll(self) -> bool:
        """Process what OVSDB sent; True when the replica changed since the last call."""
        self.idl.run()
        changed = self.idl.change_seqno != self._seqno
        self._seqno = self.idl.change_seqno
        return changed and self.idl.has_ever_connected()

    def wait_ready(self, timeout_ms: int = 5000) -> bool:
        """Block until the first full replica arrived (start-up only)."""
        poller_deadline = timeout_ms
        while not self.idl.has_ever_connected() and poller_deadline > 0:
            self.idl.run()
            poller = ovs.poller.Poller()
            self.idl.wait(poller)
            poller.timer_wait(100)
            poller.block()
            poller_deadline -= 100
        return self.idl.has_ever_connected()

    def bridges(self) -> dict[int, list[Iface]]:
        """datapath id -> interfaces with an OpenFlow port number, sorted by it.

        Rebuilt from the rows that changed since the last call: a port plugged on a
        bridge of 1,000 reads that port's rows, and every other port keeps its Iface
        objects (and an unchanged bridge its very list), so the port classification
        kept by Iface identity stays valid. Callers must not modify the answer."""
        touched = self.rows.take_changed()
        port_rows = self.idl.tables["Port"].rows
        iface_rows = self.idl.tables["Interface"].rows
        # (A reconnect empties the replica without change notices: the sizes tell.)
        sizes = (len(self.idl.tables["Bridge"].rows), len(port_rows), len(iface_rows))
        if self._out is not None and not touched and sizes == self._sizes:
            return self._out
        views: dict[Any, _BridgeView] = {}
        out: dict[int, list[Iface]] = {}
        for br in self.idl.tables["Bridge"].rows.values():
            row = self.rows.read(br, _bridge_row)
            name, dpid_text = row[0], row[1]
            if not dpid_text:
                continue
            had = self._views.get(br.uuid)
            if had is not None and had.row[0] != name:
                had = None   # every Iface names its bridge
            if had is None or had.row is not row or not touched.isdisjoint(had.uuids):
                had = self._bridge_view(row, had, touched, port_rows, iface_rows)
            views[br.uuid] = had
            out[int(dpid_text, 16)] = had.ifaces
        self._views, self._out, self._sizes = views, out, sizes
        return out

    def _bridge_view(self, row: tuple, had: _BridgeView | None, touched: set[Any],
                     port_rows: Any, iface_rows: Any) -> _BridgeView:
        """One bridge's interfaces, its untouched ports' as they were."""
        name, _, port_ids, _ = row
        ports: dict[Any, tuple[tuple, list[Iface]]] = {}
        uuids: set[Any] = set(port_ids)
        for pid in port_ids:
            prev = had.ports.get(pid) if had is not None else None
            if prev is not None and pid not in touched and touched.isdisjoint(prev[0]):
                ports[pid] = prev
                uuids.update(prev[0])
                continue
            port = port_rows.get(pid)
            if port is None:
                continue
            tag, iface_ids = self.rows.read(port, _port_row)
            uuids.update(iface_ids)
            ifaces = []
            for iid in iface_ids:
                iface = iface_rows.get(iid)
                if iface is None:
                    continue
                iname, ofport, itype, ext = self.rows.read(iface, _iface_row)
                if ofport > 0:
                    ifaces.append(Iface(iname, ofport, itype, ext, name, tag))
            if prev is not None and prev[1] == ifaces:
                ifaces = prev[1]   # a change that left them as they were
            ports[pid] = (iface_ids, ifaces)
        listed = sorted((i for _, ifaces in ports.values() for i in ifaces),
                        key=lambda i: i.ofport)
        if had is not None and had.ifaces == listed:
            listed = had.ifaces
        return _BridgeView(row, ports, listed, uuids)

    def datapath_types(self) -> dict[int, str]:
        """datapath id -> its datapath type (``system``, ``netdev``): bridges of one type
        share one datapath, and so one connection table."""
        out = {}
        for br in self.idl.tables["Bridge"].rows.values():
            _, dpid_text, _, dp_type = self.rows.read(br, _bridge_row)
            if dpid_text:
                out[int(dpid_text, 16)] = dp_type
        return out

    def bridge_names(self) -> dict[int, str]:
        """datapath id -> bridge name."""
        out = {}
        for br in self.idl.tables["Bridge"].rows.values():
            dpid = br.datapath_id[0] if isinstance(br.datapath_id, list) and br.datapath_id \
                else br.datapath_id
            if dpid:
                out[int(dpid, 16)] = br.name
        return out

    def close(self) -> None:
        self.idl.close()
