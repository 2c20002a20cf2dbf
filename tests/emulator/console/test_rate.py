"""Points per second from Thing+'s running count (bumped by the HTTPS series handler and the MQTT data
path): samples taken when a page asks, over a few seconds."""

from __future__ import annotations

import aiohttp
import pytest

from gatewayd.emulator.console.rate import WINDOW_S, RateMeter
from gatewayd.emulator.thingplus import ThingPlusEmulator
from gatewayd.emulator.thingplus.mqttgateways import DEMO_MQTT_GATEWAY_ID
from tests.emulator import RECENT_MS, call, register
from tests.emulator.console import add_gateway
from tests.helpers.clocks import FakeClock


@pytest.mark.parametrize(
    ("asks", "expected"),
    [
        # (seconds since the previous ask, total then) ..., rate at the last ask
        ([(0, 0)], 0.0),  # one sample: no rate yet
        ([(0, 0), (1, 10)], 10.0),
        ([(0, 0), (0.1, 10)], 0.0),  # too close: not a sample, and no rate from it
        ([(0, 0), (1, 10), (1, 30)], 15.0),
        # the window moves: the growth of the last WINDOW_S seconds or so
        ([(0, 0), *[(1, 100 * k) for k in range(1, 10)], (1, 1000)], 100.0),
        ([(0, 0), (1, 50), (1, 100), (1, 100), (1, 100), (1, 100), (1, 100), (1, 100)], 0.0),
        # nobody asked for long: start again rather than average over the silence
        ([(0, 0), (1, 10), (3 * WINDOW_S, 1000)], 0.0),
        ([(0, 0), (1, 10), (3 * WINDOW_S, 1000), (2, 1040)], 20.0),
        ([(0, 5), (1, 3)], 0.0),  # never negative
    ],
)
def test_rate_from_a_running_total(asks: list[tuple[float, int]], expected: float) -> None:
    clock = FakeClock(50.0)
    total = [0]
    meter = RateMeter(lambda: total[0], clock=clock)
    rate = None
    for gap, value in asks:
        clock.advance(gap)
        total[0] = value
        rate = meter.rate()
    assert rate == expected


def test_many_pages_asking_in_one_tick_keep_one_sample() -> None:
    clock = FakeClock(0.0)
    total = [0]
    meter = RateMeter(lambda: total[0], clock=clock)
    assert meter.rate() == 0.0
    for second in range(1, 4):
        clock.advance(1)
        total[0] = 7 * second
        rates = {meter.rate() for _ in range(20)}
        assert rates == {7.0}


async def test_thingplus_counts_points_accepted_over_https_and_mqtt(
    http: aiohttp.ClientSession, auth: dict[str, str], tp: ThingPlusEmulator
) -> None:
    gateway, _, sensor = await register(http, auth)
    points = [{"value": "21.5", "time": RECENT_MS}, {"value": "22.0", "time": RECENT_MS + 1000}]
    status, body = await call(http, "PUT", f"/v2/gateways/{gateway}/sensors/{sensor}/series", auth, points)
    assert status == 200, body
    status, body = await call(
        http, "PUT", f"/v2/gateways/{gateway}/sensors/{sensor}/series", auth, [{"value": "x"}]
    )
    assert status == 400  # refused: not counted
    assert tp.points_accepted == 2
    (mqtt_sensor,) = add_gateway(tp, DEMO_MQTT_GATEWAY_ID, sensors=1)
    payload = f"{RECENT_MS},1.5,{RECENT_MS + 1000},2.5,{RECENT_MS - 5000},0.5".encode()
    tp.mqtt.received(DEMO_MQTT_GATEWAY_ID, f"v/a/g/{DEMO_MQTT_GATEWAY_ID}/s/{mqtt_sensor}", payload)
    # the last point is older than the sensor's newest: ignored as the platform does, not counted
    assert len(tp.points[mqtt_sensor]) == 2
    assert tp.points_accepted == 4
