"""An MQTT outage of the emulated Thing+: the broker unreachable for a while, as a network cut would make it.

While an outage stands, every open MQTT connection is cut (its socket aborted, so the broker sees the
connection lost and publishes the last will, as it would for a real cut) and every new connection is
closed as soon as it is accepted (counted in :attr:`MqttOutage.refused`). The REST side is not touched:
its faults are the HTTP ones (:mod:`gatewayd.emulator.faults`). The broker (:mod:`.mqttbroker`) gives
:attr:`MqttOutage.cut` while it serves; the admin paths set and clear the outage.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class MqttOutage:
    """Whether the broker is unreachable now (a monotonic deadline), and how many connections it refused."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        #: Monotonic deadline; ``math.inf`` lasts until cleared; None: no outage.
        self.until: float | None = None
        #: Connections closed at once because an outage stood.
        self.refused = 0
        #: Connections cut when an outage began.
        self.cut_connections = 0
        #: The broker's "abort every open connection" (how many), set while it serves.
        self.cut: Callable[[], int] | None = None

    def start(self, seconds: float | None) -> int:
        """Begin an outage of ``seconds`` (None: until :meth:`clear`); the connections cut now."""
        if seconds is not None and not (0 < seconds < math.inf):
            raise ValueError(f"an MQTT outage lasts a positive number of seconds, not {seconds!r}")
        self.until = math.inf if seconds is None else self._monotonic() + seconds
        cut = self.cut() if self.cut is not None else 0
        self.cut_connections += cut
        log.info("emulator.thingplus.mqtt_outage_started", seconds=seconds, connections_cut=cut)
        return cut

    def clear(self) -> None:
        if self.until is not None:
            log.info("emulator.thingplus.mqtt_outage_cleared", refused=self.refused)
        self.until = None

    def active(self) -> bool:
        """Whether connections are refused now (an elapsed outage clears itself)."""
        if self.until is None:
            return False
        if self._monotonic() >= self.until:
            self.clear()
            return False
        return True

    def snapshot(self) -> dict[str, Any]:
        left = None
        if self.active() and self.until is not None:
            left = None if self.until == math.inf else round(self.until - self._monotonic(), 3)
        return {
            "active": self.until is not None,
            "seconds_left": left,
            "refused": self.refused,
            "connections_cut": self.cut_connections,
        }
