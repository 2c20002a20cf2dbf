"""A refused batch loses only what was refused: bisection over a real outbox with a client that judges
each point as Thing+ would (a text value on a numeric sensor is a 400 INVALID_INPUT)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gatewayd.errors import CloudError, PermanentError, TransientError
from gatewayd.outbox import Outbox, Point
from gatewayd.outbox.refusals import DEFAULT_BUDGET, reason_code, refusal_reason
from gatewayd.runtime.uploader import Uploader

T0 = (int(time.time()) - 600) * 1000
SENSOR = "a" * 32


class JudgingClient:
    """Refuses a series whose body holds a value that is not a number, naming the first such point, the
    way the emulated Thing+ does; ``down_after`` requests later, the cloud fails with a 503."""

    def __init__(self, outbox: Outbox, *, status: int = 400, down_after: int | None = None) -> None:
        self.outbox = outbox
        self.status = status
        self.down_after = down_after
        self.requests = 0
        self.delivered: list[tuple[int, str]] = []
        self.leased_while_sent: list[bool] = []

    async def series_encoded(self, gateway_id: str, sensor_id: str, body: bytes) -> None:
        self.requests += 1
        self.leased_while_sent.append(sensor_id not in self.outbox.sensors_with_pending())
        if self.down_after is not None and self.requests > self.down_after:
            raise TransientError("unavailable", cloud="thingplus", operation="series", status=503)
        data = json.loads(body)
        items = data if isinstance(data, list) else [data]
        for i, item in enumerate(items):
            try:
                float(item["value"])
            except ValueError:
                where = f"body[{i}]" if isinstance(data, list) else "body"
                code = "INVALID_INPUT" if self.status == 400 else "NOT_FOUND"
                raise PermanentError(
                    f"{where}.value: a temperature value must be a numeric string, not {item['value']!r}",
                    cloud="thingplus",
                    operation="series",
                    status=self.status,
                    code=code,
                ) from None
        self.delivered.extend((item["time"], item["value"]) for item in items)


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    ob = await Outbox.open(tmp_path / "outbox.db")
    try:
        yield ob
    finally:
        await ob.close()


async def fill(outbox: Outbox, n: int, bad: set[int]) -> None:
    await outbox.put([Point(SENSOR, T0 + i, "open" if i in bad else f"{20 + i % 7}.5") for i in range(n)])


def uploader(client: JudgingClient, outbox: Outbox) -> Uploader:
    up = Uploader(client, outbox, gateway_id="gw")  # type: ignore[arg-type]
    up.send_for(up.gateway_id, [SENSOR])
    return up


async def test_one_bad_point_in_500_costs_it_alone_in_a_bounded_number_of_requests(outbox: Outbox) -> None:
    await fill(outbox, 500, bad={321})
    client = JudgingClient(outbox)
    up = uploader(client, outbox)
    result = await up.drain()

    assert sorted(client.delivered) == [(T0 + i, f"{20 + i % 7}.5") for i in range(500) if i != 321]
    assert len(client.delivered) == 499 == result.sent == up.stats.uploaded
    (dead,) = await outbox.dead_letters()
    assert (dead["sensor_id"], dead["time_ms"], dead["value"]) == (SENSOR, T0 + 321, '"open"')
    assert (
        dead["reason"]
        == "400 INVALID_INPUT: body.value: a temperature value must be a numeric string, not 'open'"
    )
    # The whole batch, then two halves on each of ceil(log2 500) = 9 levels.
    assert client.requests == 1 + 2 * math.ceil(math.log2(500)) == 19
    assert outbox.stats.pending == 0 and outbox.stats.dead_lettered == 1
    assert all(client.leased_while_sent), "the sensor was un-leased while parts were in flight"
    assert outbox.sensors_with_pending() == [] and SENSOR not in outbox.leased
    assert up.stats.errors == {"permanent": 1 + 9}  # the batch and one refused half per level


async def test_a_few_bad_points_are_each_isolated_with_the_rest_delivered(outbox: Outbox) -> None:
    bad = {0, 137, 138, 499}
    await fill(outbox, 500, bad=bad)
    client = JudgingClient(outbox)
    await uploader(client, outbox).drain()
    assert len(client.delivered) == 496
    dead = await outbox.dead_letters()
    assert sorted(d["time_ms"] - T0 for d in dead) == sorted(bad)
    assert client.requests <= 1 + DEFAULT_BUDGET


async def test_all_bad_cost_a_budget_a_pass_and_are_dead_lettered_one_by_one_over_passes(
    outbox: Outbox,
) -> None:
    await fill(outbox, 500, bad=set(range(500)))
    client = JudgingClient(outbox)
    up = uploader(client, outbox)
    await up.drain()
    assert client.delivered == []
    # One drain goes on, pass after pass, while each search settles points (depth first, oldest first:
    # every pass isolates some); none is dead-lettered in a lump with others.
    dead = await outbox.dead_letters(limit=1000)
    assert sorted(d["time_ms"] for d in dead) == [T0 + i for i in range(500)]
    assert {reason_code(d["reason"]) for d in dead} == {"400 INVALID_INPUT"}
    assert outbox.stats.pending == 0
    # Each search (the batch, then its budget) settles at least (budget - 2 x 9) / 2 points.
    assert client.requests <= (500 // (DEFAULT_BUDGET // 2 - 9) + 1) * (1 + DEFAULT_BUDGET)
    requests = client.requests
    await up.drain()
    assert client.requests == requests  # nothing left to send


async def test_good_points_beside_many_bad_ones_are_never_dead_lettered(outbox: Outbox) -> None:
    bad = set(range(0, 500, 7))  # 72 bad points spread over the batch: more than one budget can isolate
    await fill(outbox, 500, bad=bad)
    client = JudgingClient(outbox)
    up = uploader(client, outbox)
    await up.drain()
    assert client.requests > 1 + DEFAULT_BUDGET  # more than one search, within one drain
    assert outbox.stats.pending == 0
    dead = await outbox.dead_letters(limit=1000)
    assert sorted(d["time_ms"] - T0 for d in dead) == sorted(bad)
    assert sorted(t - T0 for t, _ in client.delivered) == [i for i in range(500) if i not in bad]


async def test_a_refusal_of_the_whole_request_is_not_split(outbox: Outbox) -> None:
    await fill(outbox, 500, bad={5})
    client = JudgingClient(outbox, status=404)
    await uploader(client, outbox).drain()
    assert client.requests == 1
    dead = await outbox.dead_letters(limit=1000)
    assert len(dead) == 500 and {reason_code(d["reason"]) for d in dead} == {"404 NOT_FOUND"}


async def test_the_cloud_failing_mid_search_keeps_what_is_unresolved_pending(outbox: Outbox) -> None:
    await fill(outbox, 500, bad={400})
    client = JudgingClient(outbox, down_after=3)  # the batch, level 1 (2 halves), then one more
    up = uploader(client, outbox)
    result = await up.drain()
    assert result.cloud_down
    assert len(client.delivered) == 250  # the first half, taken on level 1
    assert await outbox.dead_letters() == []
    assert outbox.stats.pending == 250 and outbox.sensors_with_pending() == [SENSOR]
    client.down_after = None  # the cloud is back: the rest is searched again
    await up.drain()
    assert len(client.delivered) == 499
    assert [d["time_ms"] for d in await outbox.dead_letters()] == [T0 + 400]


async def test_a_stopping_daemon_leaves_the_search_unfinished_and_the_points_pending(outbox: Outbox) -> None:
    await fill(outbox, 500, bad={7})
    client = JudgingClient(outbox)
    clock = [0.0]
    up = Uploader(client, outbox, gateway_id="gw", mono=lambda: clock[0])  # type: ignore[arg-type]
    up.send_for(up.gateway_id, [SENSOR])
    real = client.series_encoded

    async def slow(gateway_id: str, sensor_id: str, body: bytes) -> None:
        try:
            await real(gateway_id, sensor_id, body)
        finally:
            clock[0] += 1.0  # each request takes a second of the drain's deadline

    client.series_encoded = slow  # type: ignore[method-assign]
    await up.drain(deadline=2.5)  # the batch, then one level of two halves, then time is up
    assert client.requests == 3 and len(client.delivered) == 250
    assert await outbox.dead_letters() == []  # not proven refused alone: not dead-lettered
    assert outbox.stats.pending == 500 - len(client.delivered)
    assert outbox.sensors_with_pending() == [SENSOR]


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        (
            "400 INVALID_INPUT: body[3].value: a temperature value must be a numeric string",
            "400 INVALID_INPUT",
        ),
        ("400 SCHEMA_VALIDATE: body.time must be an integer", "400 SCHEMA_VALIDATE"),
        ("404 NOT_FOUND: sensor not found", "404 NOT_FOUND"),
        ("400: Bad Request", "400"),
        ("471 40004: billing", "471 40004"),
        ("400 INVALID_INPUT body.time 1 is too far in the past", "400 INVALID_INPUT"),  # earlier format
        ("400 Bad Request", "400"),  # earlier format, no code
        ("unexpected answer", "other"),
        ("", "other"),
    ],
)
def test_reason_codes(reason: str, code: str) -> None:
    assert reason_code(reason) == code


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (PermanentError("bad", status=400, code="INVALID_INPUT"), "400 INVALID_INPUT: bad"),
        (PermanentError("Bad Request", status=400), "400: Bad Request"),
        (CloudError("odd"), "odd"),
    ],
)
def test_refusal_reasons_carry_their_code(error: CloudError, reason: str) -> None:
    assert refusal_reason(error) == reason
    assert reason_code(reason) == (reason.split(":")[0] if ":" in reason else "other")
