"""This hypervisor's conntrack zones, kept in a local file.

Zones are per hypervisor (as OVN keeps them per chassis): each agent numbers the VMs it
protects on its own, so the fleet has no 65,535-VM cap, and the numbers never travel
through the shared database. A VM keeps its zone across restarts; a released zone is
held until its connection entries were flushed. The file is replaced atomically and
fsynced before the zone is used in any flow. No Ryu here.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


class ZoneFileError(RuntimeError):
    """The zone file cannot be read or written; the message names it."""


class ZoneFile:
    """``{"zones": {vm: zone}, "flushing": [zone, ...]}`` in ``path`` (None: memory only)."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path is not None else None
        self._doc: dict[str, Any] = {}

    def load(self) -> dict[str, Any]:
        """What was saved last ({} for a new file)."""
        if self.path is None or not self.path.exists():
            return dict(self._doc)
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError) as e:
            raise ZoneFileError(f"cannot read the zone file {self.path}: {e}. Refusing "
                                "to renumber the VMs' connection tables; restore it or "
                                "move it away (every VM then gets a new zone).") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("zones", {}), dict):
            raise ZoneFileError(f"the zone file {self.path} is not a vgw_ryu zone file")
        self._doc = doc
        return dict(doc)

    def save(self, doc: dict[str, Any]) -> None:
        """Replace the file's content durably (write, fsync, rename, fsync the dir)."""
        doc = {"zones": doc.get("zones", {}), **({"flushing": doc["flushing"]}
                                                 if doc.get("flushing") else {})}
        if doc == self._doc:
            return
        self._doc = doc
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", dir=self.path.parent)
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(doc, sort_keys=True))   # the C encoder; dump() is not
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as e:
            raise ZoneFileError(f"cannot write the zone file {self.path}: {e}") from None
