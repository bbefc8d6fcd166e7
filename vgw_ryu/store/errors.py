"""What the policy store raises: a write refused or impossible, no database in reach, a
write computed from an old revision, an If-Match that is not current. No Ryu here."""

from __future__ import annotations

__all__ = ["ConflictError", "StaleError", "StoreError", "StoreUnavailableError"]


class StoreError(RuntimeError):
    """The database refused a write or cannot be used; the message says why."""


class StoreUnavailableError(StoreError):
    """No database server answered (or no quorum) within the timeout."""


class StaleError(RuntimeError):
    """The database moved on since the state the write was computed from: recompute."""


class ConflictError(RuntimeError):
    """An If-Match revision that is not the current one."""

    def __init__(self, expected: int, current: int):
        super().__init__(f"revision {expected} is stale; current revision is {current}")
        self.expected = expected
        self.current = current
