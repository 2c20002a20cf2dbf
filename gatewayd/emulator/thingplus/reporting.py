"""Reporting as the emulated Thing+ answers it: gateway and sensor status, sensor series.

``PUT /v2/gateways/{id}/status``, ``PUT /v2/gateways/{owner}/sensors/{id}/status``,
``PUT /v2/gateways/{owner}/sensors/{id}/series`` (one point or an array). These are the calls a
running gateway makes all day, so the accepting path is kept short (see ``bench/emulator.py``).

A series point older than the state's ``series_max_age_s`` (default 5 days: the real sandbox refused a
point 5 days old) or further ahead than ``series_max_future_s`` is 400 INVALID_INPUT, and so is the
whole request it came in: the platform answers an array with one status.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog
from aiohttp import web

from gatewayd.emulator.thingplus.checks import point, status_body
from gatewayd.emulator.thingplus.model import StatusRecord, short
from gatewayd.emulator.thingplus.state import Record, ThingPlusState
from gatewayd.emulator.thingplus.wire import ok, read_json, schema

log = structlog.get_logger(__name__)
_stdlib_log = logging.getLogger(__name__)


class Reporting:
    """The reporting handlers of one emulated Thing+."""

    def __init__(self, state: ThingPlusState) -> None:
        self.state = state

    async def gateway_status(self, request: web.Request) -> web.StreamResponse:
        gateway_id = request.match_info["id"]
        body = await read_json(request)
        self.state.gateway(gateway_id)
        value, valid_duration = status_body(body)
        record = self._record_status(self.state.gateway_statuses, gateway_id, value, valid_duration)
        history = self.state.gateway_statuses[gateway_id]
        data = {
            "type": "status",
            "value": value,
            "srcDbType": "gateway",
            "time": str(record.received),
            "expireAt": str(record.expire_at),
            "vtime": str(record.received),
            "status": gateway_id,
            "owner": gateway_id,
            "gateway": gateway_id,
            "mtime": str(record.received),
            "ctime": str(history[0].received),
            "id": f"status.gateway.{short(gateway_id)}",
        }
        return ok(data)

    async def _sensor_call(self, request: web.Request) -> tuple[str, str, Record, Any]:
        """A call on ``/v2/gateways/{owner}/sensors/{id}/...``: owner, sensor id, its record, the body."""
        owner, sensor_id = request.match_info["owner"], request.match_info["id"]
        body = await read_json(request)
        return owner, sensor_id, self.state.owned(self.state.sensors, "sensor", owner, sensor_id), body

    async def sensor_status(self, request: web.Request) -> web.StreamResponse:
        state = self.state
        owner, sensor_id, sensor, body = await self._sensor_call(request)
        value, valid_duration = status_body(body)
        record = self._record_status(state.sensor_statuses, sensor_id, value, valid_duration)
        history = state.sensor_statuses[sensor_id]
        sensor["status"] = f"status.sensor.{short(sensor_id)}"
        data = {
            "type": "status",
            "value": value,
            "srcType": sensor["type"],
            "srcCategory": "sensor",
            "srcDbType": "sensor",
            "time": str(record.received),
            "expireAt": str(record.expire_at),
            "vtime": str(history[0].received),
            "status": sensor_id,
            "owner": owner,
            "sensor": sensor_id,
            "mtime": str(record.received),
            "ctime": str(history[0].received),
            "id": sensor["status"],
        }
        return ok(data)

    async def series(self, request: web.Request) -> web.StreamResponse:
        state = self.state
        owner, sensor_id, sensor, body = await self._sensor_call(request)
        many = isinstance(body, list)
        items = body if many else [body]
        if many and not items:
            raise schema("body must hold at least one point")
        now = state.now_ms()
        oldest, newest = state.series_bounds(now)
        kind = sensor["type"]
        points = [
            point(item, f"body[{i}]" if many else "body", kind, now, oldest, newest)
            for i, item in enumerate(items)
        ]
        history = state.points.setdefault(sensor_id, [])
        first_ms = history[0].received if history else now
        history.extend(points)
        state.points_accepted += len(points)
        sensor["series"] = f"series.sensor.{short(sensor_id)}"
        sensor["mtime"] = now
        if _debug_enabled():
            log.debug(
                "emulator.thingplus.series_accepted", gateway=owner, sensor=sensor_id, points=len(points)
            )
        if not many:
            return ok({**sensor, "mtime": str(now), "ctime": str(sensor["ctime"])})
        last = max(points, key=lambda p: p.time)
        data = {
            "type": "series",
            "srcType": kind,
            "seriesPack": [{"value": p.value, "time": p.time} for p in points],
            "mtime": str(now),
            "ctime": str(first_ms),
            "time": str(last.time),
            "value": last.value,
            "owner": owner,
            "series": sensor_id,
            "sensor": sensor_id,
            "srcCategory": "sensor",
            "srcDbType": "sensor",
            "id": sensor["series"],
        }
        return ok(data)

    def _record_status(
        self, store: dict[str, list[StatusRecord]], key: str, value: str, valid_duration: int
    ) -> StatusRecord:
        now = self.state.now_ms()
        record = StatusRecord(
            received=now, value=value, valid_duration=valid_duration, expire_at=now + valid_duration * 1000
        )
        store.setdefault(key, []).append(record)
        if _debug_enabled():
            log.debug(
                "emulator.thingplus.status_accepted", target=key, value=value, valid_duration=valid_duration
            )
        return record


def _debug_enabled() -> bool:
    """False when structlog would drop this module's debug lines at once: then none is built per request.

    That is gatewayd's logging (``filter_by_level`` over stdlib) above debug; any other setup (none,
    ``capture_logs``) gets every line as before.
    """
    if _stdlib_log.isEnabledFor(logging.DEBUG):
        return True
    return structlog.stdlib.filter_by_level not in structlog.get_config()["processors"]
