"""This agent's Chassis row in the policy database, kept current by a green thread."""

from __future__ import annotations

import logging
import time
from typing import Any

from ryu.lib import hub

from vgw_ryu.runtime import chassis

LOG = logging.getLogger("vgw_ryu.chassis")


class ChassisReporter:
    """Writes the row when what it says changed, and at least every HEARTBEAT s."""

    def __init__(self, store: Any, engine: Any, name: str, hostname: str):
        self.store = store
        self.engine = engine
        self.name = name
        self.hostname = hostname
        self.started = chassis.now_ms()
        self._last: dict[str, Any] | None = None
        self._last_at = 0.0
        self._failing = False

    def loop(self) -> None:
        while True:
            hub.sleep(0.5)
            try:
                self.report()
            except Exception:
                LOG.exception("reporting chassis %s failed", self.name)

    def report(self) -> bool:
        """Write the row if due; True if written."""
        fields = chassis.report(self.engine.snapshot(), self.hostname, self.started)
        due = time.monotonic() - self._last_at >= chassis.HEARTBEAT
        if fields == self._last and not due:
            return False
        ok = self.store.report_chassis(self.name, {**fields, "heartbeat": chassis.now_ms()})
        if ok:
            self._last, self._last_at = fields, time.monotonic()
            if self._failing:
                LOG.info("chassis %s reported to the policy database again", self.name)
            self._failing = False
        elif not self._failing:
            LOG.warning("chassis %s: the policy database did not take this agent's "
                        "report; enforcing revision %d meanwhile", self.name,
                        self.engine.snapshot().revision)
            self._failing = True
        return ok
