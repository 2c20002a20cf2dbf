"""Registry saves through a full disk: which ids count as saved, when a failed save is tried again, what is
logged and shown, what registration may use. A fake outbox and a fake clock, no sleeps: the disk guard's
loop is not run, its followers' turn (:meth:`RegistrySaver.retry`) is taken by hand."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from gatewayd.clouds.thingplus import Registration
from gatewayd.errors import DiskFullError, StorageError
from gatewayd.inventory.config import parse_inventory
from gatewayd.outbox import Outbox
from gatewayd.runtime import registrysaver
from gatewayd.runtime.diskguard import DiskGuard
from gatewayd.runtime.registrar import register
from gatewayd.runtime.registry import Registry
from gatewayd.runtime.registrysaver import RegistrySaver
from gatewayd.runtime.sampler import SampleBuffer
from gatewayd.runtime.snapshots import WaitingSensor
from tests.conftest import VALID, logs_of
from tests.helpers.clocks import FakeClock
from tests.unit.test_daemon_parts import MODEL
from tests.unit.test_diskguard import FakeOutbox, make, sample

PAIRS = [("Room", "Temperature"), ("Room", "Humidity")]
WAITING = [WaitingSensor("Room", "Temperature", "temperature"), WaitingSensor("Room", "Humidity", "humidity")]


@dataclass
class Rig:
    saver: RegistrySaver
    registry: Registry
    outbox: FakeOutbox
    guard: DiskGuard
    buffer: SampleBuffer
    clock: FakeClock
    #: One entry per call of the saver's ``on_ids_saved``.
    started: list[int]


def rig(state_dir: Path) -> Rig:
    guard, outbox, buffer, clock = make()
    registry = Registry(state_dir)
    started: list[int] = []

    async def on_ids_saved() -> None:
        started.append(1)
        saver.set_waiting([], {w.key for w in WAITING})  # as the daemon does once they run

    saver = RegistrySaver(registry, cast(Any, outbox), guard, on_ids_saved=on_ids_saved, mono=clock)
    return Rig(saver, registry, outbox, guard, buffer, clock, started)


def saved_record(state_dir: Path) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads((state_dir / "registry.json").read_text()))


# ------------------------------------------------------------------------------------------ the registry


def test_new_ids_count_as_saved_only_once_a_save_held_them(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    registry.add_ids(PAIRS)
    assert registry.dirty and registry.unsaved_ids == 4  # the gateway, the device, two sensors
    assert not registry.gateway_saved() and not registry.sensor_saved("Room", "Temperature")
    assert not (tmp_path / "registry.json").exists()
    temperature = registry.sensor_id("Room", "Temperature")  # made already: returned, not saved
    assert not (tmp_path / "registry.json").exists()

    registry.save()
    assert not registry.dirty and registry.unsaved_ids == 0
    assert registry.gateway_saved() and registry.device_saved("Room")
    assert registry.sensor_saved("Room", "Temperature") and registry.sensor_saved("Room", "Humidity")
    assert not registry.sensor_saved("Room", "Pressure")  # no id at all
    assert Registry(tmp_path).sensor_id("Room", "Temperature") == temperature


def test_a_snapshot_older_than_one_written_is_not_written_over_it(tmp_path: Path) -> None:
    """Two saves may overlap (one on the outbox's thread, one made at once on the event loop): the file
    never goes back to the older, and what the older held counts as saved (the newer holds it too)."""
    registry = Registry(tmp_path)
    registry.add_ids([("Room", "Temperature")])
    older = registry.snapshot()
    registry.add_ids([("Cellar", "Level")])
    newer = registry.snapshot()
    registry.write(newer)
    registry.write(older)
    assert set(saved_record(tmp_path)["sensors"]) == {"Room/Temperature", "Cellar/Level"}
    registry.written(newer)
    registry.written(older)
    assert not registry.dirty and registry.sensor_saved("Cellar", "Level")


def test_a_mark_made_while_a_snapshot_is_written_is_left_for_the_next_save(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    registry.ensure_ids(PAIRS)
    snapshot = registry.snapshot()
    registry.mark_gateway_registered()  # while the snapshot is on its way to the disk
    registry.write(snapshot)
    registry.written(snapshot)
    assert registry.dirty
    registry.flush()
    assert not registry.dirty and Registry(tmp_path).gateway_registered()


# ------------------------------------------------------------------------------------------- the saver


async def test_a_first_start_on_a_full_disk_saves_nothing_and_starts_the_sensors_once_saved(
    tmp_path: Path,
) -> None:
    r = rig(tmp_path)
    r.outbox.full = True
    r.registry.add_ids(PAIRS)
    assert await r.saver.save(at_start=True) is False  # no exception: the daemon runs on
    assert (
        r.saver.episode.disk_full and r.saver.episode.failures == 1 and r.outbox.asides == [True]
    )  # with the reserve
    with logs_of(registrysaver) as logs:
        r.saver.set_waiting(WAITING, set())
    [line] = logs
    assert line["log_level"] == "error" and line["sensors"] == ["Room/Temperature", "Room/Humidity"]
    assert r.saver.problem() == "2 sensors waiting for disk space to save their ids"
    assert r.saver.reason() == "waiting for disk space to save its id"
    gateway = asyncio.ensure_future(r.saver.gateway_saved())  # what registration waits for

    r.clock.advance(0.5)
    await r.saver.retry()
    assert len(r.outbox.asides) == 1  # not due before 1 s
    r.clock.advance(0.5)
    await r.saver.retry()
    assert len(r.outbox.asides) == 2 and r.saver.episode.failures == 2  # due: tried, still full; next in 2 s
    r.outbox.full = False
    r.clock.advance(1.9)
    await r.saver.retry()
    assert len(r.outbox.asides) == 2 and r.started == [] and not gateway.done()
    r.clock.advance(0.1)
    await r.saver.retry()
    assert len(r.outbox.asides) == 3 and r.saver.episode.failures == 0 and r.saver.episode.error is None
    assert r.started == [1]  # the daemon hears the sensors may start
    await asyncio.wait_for(gateway, 1)
    assert r.registry.sensor_saved("Room", "Humidity") and r.saver.problem() is None
    assert set(saved_record(tmp_path)["sensors"]) == {"Room/Temperature", "Room/Humidity"}
    await r.saver.retry()
    assert r.started == [1] and len(r.outbox.asides) == 3  # nothing more to do


async def backed_off(r: Rig) -> None:
    """Four failed saves in a row: the next try is 8 s away."""
    r.outbox.full = True
    r.registry.add_ids(PAIRS)
    await r.saver.save()
    for _ in range(3):
        r.clock.advance(60.0)
        await r.saver.retry()
    assert r.saver.episode.failures == 4
    r.clock.advance(1.0)
    await r.saver.retry()
    assert len(r.outbox.asides) == 4  # not due


async def test_the_outbox_writable_again_makes_a_retry_due_at_once(tmp_path: Path) -> None:
    r = rig(tmp_path)
    await r.guard.open()
    await backed_off(r)
    sample(r.buffer, 0, 1)
    await r.guard.commit()  # the outbox cannot take it either
    assert not r.guard.writable
    r.outbox.full = False
    r.clock.advance(1.0)
    await r.guard.commit()
    assert r.guard.writable and r.guard.recoveries == 1
    await r.saver.retry()
    assert len(r.outbox.asides) == 5 and r.registry.gateway_saved()


async def test_room_for_the_reserve_again_makes_a_retry_due_at_once(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.outbox.reserve_held = False  # given back when the disk filled
    await backed_off(r)
    r.outbox.full = False
    r.outbox.reserve_held = True  # the disk guard took it back: there is room
    await r.saver.retry()
    assert len(r.outbox.asides) == 5 and r.registry.gateway_saved()


async def test_marks_that_cannot_be_saved_are_logged_once_and_saved_later(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.registry.ensure_ids(PAIRS)
    r.registry.mark_gateway_registered()
    r.registry.mark_sensor_registered("Room", "Temperature")
    r.outbox.full = True
    with logs_of(registrysaver) as logs:
        assert await r.saver.save() is False
        for _ in range(3):
            r.clock.advance(60.0)
            await r.saver.retry()
        assert r.saver.episode.failures == 4 and r.saver.problem() is None  # no sensor waits for marks
        r.outbox.full = False
        r.clock.advance(60.0)
        await r.saver.retry()
    assert r.outbox.asides == [False] * 5  # marks alone never take the disk space reserve
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1 and warnings[0]["event"] == "registry.marks_not_saved"
    assert warnings[0]["disk_full"] is True
    assert logs[-1]["event"] == "registry.saved_again" and logs[-1]["failures"] == 4
    again = Registry(tmp_path)
    assert again.gateway_registered() and again.sensor_registered("Room", "Temperature")
    assert r.started == []


async def test_at_start_another_storage_error_is_raised_later_it_is_waited_out(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.outbox.error = StorageError("cannot write state file in /x: Permission denied")
    r.registry.add_ids(PAIRS)
    with pytest.raises(StorageError, match="Permission denied"):
        await r.saver.save(at_start=True)
    assert await r.saver.save() is False  # a reload: the daemon runs on
    assert not r.saver.episode.disk_full
    r.saver.set_waiting(WAITING[:1], set())
    assert r.saver.problem() == (
        "1 sensor waiting to save its id (cannot write state file in /x: Permission denied)"
    )


async def test_a_save_of_new_ids_gets_the_outbox_reserve_and_one_of_marks_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reserve's blocks are what lets a new sensor's id reach the disk when it is full; marks are not
    worth them. Modelled: the registry's file fits only once the reserve file is gone."""
    outbox = await Outbox.open(tmp_path / "outbox.db", reserve_bytes=64 * 1024)
    try:
        assert outbox.reserve_held
        registry = Registry(tmp_path)
        registry.ensure_ids(PAIRS)
        registry.mark_gateway_registered()
        write = registry._file.save

        def save_if_room(record: dict[str, Any], **kwargs: Any) -> None:
            if (tmp_path / "outbox.reserve").exists():
                raise DiskFullError("cannot write state file: No space left on device")
            write(record, **kwargs)

        monkeypatch.setattr(registry._file, "save", save_if_room)
        saver = RegistrySaver(registry, outbox, DiskGuard(outbox, SampleBuffer(outbox)))
        assert await saver.save() is False
        assert outbox.reserve_held and not Registry(tmp_path).gateway_registered()

        registry.add_ids([("Cellar", "Level")])
        assert await saver.save() is True
        assert not outbox.reserve_held and registry.sensor_saved("Cellar", "Level")
        again = Registry(tmp_path)
        assert again.sensor_saved("Cellar", "Level") and again.gateway_registered()
    finally:
        await outbox.close()


# ------------------------------------------------------------------------------------------ registration


class FakeThingPlus:
    """Registration calls answered as a fresh Thing+ would; what was registered is recorded."""

    def __init__(self) -> None:
        self.registered: list[str] = []

    async def sites(self) -> list[dict[str, Any]]:
        return [{"id": "site-1"}]

    async def gateway_model(self, model_id: str) -> dict[str, Any]:
        return MODEL

    async def register_gateway(self, gateway_id: str, **kwargs: Any) -> Registration:
        self.registered.append(f"gateway {kwargs['name']}")
        return Registration(created=True, data={})

    async def register_device(self, gateway_id: str, device_id: str, **kwargs: Any) -> Registration:
        self.registered.append(f"device {kwargs['name']}")
        return Registration(created=True, data={})

    async def register_sensor(self, gateway_id: str, sensor_id: str, **kwargs: Any) -> Registration:
        self.registered.append(f"sensor {kwargs['name']}")
        return Registration(created=True, data={})

    async def gateway(self, gateway_id: str) -> dict[str, Any]:
        return {"id": gateway_id}


async def test_registration_never_uses_an_id_that_is_not_saved(tmp_path: Path) -> None:
    inventory = parse_inventory(VALID, env={})
    registry = Registry(tmp_path)
    registry.add_ids([("Room 1", "Temperature")])
    client = FakeThingPlus()
    with pytest.raises(StorageError, match="gateway's id is not saved yet"):
        await register(cast(Any, client), registry, inventory)
    assert client.registered == []

    registry.ensure_ids([])  # the gateway's and the first sensor's ids saved
    registry.add_ids([("Cellar", "Level")])  # a sensor added while the disk is full
    sensors = [("Room 1", "Temperature", "temperature"), ("Cellar", "Level", "humidity")]
    await register(cast(Any, client), registry, inventory, sensors=sensors)
    assert client.registered == ["gateway Edge Box 1", "device Room 1", "sensor Temperature"]
    assert registry.sensor_registered("Room 1", "Temperature")
    assert not registry.sensor_registered("Cellar", "Level") and not registry.device_registered("Cellar")
