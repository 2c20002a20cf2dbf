"""The MQTT transport's reportInterval: the inventory's, until the cloud sets another (``setProperty``).

Why kept in the state directory: over HTTPS the interval is read from the cloud's gateway record; over
MQTT the cloud pushes it (``setProperty {reportInterval}``) and never says it again, so a restart must
remember it. The file also holds the inventory value it replaced: when the inventory's
``thingplus.mqtt.report_interval`` is changed later, the person who changed it wins.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from gatewayd.errors import StorageError
from gatewayd.statefile import StateFile

log = structlog.get_logger(__name__)

FILE_NAME = "thingplus-report-interval.json"


class ReportIntervalStore:
    """Loads and saves the interval the cloud set, for one inventory value."""

    def __init__(self, state_dir: Path, inventory_ms: int) -> None:
        self._file = StateFile(Path(state_dir) / FILE_NAME)
        self.inventory_ms = inventory_ms

    def load(self) -> int:
        """The interval to use now: the one the cloud set for this inventory value, else the inventory's."""
        try:
            record = self._file.load() or {}
        except StorageError as exc:
            log.warning("reporting.interval_not_loaded", error=str(exc))
            return self.inventory_ms
        ms = record.get("report_interval_ms")
        if record.get("inventory_ms") != self.inventory_ms or not _positive_int(ms):
            return self.inventory_ms
        assert isinstance(ms, int)
        return ms

    def save(self, ms: int) -> None:
        """Keep ``ms`` for the next start; a state dir that cannot be written costs only that."""
        try:
            self._file.save({"report_interval_ms": ms, "inventory_ms": self.inventory_ms})
        except StorageError as exc:
            log.warning("reporting.interval_not_saved", error=str(exc), report_interval_ms=ms)


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
