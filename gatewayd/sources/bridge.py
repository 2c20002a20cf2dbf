"""Cloud values as sensors: a field of the latest polled record of a tracker (loctube), read on the
sensor's interval. RCMS routers are bridged record by record instead (:mod:`gatewayd.sources.rcmsbridge`),
with :func:`field_value` picking the field as here.

Why staleness is an error: a dashboard that keeps showing a tracker's state from yesterday, because the
poll has been failing since, lies. A value older than two poll intervals, or a field the record
does not have, is a failed read, so the sensor reports ``err`` until fresh data arrives. So is any
read after an answer that was refused as forged (a loctube answer whose signature is missing or wrong):
the sensor goes ``err`` at once rather than repeating the last trusted value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gatewayd.errors import SourceError
from gatewayd.sources.latest import LatestState
from gatewayd.sources.pick import pick_path

#: A bridged value is stale after this many poll intervals without a fresh record.
STALE_AFTER_INTERVALS = 2


class CloudBridge:
    """Reads ``field`` of the latest ``cloud`` record of ``device`` from the pollers' shared state."""

    def __init__(
        self,
        cloud: str,
        device: str,
        field: str,
        *,
        latest: LatestState,
        poll_interval_s: float,
        clock: Callable[[], float],
    ) -> None:
        self.cloud = cloud
        self.device = device
        self.field = field
        self.latest = latest
        self.max_age_s = STALE_AFTER_INTERVALS * poll_interval_s
        self.clock = clock

    async def read(self) -> Any:
        return self.read_now()

    def read_now(self) -> Any:
        """A lookup in memory: never waits, so the sampler calls it inline."""
        refused = self.latest.refusal(self.cloud, self.device)
        if refused is not None:
            raise SourceError(f"the last {self.cloud} answer for {self.device!r} was refused: {refused}")
        entry = self.latest.get(self.cloud, self.device)
        if entry is None:
            raise SourceError(f"no {self.cloud} data for {self.device!r} yet")
        polled_at, record = entry
        age = self.clock() - polled_at
        if age > self.max_age_s:
            raise SourceError(
                f"{self.cloud} data for {self.device!r} is stale ({age:.0f}s old, limit {self.max_age_s:.0f}s)"
            )
        return field_value(self.cloud, self.device, self.field, record)

    async def close(self) -> None:
        return None


def field_value(cloud: str, device: str, field: str, record: Any) -> Any:
    """``field`` of one record of ``device``; a missing field, a null or a list is a failed read."""
    value = pick_path(_unwrap(cloud, record), field)
    if value is None or isinstance(value, list):
        raise SourceError(f"field {field!r} of {device!r} has no usable value")
    return value


def _unwrap(cloud: str, record: Any) -> Any:
    """RCMS records nest their fields under ``data``; a field path may name them with or without it."""
    if cloud == "rcms" and isinstance(record, dict) and isinstance(record.get("data"), dict):
        merged = dict(record["data"])
        merged.setdefault("data", record["data"])
        merged.setdefault("time", record.get("time"))
        return merged
    return record
