"""An agent's copy of the last policy it enforced, for starting without the database.

A hypervisor that reboots while the policy database is unreachable (no quorum, network
partition) would otherwise come up with no flows and its VMs cut off. The agent writes
the state, revision and rule numbers it adopted to this file after every change, and
starts from it when the database does not answer; it adopts the database's newer
revision as soon as the database answers. No Ryu here.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from vgw_ryu.store.ovsdb import Loaded


class PolicyCache:
    """``{"revision", "state", "rules"}`` in one JSON file, replaced atomically."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._revision: int | None = None

    def load(self) -> Loaded | None:
        """The cached policy, or None if there is none (or it cannot be read)."""
        try:
            doc = json.loads(self.path.read_text())
            return Loaded(dict(doc["state"]), int(doc["revision"]), dict(doc["rules"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, state: dict[str, Any], revision: int, rules: dict[str, int]) -> None:
        """Replace the cache with this revision (skipped if it is already cached)."""
        if revision == self._revision:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"revision": revision, "state": state, "rules": rules}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._revision = revision
