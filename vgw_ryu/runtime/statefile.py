"""The state file: ``--vgw-state`` (source of truth) or ``--vgw-seed`` (first fill only).

``state`` mode: the file *is* the desired state. It is applied at start, and again
whenever it changes (mtime, size) or SIGHUP asks, even when its text did not change
since: whatever the running state is, it is made equal to the file's (no new revision
when it already is). REST writes are refused meanwhile (``read_only_reason``).

``seed`` mode: the file is applied once, at start, and only to an empty store
(revision 0); after that the REST API owns the state and the file is not read again.

A file that fails to read, parse or validate is logged, reported as a problem
(``state_file_rejected``, until a good version is applied) and the running revision
is kept; at start with nothing stored yet it is fatal. No Ryu here.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Protocol

import yaml

from vgw_ryu.policy.model import ValidationError
from vgw_ryu.runtime.problems import problem

LOG = logging.getLogger("vgw_ryu")
Signature = tuple[float, int]   # (mtime, size)
MODES = ("state", "seed")


class Target(Protocol):
    revision: int

    def apply_if_changed(self, parsed: Any) -> int | None: ...


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
    """Applies a state file through the engine, as its mode says."""

    def __init__(self, path: str, engine: Target, mode: str = "state"):
        if mode not in MODES:
            raise ValueError(f"state file mode {mode!r} is not one of {MODES}")
        self.path = path
        self.engine = engine
        self.mode = mode
        self.loaded: Signature | None = None
        self.requested = False
        self.problem: dict[str, Any] | None = None   # the last rejection, until fixed

    @property
    def option(self) -> str:
        return f"--vgw-{self.mode}"

    def read_only_reason(self) -> str | None:
        """Why REST writes are refused (state mode), else None."""
        if self.mode != "state":
            return None
        return (f"the desired state is managed by the file {self.path} ({self.option}); "
                "edit that file (it is re-applied on change or SIGHUP) or restart the "
                "controller with --vgw-seed to let the REST API own the state")

    def problems(self) -> list[dict[str, Any]]:
        return [self.problem] if self.problem else []

    def request_reload(self) -> None:
        """Ask for a re-apply at the next check (the SIGHUP handler); state mode only."""
        if self.mode == "state":
            self.requested = True
        else:
            LOG.info("SIGHUP: %s %s is applied only to an empty store; nothing to do",
                     self.option, self.path)

    def check(self) -> bool:
        """Re-apply if due (state mode); True if a load was attempted."""
        if self.mode != "state":
            return False
        if not reload_due(self.requested, signature(self.path), self.loaded):
            return False
        self.requested = False
        self.load()
        return True

    def load(self, initial: bool = False) -> int | None:
        """Apply the file; the new revision, or None if nothing changed or rejected.

        Raises StateFileFatalError when ``initial`` and nothing was ever stored.
        """
        if self.mode == "seed" and self.engine.revision != 0:
            LOG.info("%s %s not applied: the store already has revision %d, which the "
                     "REST API owns", self.option, self.path, self.engine.revision)
            return None
        try:
            self.loaded = signature(self.path)
            _text, doc = load_state_file(self.path)
            rev = self.engine.apply_if_changed(doc)
        except (OSError, ValueError, ValidationError) as e:
            if initial and self.engine.revision == 0:
                raise StateFileFatalError(f"state file {self.path} rejected: {e}") from None
            self._rejected(e)
            return None
        self.problem = None
        if rev is None:
            LOG.info("state file %s: the running revision %d already equals it", self.path,
                     self.engine.revision)
        else:
            LOG.info("state file %s applied as revision %d", self.path, rev)
        return rev

    def _rejected(self, e: Exception) -> None:
        rev = self.engine.revision
        LOG.error("state file %s rejected, keeping revision %d: %s", self.path, rev, e)
        since = self.problem["since"] if self.problem else time.time()
        self.problem = problem(
            "state_file_rejected",
            f"state file {self.path} ({self.option}) rejected, running revision {rev} "
            f"kept: {e}", since=since)
