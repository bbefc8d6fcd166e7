"""A policy store in memory, with the OVSDB store's contract (load/write/poll).

For tests of the layers above the store and for offline tools; nothing in it survives
the process. No Ryu here.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from vgw_ryu.store.ovsdb import ConflictError, Loaded, StaleError


class MemoryStore:
    """The state document, revision, rule numbers and meta values of one process."""

    def __init__(self, path: str = "memory"):
        self.path = path
        self._lock = threading.Lock()
        self._doc: dict[str, Any] = {}
        self._rules: dict[str, int] = {}
        self._revision = 0
        self._meta: dict[str, str] = {}
        self._requests: dict[str, int] = {}

    def load(self) -> Loaded:
        with self._lock:
            return Loaded(copy.deepcopy(self._doc), self._revision, dict(self._rules))

    def revision(self) -> int:
        with self._lock:
            return self._revision

    def meta(self, key: str) -> str | None:
        with self._lock:
            return self._meta.get(key)

    def poll(self) -> bool:
        return False

    def synced(self) -> bool:
        return True

    def write(self, doc: dict[str, Any], rules: dict[str, int], base: int,
              if_match: int | None = None, extra: dict[str, str] | None = None,
              request_id: str | None = None, new_revision: int | None = None,
              touched: dict[str, set[str]] | None = None) -> int:
        with self._lock:
            if request_id and request_id in self._requests:
                return self._requests[request_id]
            if if_match is not None and if_match != self._revision:
                raise ConflictError(if_match, self._revision)
            if base != self._revision:
                raise StaleError(f"store at {self._revision}, write from {base}")
            if touched is None:
                self._doc = copy.deepcopy(doc)
            else:   # only these objects; a name not in doc is deleted
                for kind, names in touched.items():
                    section = self._doc.setdefault(kind, {})
                    for name in names:
                        if name in doc.get(kind, {}):
                            section[name] = copy.deepcopy(doc[kind][name])
                        else:
                            section.pop(name, None)
                    self._doc[kind] = dict(sorted(section.items()))
            self._rules = dict(rules)
            self._revision = new_revision if new_revision is not None else base + 1
            self._meta.update(extra or {})
            if request_id:
                self._requests[request_id] = self._revision
            return self._revision

    def close(self) -> None:
        pass
