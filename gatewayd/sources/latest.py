"""The latest polled record of each RCMS router and loctube device, shared by pollers, bridges and /status.

Its own module, free of any cloud client, so the sampling side can use it without importing the HTTP
stack (which would slow the start to READY).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gatewayd.sources.records import RecordFeed


class LatestState:
    """cloud -> device -> (wall time of the poll that got it, the record). Shared with the sensor bridges."""

    def __init__(self) -> None:
        self.by_cloud: dict[str, dict[str, tuple[float, Any]]] = {}
        #: (cloud, device) -> why its last answer was refused (a forged or unsigned loctube answer).
        self.refused: dict[tuple[str, str], str] = {}
        #: Every polled RCMS record, for the sensors that bridge it (gatewayd.sources.records).
        self.feed = RecordFeed()

    def put(self, cloud: str, device: str, at: float, record: Any) -> None:
        self.by_cloud.setdefault(cloud, {})[device] = (at, record)
        if self.refused:
            self.refused.pop((cloud, device), None)

    def get(self, cloud: str, device: str) -> tuple[float, Any] | None:
        return self.by_cloud.get(cloud, {}).get(device)

    def refuse(self, cloud: str, device: str, reason: str) -> None:
        """The device's last answer could not be trusted: bridges fail at once, until a trusted one
        comes (:meth:`put`), instead of serving the previous record until it goes stale."""
        self.refused[(cloud, device)] = reason

    def refusal(self, cloud: str, device: str) -> str | None:
        return self.refused.get((cloud, device)) if self.refused else None

    def as_json(self, now: float) -> dict[str, Any]:
        return {
            cloud: {
                device: {"age_s": round(now - at, 3), "polled_at_ms": int(at * 1000), "data": record}
                for device, (at, record) in devices.items()
            }
            for cloud, devices in self.by_cloud.items()
        }


@dataclass
class PollStats:
    """Per cloud: polls by result ('ok' / 'error'), and records received."""

    polls: dict[tuple[str, str], int] = field(default_factory=dict)
    records: dict[str, int] = field(default_factory=dict)

    def count(self, cloud: str, result: str) -> None:
        self.polls[(cloud, result)] = self.polls.get((cloud, result), 0) + 1
