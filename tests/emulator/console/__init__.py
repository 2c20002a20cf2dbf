"""Helpers of the console tests: a Thing+ filled directly (as its state's docstring allows), and a reader
of the console's server-sent events."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from gatewayd.emulator.thingplus import Point, StatusRecord, ThingPlusEmulator
from tests.emulator import inventory
from tests.helpers.clocks import FakeClock


def thingplus(report_interval_ms: int = 5000) -> ThingPlusEmulator:
    """A Thing+ emulator on its own (no server) at :class:`FakeClock`'s time."""
    return ThingPlusEmulator(inventory().thingplus, report_interval_ms=report_interval_ms, clock=FakeClock())


def add_gateway(
    tp: ThingPlusEmulator,
    gateway_id: str,
    *,
    name: str | None = None,
    sensors: int = 0,
    sensor_type: str = "temperature",
    category: str = "sensor",
) -> list[str]:
    """A gateway with one device and ``sensors`` sensors (ids ``{gateway}-s{i}``), as registration
    leaves them; the sensor ids."""
    now = tp.now_ms()
    if gateway_id not in tp.gateways:
        tp.gateways[gateway_id] = {
            "id": gateway_id,
            "name": name or f"Gateway {gateway_id}",
            "reportInterval": str(tp.report_interval_ms),
            "model": "52",
            "ctime": now,
            "mtime": now,
        }
        tp.devices[f"{gateway_id}-d"] = {"id": f"{gateway_id}-d", "owner": gateway_id, "name": "Device"}
    first = tp.sensors.count_of(gateway_id)
    ids = [f"{gateway_id}-s{i}" for i in range(first, first + sensors)]
    for i, sensor_id in enumerate(ids, start=first):
        tp.sensors[sensor_id] = {
            "id": sensor_id,
            "owner": gateway_id,
            "name": f"Sensor {i}",
            "type": sensor_type,
            "category": category,
            "deviceId": f"{gateway_id}-d",
            "ctime": now,
            "mtime": now,
        }
    return ids


def add_points(tp: ThingPlusEmulator, sensor_id: str, *values: Any, start_ms: int | None = None) -> None:
    """Points of ``sensor_id`` a second apart (from ``start_ms``, default a minute ago), as accepted."""
    now = tp.now_ms()
    start = now - 60_000 if start_ms is None else start_ms
    history = tp.points.setdefault(sensor_id, [])
    first = len(history)
    history.extend(Point(start + (first + k) * 1000, v, now) for k, v in enumerate(values))
    tp.points_accepted += len(values)


def add_status(tp: ThingPlusEmulator, gateway_id: str, value: str = "on", valid_s: int = 30) -> StatusRecord:
    now = tp.now_ms()
    record = StatusRecord(now, value, valid_s, now + valid_s * 1000)
    tp.gateway_statuses.setdefault(gateway_id, []).append(record)
    return record


class Events:
    """The messages of one console stream: ``await events.next()`` is the next ``{"t", "sections"}``."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self) -> dict[str, Any]:
        while True:
            line = await self.response.content.readline()
            if not line:
                raise EOFError("the stream ended")
            if line.startswith(b"data: "):
                message: dict[str, Any] = json.loads(line[len(b"data: ") :])
                return message

    async def until(self, section: str, check: Any, timeout: float = 5.0) -> dict[str, Any]:
        """The first message whose ``section`` passes ``check(value)``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            message = await self.next(max(0.01, deadline - loop.time()))
            value = message["sections"].get(section)
            if value is not None and check(value):
                return message
