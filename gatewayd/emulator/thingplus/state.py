"""What the emulated Thing+ holds: registered objects, accepted points and statuses, and its knobs.

Tests and the admin paths read and set these directly; the request handlers
(:mod:`~gatewayd.emulator.thingplus.registration`, :mod:`~gatewayd.emulator.thingplus.reporting`) go
through the lookups here, which answer 404 as the platform does.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from gatewayd.emulator.thingplus.checks import check_interval
from gatewayd.emulator.thingplus.model import Point, StatusRecord, status_view
from gatewayd.emulator.thingplus.owners import ByOwner, Record
from gatewayd.emulator.thingplus.tokens import TOKEN_LIFETIME_S, Tokens
from gatewayd.emulator.thingplus.wire import not_found
from gatewayd.inventory.config import ThingPlusConfig

log = structlog.get_logger(__name__)

#: The real sandbox refused a point 5 days old: points older than this are 400 INVALID_INPUT.
DEFAULT_SERIES_MAX_AGE_S = 5 * 86400.0
#: How far ahead of the emulator's clock a point's time may be. The real platform's tolerance is not
#: published; 10 minutes takes a box whose clock runs a few minutes fast, and refuses a clock set wrong.
DEFAULT_SERIES_MAX_FUTURE_S = 600.0


class ThingPlusState:
    """The state of one emulated Thing+ (see :class:`~gatewayd.emulator.thingplus.ThingPlusEmulator`)."""

    def __init__(
        self,
        config: ThingPlusConfig,
        *,
        report_interval_ms: int = 60000,
        clock: Callable[[], float] = time.time,
        site_id: str = "1",
        token_lifetime_s: float = TOKEN_LIFETIME_S,
        series_max_age_s: float | None = DEFAULT_SERIES_MAX_AGE_S,
        series_max_future_s: float | None = DEFAULT_SERIES_MAX_FUTURE_S,
    ) -> None:
        check_interval(report_interval_ms)
        self.clock = clock
        self.site_id = site_id
        self.report_interval_ms = report_interval_ms
        self.tokens = Tokens(config, clock, token_lifetime_s)
        #: Points older than this (seconds, by their ``time``) get 400 INVALID_INPUT; None: no limit.
        self.series_max_age_s = _limit("series_max_age_s", series_max_age_s)
        #: Points further ahead of the clock than this (seconds) get 400 INVALID_INPUT; None: no limit.
        self.series_max_future_s = _limit("series_max_future_s", series_max_future_s)
        self.created_ms = self.now_ms()

        self.gateways: dict[str, Record] = {}
        self.devices = ByOwner()
        self.sensors = ByOwner()
        self.points: dict[str, list[Point]] = {}
        self.gateway_statuses: dict[str, list[StatusRecord]] = {}
        self.sensor_statuses: dict[str, list[StatusRecord]] = {}
        self.requests: Counter[str] = Counter()
        self.rejections: Counter[str] = Counter()
        #: Series points accepted over HTTPS and MQTT, ever (deleted gateways' too): a running count,
        #: so the console's points per second is one read, not a pass over every sensor's history.
        self.points_accepted = 0

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- knobs ------------------------------------------------------------------------------------

    def set_series_limits(self, **limits: float | None) -> None:
        """Set ``max_age_s`` and/or ``max_future_s`` (seconds > 0, or None: no limit); checked first."""
        unknown = sorted(set(limits) - {"max_age_s", "max_future_s"})
        if unknown:
            raise ValueError(f"unknown series limit(s) {unknown}: expected max_age_s, max_future_s")
        checked = {name: _limit(name, value) for name, value in limits.items()}
        if "max_age_s" in checked:
            self.series_max_age_s = checked["max_age_s"]
        if "max_future_s" in checked:
            self.series_max_future_s = checked["max_future_s"]
        log.info("emulator.thingplus.series_limits_set", **self.series_limits())

    def series_limits(self) -> dict[str, float | None]:
        return {"max_age_s": self.series_max_age_s, "max_future_s": self.series_max_future_s}

    def series_bounds(self, now_ms: int) -> tuple[int | None, int | None]:
        """The oldest and newest point time (ms) taken at ``now_ms``; None: no bound."""
        age, ahead = self.series_max_age_s, self.series_max_future_s
        return (
            None if age is None else now_ms - int(age * 1000),
            None if ahead is None else now_ms + int(ahead * 1000),
        )

    def set_report_interval(self, ms: int, gateway_id: str | None = None) -> None:
        """Change reportInterval as the portal would: for one gateway, or for the model and all gateways."""
        check_interval(ms)
        if gateway_id is not None:
            if gateway_id not in self.gateways:
                raise KeyError(gateway_id)
            targets = [self.gateways[gateway_id]]
        else:
            self.report_interval_ms = ms
            targets = list(self.gateways.values())
        now = self.now_ms()
        for gateway in targets:
            gateway["reportInterval"] = str(ms)
            gateway["mtime"] = now
        log.info("emulator.thingplus.report_interval_set", ms=ms, gateway=gateway_id or "all")

    def delete_gateway(self, gateway_id: str) -> dict[str, int]:
        """Delete a gateway with its devices and sensors, as the portal does: from then on every call
        naming it answers 404 NOT_FOUND until it is registered again. The points and statuses received
        so far stay in :attr:`points` and the status histories, so a test can still count every delivery.
        """
        if gateway_id not in self.gateways:
            raise KeyError(gateway_id)
        del self.gateways[gateway_id]
        devices = [device["id"] for device in self.devices.of(gateway_id)]
        sensors = [sensor["id"] for sensor in self.sensors.of(gateway_id)]
        for device_id in devices:
            del self.devices[device_id]
        for sensor_id in sensors:
            del self.sensors[sensor_id]
        log.info(
            "emulator.thingplus.gateway_deleted",
            gateway=gateway_id,
            devices=len(devices),
            sensors=len(sensors),
        )
        return {"devices": len(devices), "sensors": len(sensors)}

    # -- inspection -------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state: registered objects, per-sensor counts and latest values, request counts."""
        return {
            "report_interval_ms": self.report_interval_ms,
            "series_limits": self.series_limits(),
            "tokens": self.tokens.snapshot(),
            "requests": dict(self.requests),
            "rejections": dict(self.rejections),
            "gateways": [
                {
                    **gw,
                    "statuses": len(self.gateway_statuses.get(gid, [])),
                    "latest_status": status_view(self.gateway_statuses.get(gid)),
                }
                for gid, gw in self.gateways.items()
            ],
            "devices": list(self.devices.values()),
            "sensors": [
                {
                    **sensor,
                    "points": len(self.points.get(sid, [])),
                    "latest": self.latest(sid),
                    "statuses": len(self.sensor_statuses.get(sid, [])),
                    "latest_status": status_view(self.sensor_statuses.get(sid)),
                }
                for sid, sensor in self.sensors.items()
            ],
        }

    def latest(self, sensor_id: str) -> dict[str, Any] | None:
        """The point with the greatest ``time`` received for a sensor (last arrival wins a tie)."""
        points = self.points.get(sensor_id)
        if not points:
            return None
        best = max(reversed(points), key=lambda p: p.time)
        return {"time": best.time, "value": best.value}

    def series(self, sensor_id: str) -> list[tuple[int, str | dict[str, Any]]]:
        """A sensor's points as the platform would keep them: one value per time (last write wins), sorted."""
        by_time: dict[int, str | dict[str, Any]] = {}
        for point in self.points.get(sensor_id, []):
            by_time[point.time] = point.value
        return sorted(by_time.items(), key=lambda item: item[0])

    # -- lookups for the handlers: 404 as the platform answers it ---------------------------------

    def gateway(self, gateway_id: str) -> Record:
        gateway = self.gateways.get(gateway_id)
        if gateway is None:
            raise not_found(f"gateway {gateway_id} not found")
        return gateway

    def owned(self, store: Mapping[str, Record], what: str, owner: str, object_id: str) -> Record:
        """The device or sensor ``object_id`` of gateway ``owner`` (both must exist)."""
        self.gateway(owner)
        record = store.get(object_id)
        if record is None or record["owner"] != owner:
            raise not_found(f"{what} {object_id} not found under gateway {owner}")
        return record

    def children(self, store: ByOwner, owner: str) -> list[Record]:
        """Copies of the devices or sensors of gateway ``owner`` (which must exist)."""
        self.gateway(owner)
        return [dict(r) for r in store.of(owner)]


def _limit(name: str, value: Any) -> float | None:
    """A series limit: a positive finite number of seconds, or None (no limit)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ValueError(f"{name} must be a positive number of seconds or null (no limit), not {value!r}")
    return float(value)
