"""This hypervisor's conntrack zones, kept in a local file and its journal.

Zones are per hypervisor (as OVN keeps them per chassis): each agent numbers the VMs it
protects on its own, so the fleet has no 65,535-VM cap, and the numbers never travel
through the shared database. A VM keeps its zone across restarts; a released zone is
held until its connection entries were flushed.

Every change is durable before the zone is used in any flow: one line appended to the
journal (``FILE.log``) and fdatasynced. Every ``JOURNAL_MAX`` changes, and at the first
change after a start, the file itself is replaced atomically and the journal emptied.
(Replacing the file for each VM plugged cost a rename, ~2 ms on ext4, on every VM
write.) Each change carries a sequence number and the file the last one it holds, so
a journal left behind by a crash between the two steps replays nothing twice. No Ryu here.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

JOURNAL_MAX = 1000   # changes appended before the file is rewritten


class ZoneFileError(RuntimeError):
    """The zone file cannot be read or written; the message names it."""


def _normal(doc: dict[str, Any]) -> dict[str, Any]:
    return {"zones": dict(doc.get("zones", {})),
            **({"flushing": list(doc["flushing"])} if doc.get("flushing") else {})}


class ZoneFile:
    """``{"zones": {vm: zone}, "flushing": [zone, ...]}`` in ``path`` (None: memory only)."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path is not None else None
        self.journal = self.path.with_name(self.path.name + ".log") if self.path else None
        self._doc: dict[str, Any] = {}
        self._seq = 0                 # the last change's number
        self._fd: int | None = None   # the journal, open for appending
        self._lines = 0               # changes in it

    def load(self) -> dict[str, Any]:
        """What was saved last ({} for a new file): the file and its journal's later
        changes (a journal whose file was removed by hand: what it holds). Writes
        nothing; appends go to a journal the next save starts afresh (a crash may have
        cut its last line short)."""
        if self.path is None or not (self.path.exists() or self.journal.exists()):
            return dict(self._doc)
        doc, seq = self._read_file() if self.path.exists() else ({"zones": {}}, 0)
        self._doc = self._replay(doc, seq)
        self._close_journal()
        return dict(self._doc)

    def _read_file(self) -> tuple[dict[str, Any], int]:
        """The file's zones and the last change it holds."""
        assert self.path is not None
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError) as e:
            raise ZoneFileError(f"cannot read the zone file {self.path}: {e}. Refusing "
                                "to renumber the VMs' connection tables; restore it or "
                                "move it away (every VM then gets a new zone).") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("zones", {}), dict):
            raise ZoneFileError(f"the zone file {self.path} is not a vgw_ryu zone file")
        return _normal(doc), doc.get("seq", 0)

    def _replay(self, doc: dict[str, Any], seq: int) -> dict[str, Any]:
        """``doc`` (the file, holding changes up to ``seq``) with the journal's later ones."""
        self._seq = seq
        if self.journal is None or not self.journal.exists():
            return doc
        try:
            lines = self.journal.read_bytes().split(b"\n")
        except OSError as e:
            raise ZoneFileError(f"cannot read the zone journal {self.journal}: {e}") from None
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                change = json.loads(line)
                n = int(change["seq"])
                zones = change["zones"]
            except (ValueError, KeyError, TypeError):
                if i >= len(lines) - 2:
                    break   # a last line cut short by a crash: never acknowledged
                raise ZoneFileError(f"the zone journal {self.journal} is damaged at line "
                                    f"{i + 1}; restore it or move it away") from None
            if n <= self._seq:
                continue    # already in the file
            for vm, zone in zones.items():
                if zone is None:
                    doc["zones"].pop(vm, None)
                else:
                    doc["zones"][vm] = zone
            doc.pop("flushing", None)
            if change.get("flushing"):
                doc["flushing"] = list(change["flushing"])
            self._seq = n
        return doc

    def save(self, doc: dict[str, Any]) -> None:
        """Make ``doc`` durable: one journal line, or the whole file every JOURNAL_MAX."""
        doc = _normal(doc)
        if doc == self._doc:
            return
        old, self._doc = self._doc, doc
        if self.path is None:
            return
        self._seq += 1
        try:
            if self._fd is None or self._lines >= JOURNAL_MAX:
                self._write_file(doc)
            else:
                self._append(old, doc)
        except OSError as e:
            self._doc = old
            self._close_journal()   # next time: the whole file
            raise ZoneFileError(f"cannot write the zone file {self.path}: {e}") from None

    def _append(self, old: dict[str, Any], doc: dict[str, Any]) -> None:
        was, now = old.get("zones", {}), doc["zones"]
        zones: dict[str, int | None] = {vm: z for vm, z in now.items() if was.get(vm) != z}
        zones.update((vm, None) for vm in was.keys() - now.keys())
        line = json.dumps({"seq": self._seq, "zones": zones,
                           "flushing": doc.get("flushing", [])}, sort_keys=True)
        assert self._fd is not None
        data = line.encode() + b"\n"
        while data:
            n = os.write(self._fd, data)
            if n <= 0:
                raise OSError("the zone journal took no bytes")
            data = data[n:]
        os.fdatasync(self._fd)
        self._lines += 1

    def _write_file(self, doc: dict[str, Any]) -> None:
        """Replace the file (write, fsync, rename, fsync the directory), and only then
        empty the journal: a crash between the two leaves lines the file already holds,
        never an old file with an emptied journal."""
        assert self.path is not None and self.journal is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", dir=self.path.parent)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps({**doc, "seq": self._seq}, sort_keys=True))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._sync_dir()   # the rename
        self._close_journal()
        self._fd = os.open(self.journal, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND,
                           0o644)
        os.fsync(self._fd)
        self._sync_dir()   # the journal's creation
        self._lines = 0

    def _sync_dir(self) -> None:
        assert self.path is not None
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def _close_journal(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        """Fold the journal into the file (a clean stop leaves the file whole, for a
        backup of it alone or an older version) and close the journal."""
        if self.path is not None and self._fd is not None and self._lines:
            try:
                self._write_file(self._doc)
            except OSError as e:
                raise ZoneFileError(f"cannot write the zone file {self.path}: {e}") from None
        self._close_journal()

    def __del__(self) -> None:
        self._close_journal()
