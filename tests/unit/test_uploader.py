"""The uploader's passes over a real outbox with a scripted client: what happens to each lease."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gatewayd.errors import PermanentError, StorageError, TransientError
from gatewayd.outbox import Outbox, Point
from gatewayd.runtime.uploader import Uploader

T0 = (int(time.time()) - 60) * 1000
SENSORS = [f"s{i:02d}" for i in range(40)]


class ScriptedClient:
    """Answers series PUTs: ``fail`` maps a sensor id to the exception its upload raises."""

    def __init__(self, fail: dict[str, BaseException] | None = None) -> None:
        self.fail = fail or {}
        self.sent: dict[str, list[bytes]] = {}

    async def series_encoded(self, gateway_id: str, sensor_id: str, body: bytes) -> None:
        if sensor_id in self.fail:
            raise self.fail[sensor_id]
        self.sent.setdefault(sensor_id, []).append(body)


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    ob = await Outbox.open(tmp_path / "outbox.db")
    await ob.put([Point(s, T0 + i, f"{s}-{i}") for i in range(3) for s in SENSORS])
    try:
        yield ob
    finally:
        await ob.close()


def uploader(client: Any, outbox: Outbox) -> Uploader:
    up = Uploader(client, outbox, gateway_id="gw", concurrency=4, sensors_per_pass=64)
    up.send_for(up.gateway_id, SENSORS)
    return up


async def test_a_pass_sends_each_sensor_once_and_acks_it(outbox: Outbox) -> None:
    client = ScriptedClient()
    result = await uploader(client, outbox).drain()
    assert (result.sent, result.batches, result.failed, result.pending) == (120, 40, 0, 0)
    assert sorted(client.sent) == SENSORS and all(len(b) == 1 for b in client.sent.values())


async def test_a_refused_batch_is_dead_lettered_and_a_transient_failure_keeps_the_rest(
    outbox: Outbox,
) -> None:
    refused = PermanentError("bad", cloud="thingplus", operation="series", status=400)
    down = TransientError("down", cloud="thingplus", operation="series")
    client = ScriptedClient({"s03": refused, "s10": down})
    result = await uploader(client, outbox).drain()
    assert result.cloud_down and result.failed >= 2
    assert outbox.stats.dead_lettered == 3
    assert "s03" not in outbox.stats.pending_by_sensor
    # The cloud went down mid-pass: what was not sent stays pending, none of it still leased.
    assert set(outbox.sensors_with_pending()) == set(outbox.stats.pending_by_sensor)
    assert outbox.stats.pending == 120 - 3 - 3 * len(client.sent)


async def test_no_lease_is_stranded_when_the_outbox_fails_under_a_pass(outbox: Outbox) -> None:
    refused = PermanentError("bad", cloud="thingplus", operation="series", status=400)
    client = ScriptedClient({"s01": refused})

    def disk_full(*_: Any) -> int:
        raise StorageError("outbox dead-letter failed: database or disk is full")

    outbox.store.dead_letter = disk_full  # type: ignore[method-assign]
    up = uploader(client, outbox)
    with pytest.raises(StorageError):
        await up.drain()
    # Every sensor is leasable again; what the cloud took was acknowledged (and counted), the rest waits.
    assert set(outbox.sensors_with_pending()) == set(outbox.stats.pending_by_sensor)
    assert outbox.stats.pending == 120 - 3 * len(client.sent)
    assert up.stats.uploaded == 3 * len(client.sent) == outbox.stats.acked
    assert "s01" in outbox.stats.pending_by_sensor

    del outbox.store.dead_letter  # the disk has room again: the next cycle sends the rest
    client.fail.clear()
    result = await uploader(client, outbox).drain()
    assert result.pending == 0 and sorted(client.sent) == SENSORS
