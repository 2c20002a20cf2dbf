"""A sensor's recent points for the chart: the one-off fetch (limit, sorting, 404) and the streamed cursor."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from gatewayd.emulator.console.points import CHART_MAX, MAX_LIMIT, ChartCursor, kind_of
from gatewayd.emulator.thingplus import Point, ThingPlusEmulator
from tests.emulator import call
from tests.emulator.console import add_gateway, add_points

pytestmark = pytest.mark.usefixtures("server")


@pytest.mark.parametrize(
    ("sensor_type", "last_value", "expected"),
    [
        ("temperature", "21.5", "number"),
        ("number", None, "number"),
        ("string", "online", "state"),
        ("onoff", "on", "state"),
        ("location", {"lat": 37.5, "lng": 127.0}, "object"),
        ("location", "37.5,127.0", "state"),
        (None, None, "number"),
    ],
)
def test_kind_of(sensor_type: str | None, last_value: str | dict[str, Any] | None, expected: str) -> None:
    history = [Point(1, last_value, 1)] if last_value is not None else None
    assert kind_of(sensor_type, history) == expected


async def test_points_answers_the_last_limit_sorted_by_time_and_the_cursor(
    http, tp: ThingPlusEmulator
) -> None:
    (sensor,) = add_gateway(tp, "gw", sensors=1)
    add_points(tp, sensor, *(str(v) for v in range(10)))
    add_points(tp, sensor, "late", start_ms=tp.now_ms() - 3_600_000)  # a retry of an old point arrives last
    status, body = await call(http, "GET", f"/_emulator/console/sensors/{sensor}/points?limit=3")
    assert status == 200
    assert (body["sensor"], body["name"], body["type"], body["kind"]) == (
        sensor,
        "Sensor 0",
        "temperature",
        "number",
    )
    assert (body["total"], body["cursor"]) == (11, 11)
    history = tp.points[sensor]
    assert body["points"] == [[history[-1].time, "late"], [history[8].time, "8"], [history[9].time, "9"]]
    status, body = await call(http, "GET", f"/_emulator/console/sensors/{sensor}/points")
    assert status == 200 and len(body["points"]) == 11


async def test_a_sensor_without_points_answers_none_and_an_unknown_one_404(
    http, tp: ThingPlusEmulator
) -> None:
    (sensor,) = add_gateway(tp, "gw", sensors=1)
    status, body = await call(http, "GET", f"/_emulator/console/sensors/{sensor}/points")
    assert (status, body["points"], body["cursor"]) == (200, [], 0)
    status, body = await call(http, "GET", "/_emulator/console/sensors/nope/points")
    assert status == 404 and "nope" in body["error"]


async def test_a_deleted_gateways_sensor_still_shows_its_points(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator
) -> None:
    (sensor,) = add_gateway(tp, "gw", sensors=1)
    add_points(tp, sensor, "1")
    tp.delete_gateway("gw")
    status, body = await call(http, "GET", f"/_emulator/console/sensors/{sensor}/points")
    assert (status, body["name"], len(body["points"])) == (200, None, 1)


@pytest.mark.parametrize("limit", ["0", "-1", str(MAX_LIMIT + 1), "many", ""])
async def test_a_bad_limit_is_400(http: aiohttp.ClientSession, tp: ThingPlusEmulator, limit: str) -> None:
    (sensor,) = add_gateway(tp, "gw", sensors=1)
    status, body = await call(http, "GET", f"/_emulator/console/sensors/{sensor}/points?limit={limit}")
    assert status == 400 and "limit" in body["error"]


def test_the_chart_cursor_gives_each_tick_the_points_received_since(tp: ThingPlusEmulator) -> None:
    (sensor,) = add_gateway(tp, "gw", sensors=1)
    add_points(tp, sensor, "1", "2")
    cursor = ChartCursor(sensor, since=1)  # the page fetched one point
    section = cursor.section(tp)
    assert (section["from"], section["to"], [p[1] for p in section["points"]]) == (1, 2, ["2"])
    assert cursor.section(tp) == {"sensor": sensor, "from": 2, "to": 2, "points": []}
    add_points(tp, sensor, "3", "4")
    assert [p[1] for p in cursor.section(tp)["points"]] == ["3", "4"]


def test_without_since_the_cursor_starts_at_the_end_and_a_burst_is_cut_to_the_newest(
    tp: ThingPlusEmulator,
) -> None:
    (sensor,) = add_gateway(tp, "gw", sensors=1)
    add_points(tp, sensor, "old")
    cursor = ChartCursor(sensor, since=None)
    assert cursor.section(tp)["points"] == []
    add_points(tp, sensor, *(str(i) for i in range(CHART_MAX + 10)))
    section = cursor.section(tp)
    assert (section["from"], section["to"]) == (11, CHART_MAX + 11)
    assert section["points"][0][1] == "10" and len(section["points"]) == CHART_MAX
    # a since beyond the history (a stale page) is clamped
    assert ChartCursor(sensor, since=10**9).section(tp)["points"] == []
    assert ChartCursor("unknown", since=0).section(tp)["points"] == []
