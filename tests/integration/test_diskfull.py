"""A real daemon whose state directory is on a small tmpfs that a filler file fills up (issue 14, item 1).

The daemon must keep running, keep sampling into its bounded memory buffer (drops past it counted with
their reason), keep uploading and acknowledging (the disk drains), say it is unhealthy and why, and
recover by itself once the filler is removed. At the end every sampled point is accounted for:
delivered once, or counted as dropped, or still pending on disk. A sensor whose new id cannot be saved
(a first start, a reload adding it) waits, and starts by itself once it is saved; registration marks
that cannot be saved wait too, and the daemon reports on.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog

from gatewayd.outbox.diskreserve import RESERVE_BYTES
from gatewayd.runtime import registrysaver
from gatewayd.runtime.registry import Registry
from gatewayd.runtime.service import Daemon, Hooks
from gatewayd.runtime.snapshots import summary_line
from tests.conftest import SmallDisk, logs_of
from tests.helpers.waiting import until

from .conftest import (
    SENSORS,
    THREE_SENSORS,
    Env,
    delivered,
    describe,
    emulator_env,
    get,
    healthz,
    running,
    scrape,
    times_of,
    until_health,
    with_http,
)

#: Samples kept in memory while the disk is full: about 2 s of FAST.
MEMORY = "outbox: {memory_points: 100}\n"
#: SENSORS with Humidity read every 20 ms: 55 points a second fill the room left in the database's pages
#: within a second or two once the disk is full.
FAST = SENSORS.replace("interval: 100ms", "interval: 20ms")
#: FAST and Cellar/Level, a sensor a reload adds.
FAST_AND_LEVEL = FAST + THREE_SENSORS[len(SENSORS) :]
#: SENSORS read every 10 s: one sample each at the start, then none for the length of a test.
SLOW = SENSORS.replace("interval: 200ms", "interval: 10s").replace("interval: 100ms", "interval: 10s")
#: What a sensor whose id cannot be saved for lack of room shows (/status, /healthz).
WAITING_FOR_ROOM = "waiting for disk space to save its id"


@pytest.fixture
async def disk_env(tmp_path: Path, small_disk: SmallDisk) -> AsyncIterator[Env]:
    """An emulator, and a state directory on the small disk."""
    async with emulator_env(tmp_path) as env:
        yield dataclasses.replace(env, state_dir=small_disk.path / "state")


def sensor_times(daemon: Daemon, env: Env) -> dict[str, list[int]]:
    assert daemon.sampler is not None
    return {s.sensor_id: times_of(env.tp, s.sensor_id) for s in daemon.sampler.sensors}


def assert_no_duplicates(daemon: Daemon, env: Env) -> None:
    for sensor_id, times in sensor_times(daemon, env).items():
        assert len(times) == len(set(times)), f"{sensor_id}: a point was delivered twice"


def dropped(daemon: Daemon) -> int:
    assert daemon.disk_guard is not None and daemon.outbox is not None
    return sum(daemon.disk_guard.dropped().values()) + daemon.outbox.stats.dropped


def corrupt_copies(env: Env) -> list[Path]:
    return list(env.state_dir.glob("*.corrupt-*"))


def assert_accounted_for(daemon: Daemon, env: Env, sampled: int) -> None:
    """Every point sampled (``sampled``, over all runs) delivered once, dropped with a reason, or pending."""
    assert daemon.outbox is not None
    assert_no_duplicates(daemon, env)
    assert delivered(env.tp) + dropped(daemon) + daemon.outbox.stats.pending == sampled


async def go_offline_and_fill(env: Env, disk: SmallDisk, daemon: Daemon) -> None:
    """The uplink goes down and the disk fills up; returns once samples were dropped from memory (the
    pages the database had room in are full, and the memory bound is reached)."""
    assert daemon.buffer is not None
    buffer = daemon.buffer
    env.server.emulator.faults.set("thingplus", outage_s=math.inf)
    disk.fill()
    await until(
        lambda: buffer.dropped > 0,
        what="samples dropped from memory",
        explain=lambda: describe(daemon, env.tp),
    )


async def test_a_disk_that_fills_up_is_waited_out_and_every_point_accounted_for(
    disk_env: Env, small_disk: SmallDisk
) -> None:
    env = disk_env
    faults = env.server.emulator.faults
    inventory, base = with_http(env.inventory(extra=MEMORY, devices=FAST))
    with structlog.testing.capture_logs() as logs:
        async with running(inventory) as run:
            daemon = run.daemon
            assert daemon.outbox is not None and daemon.buffer is not None and daemon.disk_guard is not None
            outbox, buffer, guard = daemon.outbox, daemon.buffer, daemon.disk_guard
            await until(lambda: daemon.registered is not None and delivered(env.tp) > 0, what="first points")

            # The uplink goes down and the disk fills: samples wait in memory, the oldest past 100 dropped.
            await go_offline_and_fill(env, small_disk, daemon)
            assert not run.task.done()
            assert not guard.writable and guard.episode.disk_full
            assert 0 < len(buffer) <= 100
            code, health = await healthz(base)
            assert code == 503
            assert health["reason"].startswith("outbox not writable (disk full): ")
            assert "points waiting in memory" in health["reason"] and " dropped" in health["reason"]
            metrics = await scrape(base)
            assert metrics.value("gatewayd_points_dropped_total", reason="memory_full") > 0
            assert metrics.value("gatewayd_points_dropped_total", reason="max_points") == 0
            assert metrics.value("gatewayd_outbox_writable") == 0
            status = json.loads((await get(f"{base}/status"))[1])["storage"]
            assert status["writable"] is False and status["disk_full"] is True
            assert status["memory_limit"] == 100 and status["dropped"]["memory_full"] > 0
            assert not outbox.reserve_held  # given up for the acks

            # The uplink returns, the disk stays full: the backlog on disk is uploaded and acknowledged.
            backlog, delivered_before = outbox.stats.pending, delivered(env.tp)
            assert backlog > 0
            faults.clear("thingplus")
            await until(
                lambda: delivered(env.tp) >= delivered_before + backlog,
                what="the backlog delivered while the disk is full",
            )
            assert small_disk.filler.exists() and small_disk.free_bytes() < 2 * RESERVE_BYTES
            assert not run.task.done()
            assert_no_duplicates(daemon, env)  # every ack was written: nothing came back

            # Room again: the reserve is taken back, memory committed and delivered, health is back.
            small_disk.unfill()
            await until(lambda: guard.writable and outbox.reserve_held, what="the outbox writable again")
            await until_health(base, 200)
            metrics = await scrape(base)
            assert metrics.value("gatewayd_outbox_writable") == 1
            sampled_by_now = daemon.sampler.stats.sampled if daemon.sampler else 0
            await until(
                lambda: delivered(env.tp) + dropped(daemon) >= sampled_by_now,
                what="what was sampled before the recovery delivered",
            )
            await run.stop()

    events = [e["event"] for e in logs]
    assert "outbox.reserve_released" in events
    assert "outbox.not_writable" in events
    assert "outbox.writable_again" in events
    assert corrupt_copies(env) == []
    assert daemon.sampler is not None
    assert buffer.dropped > 0
    assert_accounted_for(daemon, env, daemon.sampler.stats.sampled)


async def test_a_daemon_started_on_a_full_disk_runs_and_delivers_the_old_backlog_once_there_is_room(
    disk_env: Env, small_disk: SmallDisk
) -> None:
    env = disk_env
    faults = env.server.emulator.faults
    # A first run leaves a backlog on disk (the uplink was down).
    async with running(env.inventory(extra=MEMORY, devices=FAST), grace_s=0.5) as first:
        await until(lambda: first.daemon.registered is not None, what="registration")
        faults.set("thingplus", outage_s=math.inf)
        await until(
            lambda: first.daemon.outbox is not None and first.daemon.outbox.stats.pending >= 20,
            what="a backlog on disk",
        )
        await first.stop()
    assert first.daemon.outbox is not None and first.daemon.sampler is not None
    backlog = first.daemon.outbox.stats.pending
    sampled_first = first.daemon.sampler.stats.sampled
    assert delivered(env.tp) + backlog == sampled_first
    faults.clear("thingplus")

    # The disk fills while the daemon is down, before it had any reserve: opening the outbox fails.
    (env.state_dir / "outbox.reserve").unlink()
    small_disk.fill()
    inventory, base = with_http(env.inventory(extra=MEMORY, devices=FAST))
    async with running(inventory) as run:
        daemon = run.daemon
        assert daemon.outbox is not None and daemon.disk_guard is not None and daemon.buffer is not None
        outbox, guard, buffer = daemon.outbox, daemon.disk_guard, daemon.buffer
        assert not outbox.is_open and not guard.writable and guard.episode.disk_full
        await until(lambda: buffer.dropped > 0, what="sampling into memory, past its bound")
        assert not run.task.done()  # no exit 1, no restart loop
        code, health = await healthz(base)
        assert code == 503 and health["reason"].startswith("outbox not writable (disk full)")
        assert corrupt_copies(env) == []  # a full disk is not a corrupt database

        small_disk.unfill()
        await until(lambda: outbox.is_open and guard.writable, what="the outbox opened once there is room")
        assert outbox.stats.recovered_corrupt == 0
        await until(lambda: delivered(env.tp) >= sampled_first, what="the first run's backlog delivered")
        await until_health(base, 200)
        await run.stop()

    assert corrupt_copies(env) == []
    assert daemon.sampler is not None
    assert_accounted_for(daemon, env, sampled_first + daemon.sampler.stats.sampled)


async def test_a_stop_on_a_full_disk_drops_what_waits_in_memory_with_a_count(
    disk_env: Env, small_disk: SmallDisk
) -> None:
    env = disk_env
    with structlog.testing.capture_logs() as logs:
        async with running(env.inventory(extra=MEMORY, devices=FAST), grace_s=0.5) as run:
            daemon = run.daemon
            assert daemon.buffer is not None
            buffer = daemon.buffer
            await until(lambda: daemon.registered is not None, what="registration")
            await go_offline_and_fill(env, small_disk, daemon)
            await run.stop()  # returns: the daemon ends as on any stop (exit 0)

    [stop_drop] = [e for e in logs if e["event"] == "outbox.memory_dropped_at_stop"]
    assert stop_drop["dropped"] > 0 and stop_drop["dropped_before"] >= buffer.dropped > 0
    assert daemon.disk_guard is not None and daemon.sampler is not None
    assert daemon.disk_guard.dropped()["shutdown"] == stop_drop["dropped"]
    assert len(buffer) == 0
    assert_accounted_for(daemon, env, daemon.sampler.stats.sampled)


async def test_a_first_start_on_a_full_disk_runs_and_starts_its_sensors_once_their_ids_are_saved(
    disk_env: Env, small_disk: SmallDisk
) -> None:
    """No state yet, and no room for it: the daemon runs (no exit 1, no restart loop), samples nothing it
    could not key durably, registers nothing under an id it could forget, and recovers by itself."""
    env = disk_env
    small_disk.fill()
    statuses: list[str] = []
    inventory, base = with_http(env.inventory(extra=MEMORY))
    with logs_of(registrysaver) as logs:
        async with running(inventory, hooks=Hooks(on_status=statuses.append)) as run:
            daemon = run.daemon
            assert daemon.sampler is not None and daemon.registry_saver is not None
            sampler, saver = daemon.sampler, daemon.registry_saver
            assert [w.key for w in saver.waiting] == ["Room/Temperature", "Room/Humidity"]
            assert sampler.sensors == [] and saver.episode.disk_full
            await until(lambda: saver.episode.failures >= 2, what="the save tried again")
            assert not run.task.done()
            assert daemon.registered is None and env.tp.gateways == {} and sampler.stats.sampled == 0
            assert not (env.state_dir / "registry.json").exists()
            status = json.loads((await get(f"{base}/status"))[1])
            assert [(s["name"], s["status"], s["reason"], s["id"]) for s in status["sensors"]] == [
                ("Temperature", "waiting", WAITING_FOR_ROOM, None),
                ("Humidity", "waiting", WAITING_FOR_ROOM, None),
            ]
            assert status["registry"]["disk_full"] is True and status["registry"]["saved"] is False
            code, health = await healthz(base)
            assert code == 503
            assert health["waiting_sensors"] == {
                "Room/Temperature": WAITING_FOR_ROOM,
                "Room/Humidity": WAITING_FOR_ROOM,
            }
            assert any("; 2 sensors waiting for disk space to save their ids" in s for s in statuses)

            small_disk.unfill()
            await until(
                lambda: len(sampler.sensors) == 2, what="the sensors started once their ids were saved"
            )
            assert set(Registry(env.state_dir).sensor_names()) == {s.sensor_id for s in sampler.sensors}
            await until(lambda: daemon.registered is not None, what="registration")
            assert daemon.registered is not None and set(env.tp.gateways) == {daemon.registered.gateway_id}
            await until(
                lambda: all(times_of(env.tp, s.sensor_id) for s in sampler.sensors),
                what="points of each sensor delivered",
                explain=lambda: describe(daemon, env.tp),
            )
            await until_health(base, 200)
            await run.stop()

    [waiting] = [e for e in logs if e["event"] == "registry.sensors_waiting"]
    assert waiting["sensors"] == ["Room/Temperature", "Room/Humidity"] and waiting["disk_full"] is True
    [started] = [e for e in logs if e["event"] == "registry.sensors_started"]
    assert started["sensors"] == ["Room/Humidity", "Room/Temperature"]
    assert corrupt_copies(env) == []
    assert_accounted_for(daemon, env, sampler.stats.sampled)


async def test_a_reload_adding_a_sensor_on_a_full_disk_starts_it_once_its_id_is_saved(
    disk_env: Env, small_disk: SmallDisk
) -> None:
    """SIGHUP with a sensor added while the disk is full, and the reserve already given up for acks: the
    daemon and the other sensors run on; the new one starts, is registered and delivers once its id is
    saved."""
    env = disk_env
    faults = env.server.emulator.faults
    path = env.write_inventory(extra=MEMORY, devices=FAST)
    async with running(env.load(path), inventory_path=path) as run:
        daemon = run.daemon
        assert daemon.sampler is not None and daemon.registry_saver is not None
        sampler, saver = daemon.sampler, daemon.registry_saver
        await until(lambda: daemon.registered is not None, what="registration")
        await go_offline_and_fill(env, small_disk, daemon)
        assert daemon.outbox is not None and not daemon.outbox.reserve_held
        small_disk.fill()  # and the room the reserve left, as a runaway log would

        env.write_inventory(extra=MEMORY, devices=FAST_AND_LEVEL)
        daemon.reload()
        await until(lambda: saver.waiting != [], what="the added sensor waiting for its id")
        assert [w.key for w in saver.waiting] == ["Cellar/Level"] and saver.episode.disk_full
        assert [s.key for s in sampler.sensors] == ["Room/Temperature", "Room/Humidity"]
        assert "Cellar/Level" not in Registry(env.state_dir).sensor_names().values()
        sampled = sampler.stats.sampled
        await until(lambda: saver.episode.failures >= 2, what="the save tried again")
        # the others sample on (waited for: the retry may already have happened when ``sampled`` was read)
        await until(lambda: sampler.stats.sampled > sampled, what="the other sensors sampling on")
        assert not run.task.done()
        assert summary_line(daemon.snapshot()).endswith("; 1 sensor waiting for disk space to save its id")

        small_disk.unfill()
        faults.clear("thingplus")
        await until(lambda: len(sampler.sensors) == 3, what="the added sensor started")
        [level] = [s for s in sampler.sensors if s.key == "Cellar/Level"]
        assert Registry(env.state_dir).sensor_names()[level.sensor_id] == "Cellar/Level"
        await until(
            lambda: level.sensor_id in env.tp.sensors and times_of(env.tp, level.sensor_id),
            what="the added sensor registered and its points delivered",
            explain=lambda: describe(daemon, env.tp),
        )
        assert saver.problem() is None
        await run.stop()

    assert_accounted_for(daemon, env, sampler.stats.sampled)


async def test_registration_marks_that_cannot_be_saved_do_not_stop_the_daemon(
    disk_env: Env, small_disk: SmallDisk
) -> None:
    """Registration ends on a full disk: its marks are not saved (logged once), the daemon reports on
    (a lost mark only costs a 409 at the next registration) and saves them once there is room."""
    env = disk_env
    faults = env.server.emulator.faults
    faults.set("thingplus", outage_s=math.inf)  # registration waits for the uplink
    with logs_of(registrysaver) as logs:
        async with running(env.inventory(extra=MEMORY, devices=SLOW)) as run:
            daemon = run.daemon
            assert daemon.sampler is not None and daemon.registry_saver is not None
            saver = daemon.registry_saver
            assert daemon.registry.gateway_saved() and saver.waiting == []  # there was room at the start
            small_disk.fill()
            faults.clear("thingplus")
            await until(lambda: daemon.registered is not None, what="registration on a full disk")
            assert saver.episode.failures >= 1 and saver.episode.disk_full
            assert not Registry(env.state_dir).gateway_registered()  # the marks are in memory only
            await until(lambda: delivered(env.tp) >= 2, what="the first samples delivered")
            assert not run.task.done() and saver.problem() is None  # no sensor waits for marks

            small_disk.unfill()
            await until(
                lambda: Registry(env.state_dir).gateway_registered(),
                what="the marks saved once there is room",
            )
            on_disk = Registry(env.state_dir)
            assert all(on_disk.sensor_registered(s.device, s.name) for s in daemon.sampler.sensors)
            await run.stop()

    warnings = [e for e in logs if e["event"] == "registry.marks_not_saved"]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning"
    assert any(e["event"] == "registry.saved_again" for e in logs)
    assert_accounted_for(daemon, env, daemon.sampler.stats.sampled)
