"""A sensor's recent points for the console's chart: fetched once when a sensor is opened, then streamed.

``GET /_emulator/console/sensors/{id}/points?limit=2000`` answers the last ``limit`` points received
(sorted by their time) and a ``cursor``: how many the sensor had. The page then opens its stream with
``sensor={id}&since={cursor}``, and each tick the stream's ``chart`` section carries the points received
since (:class:`ChartCursor`), so nothing is sent twice and nothing is missed between the fetch and the
stream. A sensor's history only grows (in arrival order), so a cursor is an index into it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gatewayd.emulator.thingplus import ThingPlusEmulator
from gatewayd.emulator.thingplus.checks import FREE_TYPES
from gatewayd.emulator.thingplus.model import Point

DEFAULT_LIMIT = 2000
MAX_LIMIT = 10000
#: At most this many new points in one tick's ``chart`` section (the chart keeps no more anyway).
CHART_MAX = 2000


def kind_of(sensor_type: str | None, history: list[Point] | None) -> str:
    """How the page draws a sensor: ``number`` (a line), ``state`` (a strip of strings) or ``object``
    (a table): objects by their values, free text by the sensor's type, every other type is numeric."""
    if history and isinstance(history[-1].value, dict):
        return "object"
    if sensor_type in FREE_TYPES:
        return "state"
    return "number"


def _pairs(points: list[Point]) -> list[list[Any]]:
    return [[p.time, p.value] for p in points]


def recent_points(tp: ThingPlusEmulator, sensor_id: str, limit: int) -> dict[str, Any]:
    """The sensor's last ``limit`` points by arrival, sorted by time, and the cursor after them.

    KeyError when Thing+ knows no such sensor (a deleted gateway's sensors keep their points)."""
    sensor = tp.sensors.get(sensor_id)
    history = tp.points.get(sensor_id)
    if sensor is None and history is None:
        raise KeyError(sensor_id)
    history = history or []
    recent = sorted(history[-limit:], key=lambda p: p.time)
    return {
        "sensor": sensor_id,
        "name": sensor.get("name") if sensor else None,
        "type": sensor.get("type") if sensor else None,
        "kind": kind_of(sensor.get("type") if sensor else None, history),
        "total": len(history),
        "cursor": len(history),
        "points": _pairs(recent),
    }


def points_handler(tp: ThingPlusEmulator) -> Any:
    """The aiohttp handler of ``GET /_emulator/console/sensors/{id}/points``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        raw = request.query.get("limit", str(DEFAULT_LIMIT))
        try:
            limit = int(raw)
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIMIT:
            return web.json_response(
                {"error": f"limit must be an integer from 1 to {MAX_LIMIT}, not {raw!r}"}, status=400
            )
        sensor_id = request.match_info["id"]
        try:
            return web.json_response(recent_points(tp, sensor_id, limit))
        except KeyError:
            return web.json_response({"error": f"sensor {sensor_id} is not known to Thing+"}, status=404)

    return handler


class ChartCursor:
    """Where one stream is in one sensor's history: each :meth:`section` gives the points since."""

    def __init__(self, sensor_id: str, since: int | None) -> None:
        self.sensor_id = sensor_id
        #: None: start at the end of the history on the first tick (the page fetched none).
        self.position = since

    def section(self, tp: ThingPlusEmulator) -> dict[str, Any]:
        """``{sensor, from, to, points}``: the points received between the last tick and now (at most
        :data:`CHART_MAX`, the newest), ``from``/``to`` their index range in the history."""
        history = tp.points.get(self.sensor_id) or []
        end = len(history)
        start = end if self.position is None else min(max(self.position, 0), end)
        first = max(start, end - CHART_MAX)
        self.position = end
        return {"sensor": self.sensor_id, "from": first, "to": end, "points": _pairs(history[first:end])}
