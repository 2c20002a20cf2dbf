"""Which 404s mean "the gateway was deleted on the cloud side": confirmed once, acted on once, ids kept."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gatewayd.errors import CloudError, PermanentError, StorageError, TransientError
from gatewayd.runtime.gatewaywatch import GatewayWatch
from gatewayd.runtime.registry import Registry

NOT_FOUND = PermanentError("sensor or gateway not found", cloud="thingplus", operation="series", status=404)


class FakeThingPlus:
    """``gateway()`` answers with ``record`` or raises ``error``; calls are counted."""

    def __init__(self, error: CloudError | None = None) -> None:
        self.error = error
        self.calls = 0

    async def gateway(self, gateway_id: str) -> dict[str, Any]:
        self.calls += 1
        await asyncio.sleep(0)  # let concurrent callers pile up on the lock
        if self.error is not None:
            raise self.error
        return {"id": gateway_id}


def registered(tmp_path: Path) -> Registry:
    registry = Registry(tmp_path)
    registry.ensure_ids([("Room", "Temperature")])
    registry.mark_gateway_registered()
    registry.mark_device_registered("Room")
    registry.mark_sensor_registered("Room", "Temperature")
    registry.flush()
    return registry


def watch(tmp_path: Path, client: FakeThingPlus) -> tuple[GatewayWatch, list[int], Registry]:
    lost: list[int] = []
    registry = registered(tmp_path)
    return GatewayWatch(client, registry, lambda: lost.append(1)), lost, registry  # type: ignore[arg-type]


async def test_a_404_confirmed_by_the_gateway_record_is_the_gateway_lost_once(tmp_path: Path) -> None:
    client = FakeThingPlus(PermanentError("gateway not found", status=404))
    gw, lost, registry = watch(tmp_path, client)
    ids = (registry.gateway_id(), registry.device_id("Room"), registry.sensor_id("Room", "Temperature"))
    answers = await asyncio.gather(*(gw.keeps_data(NOT_FOUND) for _ in range(16)))
    assert answers == [True] * 16 and client.calls == 1 and lost == [1]
    assert not registry.gateway_registered() and not registry.sensor_registered("Room", "Temperature")
    reloaded = Registry(tmp_path)  # saved at once, ids kept
    assert not reloaded.gateway_registered() and not reloaded.device_registered("Room")
    assert (
        reloaded.gateway_id(),
        reloaded.device_id("Room"),
        reloaded.sensor_id("Room", "Temperature"),
    ) == ids
    gw.found()
    assert await gw.keeps_data(NOT_FOUND) and client.calls == 2 and lost == [1, 1]  # a new occurrence


async def test_a_loss_found_on_a_full_disk_still_registers_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cleared marks cannot be saved (disk full): registering again must not wait for the disk. Were
    the watch left "lost" without the daemon told, every later 404 would keep its points and nothing would
    ever register the gateway again."""
    gw, lost, registry = watch(tmp_path, FakeThingPlus(PermanentError("gateway not found", status=404)))

    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise StorageError("cannot write state file: No space left on device")

    monkeypatch.setattr(registry._file, "save", disk_full)
    assert await gw.keeps_data(NOT_FOUND) is True
    assert lost == [1] and gw.lost
    assert not registry.gateway_registered() and not registry.sensor_registered("Room", "Temperature")
    monkeypatch.undo()  # space again: the next flush saves the cleared marks
    registry.flush()
    assert not Registry(tmp_path).gateway_registered()


async def test_a_404_while_the_gateway_exists_is_not_its_loss(tmp_path: Path) -> None:
    client = FakeThingPlus()
    gw, lost, registry = watch(tmp_path, client)
    assert await gw.keeps_data(NOT_FOUND) is False
    assert lost == [] and registry.gateway_registered()


async def test_when_the_check_cannot_tell_the_data_is_kept_and_nothing_is_forgotten(tmp_path: Path) -> None:
    gw, lost, registry = watch(tmp_path, FakeThingPlus(TransientError("down", status=503)))
    assert await gw.keeps_data(NOT_FOUND) is True
    assert lost == [] and registry.gateway_registered() and not gw.lost


@pytest.mark.parametrize("status", [None, 400, 409, 500])
async def test_only_a_404_asks(tmp_path: Path, status: int | None) -> None:
    client = FakeThingPlus(PermanentError("gone", status=404))
    gw, lost, _ = watch(tmp_path, client)
    assert await gw.keeps_data(CloudError("other", status=status)) is False
    assert client.calls == 0 and lost == []
