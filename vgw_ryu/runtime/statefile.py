"""The state file (``--vgw-state``): load it at start, reload it when it changes.

A reload is due when the file's (mtime, size) differs from the last one read, or when
SIGHUP asked for one. A file that fails to parse or validate is logged and the running
revision is kept; at start, with nothing stored yet, it is fatal. No Ryu here.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Protocol

import yaml

from vgw_ryu.policy.model import ValidationError

LOG = logging.getLogger("vgw_ryu")
Signature = tuple[float, int]   # (mtime, size)


class SeedTarget(Protocol):
    revision: int

    def seed_from_file(self, text: str, parsed: Any) -> int | None: ...


def load_state_file(path: str) -> tuple[str, Any]:
    """Text and parsed YAML/JSON of a state file (ValueError with the reason)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        return text, yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not YAML/JSON: {e}") from None


def signature(path: str) -> Signature | None:
    """(mtime, size) of the file, None if it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime, st.st_size)


def reload_due(requested: bool, current: Signature | None, loaded: Signature | None) -> bool:
    """Reload when asked to, or when the file exists and is not the one last read."""
    return requested or (current is not None and current != loaded)


class StateFileFatalError(Exception):
    """The state file was rejected at start and there is no stored state to fall back on."""


class StateFileWatcher:
    """Applies a state file through the engine, again whenever a reload is due."""

    def __init__(self, path: str, engine: SeedTarget):
        self.path = path
        self.engine = engine
        self.loaded: Signature | None = None
        self.requested = False

    def request_reload(self) -> None:
        """Ask for a reload at the next check (the SIGHUP handler)."""
        self.requested = True

    def check(self) -> bool:
        """Reload if due; True if a load was attempted."""
        if not reload_due(self.requested, signature(self.path), self.loaded):
            return False
        self.requested = False
        self.load()
        return True

    def load(self, initial: bool = False) -> int | None:
        """Apply the file; the new revision, or None if unchanged or rejected.

        Raises StateFileFatalError when ``initial`` and nothing was ever stored.
        """
        try:
            st = os.stat(self.path)
            self.loaded = (st.st_mtime, st.st_size)
            text, doc = load_state_file(self.path)
            rev = self.engine.seed_from_file(text, doc)
        except (OSError, ValueError, ValidationError) as e:
            if initial and self.engine.revision == 0:
                raise StateFileFatalError(f"state file rejected: {e}") from None
            LOG.error("state file %s rejected, keeping revision %d: %s", self.path,
                      self.engine.revision, e)
            return None
        if rev is None:
            LOG.info("state file %s unchanged since it was last applied", self.path)
        else:
            LOG.info("state file %s applied as revision %d", self.path, rev)
        return rev
