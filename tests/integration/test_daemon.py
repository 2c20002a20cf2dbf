"""The real daemon against the emulator: registration, heartbeats, delivery, outages, stop.

Reloads, failing sources and polling: test_daemon_reload.py.

Real HTTP on 127.0.0.1, real SQLite in ``tmp_path``, real APScheduler; sensors sample every 100-200 ms
and the emulated Thing+ hands out a reportInterval of 500 ms unless a test says otherwise (uploads go out
at each heartbeat). Conditions are awaited with a deadline (:func:`until`), never with a fixed sleep.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from gatewayd.emulator import EmulatorServer
from gatewayd.errors import StorageError
from gatewayd.outbox import Outbox
from gatewayd.outbox.sqlitestore import SqliteStore
from gatewayd.runtime.schedule import REPORT_INTERVAL_REFRESH_EVERY
from tests.conftest import pairwise
from tests.helpers.ports import free_port
from tests.helpers.waiting import until

from .conftest import (
    Env,
    assert_delivered_exactly_once,
    delivered,
    describe,
    emulator_env,
    every_sensor_has_points_after,
    make_inventory,
    now_ms,
    points_of,
    running,
    sensor_ids,
    times_of,
)

REGISTER_KINDS = ("register_gateway", "register_device", "register_sensor")


# ------------------------------------------------------------------------------------------------ 1


async def test_registers_once_and_not_again_after_a_restart(env: Env) -> None:
    async with running(env.inventory()) as run:
        await until(lambda: run.daemon.registered is not None and delivered(env.tp) > 0, what="first points")
        first = run.daemon.registered
        first_ids = sensor_ids(run.daemon)
        await run.stop()
    assert first is not None and first.created == 4  # gateway, device, two sensors
    requests = {kind: env.tp.requests[kind] for kind in REGISTER_KINDS}
    assert requests == {"register_gateway": 1, "register_device": 1, "register_sensor": 2}

    record = json.loads((env.state_dir / "registry.json").read_text())
    assert record["gateway"] == {"id": first.gateway_id, "registered": True}
    assert {k: v["id"] for k, v in record["sensors"].items()} == first_ids
    assert all(v["registered"] for v in record["sensors"].values())
    assert_delivered_exactly_once(run.daemon, env.tp)
    before_restart = {sid: set(times_of(env.tp, sid)) for sid in first_ids.values()}

    restarted_ms = now_ms()
    async with running(env.inventory()) as run2:
        await until(
            lambda: (
                run2.daemon.registered is not None
                and every_sensor_has_points_after(env.tp, run2.daemon, restarted_ms)
            ),
            what="points after the restart",
        )
        second = run2.daemon.registered
        await run2.stop()
    assert second is not None
    assert second.gateway_id == first.gateway_id
    assert second.created == 0
    assert sensor_ids(run2.daemon) == first_ids
    assert {kind: env.tp.requests[kind] for kind in REGISTER_KINDS} == requests
    assert list(env.tp.gateways) == [first.gateway_id]
    assert len(env.tp.devices) == 1
    assert set(env.tp.sensors) == set(first_ids.values())
    # The second run delivered its own samples once each, and nothing of the first run again.
    assert run2.daemon.outbox is not None and run2.daemon.outbox.stats.pending == 0
    assert run2.daemon.sampler is not None
    for sensor in run2.daemon.sampler.sensors:
        times = times_of(env.tp, sensor.sensor_id)
        assert len(times) == len(set(times))
        assert len(times) == len(before_restart[sensor.sensor_id]) + sensor.reads


# ------------------------------------------------------------------------------------------------ 2


async def test_heartbeat_bodies_period_and_a_report_interval_change(tmp_path: Path) -> None:
    async with emulator_env(tmp_path, report_interval_ms=1000) as env, running(env.inventory()) as run:
        daemon = run.daemon
        await until(lambda: daemon.registered is not None, what="registration")
        assert daemon.registered is not None
        gateway_id = daemon.registered.gateway_id
        statuses = env.tp.gateway_statuses.setdefault(gateway_id, [])
        before_refresh = REPORT_INTERVAL_REFRESH_EVERY - 1
        await until(lambda: len(statuses) >= before_refresh, what=f"{before_refresh} gateway heartbeats")

        # reportInterval 1000 ms: validDuration 1.5 s, rounded up to whole seconds
        assert daemon.report_interval_ms == 1000
        first = statuses[:before_refresh]
        assert all(s.value == "on" and s.valid_duration == 2 for s in first)
        for key, sid in sensor_ids(daemon).items():
            records = env.tp.sensor_statuses.get(sid, [])
            assert len(records) >= before_refresh - 1, key
            assert all(r.value == "on" and r.valid_duration == 2 for r in records), key
        gaps = [b.received - a.received for a, b in pairwise(first)]
        assert 700 <= statistics.median(gaps) <= 1600, gaps

        # The portal changes reportInterval: picked up at the next refresh (every N heartbeats), no restart.
        env.tp.set_report_interval(500)
        await until(
            lambda: any(s.valid_duration == 1 for s in statuses),
            timeout=(REPORT_INTERVAL_REFRESH_EVERY + 3) * 1.0,
            what="a heartbeat with validDuration 1",
        )
        changed = next(i for i, s in enumerate(statuses) if s.valid_duration == 1)
        await until(lambda: len(statuses) >= changed + 5, what="five heartbeats at the new interval")
        later = statuses[changed : changed + 5]
        assert all(s.value == "on" and s.valid_duration == 1 for s in later)
        gaps = [b.received - a.received for a, b in pairwise(later)]
        assert 300 <= statistics.median(gaps) <= 850, gaps
        assert daemon.report_interval_ms == 500
        for sid in sensor_ids(daemon).values():
            assert env.tp.sensor_statuses[sid][-1].valid_duration == 1
        await run.stop()
    assert env.tp.requests["get_gateway"] >= 2  # at registration, and at least one refresh


# ------------------------------------------------------------------------------------------------ 3


async def test_every_sample_is_delivered_exactly_once(env: Env) -> None:
    async with running(env.inventory()) as run:
        daemon = run.daemon
        await until(
            lambda: (
                daemon.uploader is not None and daemon.uploader.stats.batches >= 4 and delivered(env.tp) >= 30
            ),
            what="a few upload cycles",
            explain=lambda: describe(daemon, env.tp),
        )
        await run.stop()
    assert daemon.uploader is not None and daemon.sampler is not None
    assert daemon.uploader.stats.uploaded == daemon.sampler.stats.sampled
    assert_delivered_exactly_once(daemon, env.tp)
    assert not env.tp.rejections


async def test_an_outbox_failure_under_an_upload_cycle_is_retried_not_fatal(env: Env) -> None:
    async with running(env.inventory()) as run:
        daemon = run.daemon
        await until(
            lambda: daemon.registered is not None and daemon.uploader is not None, what="registration"
        )
        assert daemon.uploader is not None
        real_drain = daemon.uploader.drain
        calls = 0

        async def disk_full_once(**kw: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise StorageError("outbox ack failed: database or disk is full")
            return await real_drain(**kw)

        daemon.uploader.drain = disk_full_once  # type: ignore[method-assign]
        before = delivered(env.tp)
        await until(lambda: calls >= 2 and delivered(env.tp) > before, what="uploads after the failure")
        assert not run.task.done()
        await run.stop()
    assert_delivered_exactly_once(daemon, env.tp)


# ------------------------------------------------------------------------------------------------ 4


async def test_outage_then_recovery_loses_nothing(env: Env) -> None:
    faults = env.server.emulator.faults
    async with running(env.inventory()) as run:
        daemon = run.daemon
        assert daemon.sampler is not None and daemon.outbox is not None and daemon.uploader is not None
        await until(lambda: daemon.registered is not None and delivered(env.tp) > 0, what="first points")

        outage_ms = now_ms()
        faults.set("thingplus", outage_s=math.inf)
        sampled_then = daemon.sampler.stats.sampled
        await until(
            lambda: (
                daemon.uploader is not None
                and daemon.uploader.stats.status_errors > 0
                and sum(daemon.uploader.stats.errors.values()) > 0
                and daemon.sampler is not None
                and daemon.sampler.stats.sampled >= sampled_then + 20
                and daemon.outbox is not None
                and daemon.outbox.stats.pending >= 20
            ),
            what="failed uploads and a backlog during the outage",
        )
        backlog = daemon.outbox.stats.pending
        recovered_ms = now_ms()
        faults.clear("thingplus")
        await until(
            lambda: every_sensor_has_points_after(env.tp, daemon, recovered_ms),
            what="points sampled after the recovery",
            explain=lambda: describe(daemon, env.tp),
        )
        await run.stop()

    assert backlog >= 20
    assert faults.get("thingplus").injected["outage"] > 0
    assert_delivered_exactly_once(daemon, env.tp)
    for sid in sensor_ids(daemon).values():
        during = [p for p in points_of(env.tp, sid) if outage_ms < p.time <= recovered_ms]
        assert during, "the sensor was sampled during the outage"
        assert all(p.received >= recovered_ms for p in during), "a point arrived during the outage"


async def test_an_expired_token_is_renewed_and_nothing_is_lost(env: Env) -> None:
    async with running(env.inventory()) as run:
        daemon = run.daemon
        await until(lambda: daemon.registered is not None and delivered(env.tp) > 0, what="first points")
        assert env.tp.tokens_issued == 1
        env.server.emulator.expire_tokens("thingplus")
        expired_ms = now_ms()
        await until(
            lambda: env.tp.tokens_issued == 2 and every_sensor_has_points_after(env.tp, daemon, expired_ms),
            what="a new token and points after it",
        )
        await run.stop()
    assert_delivered_exactly_once(daemon, env.tp)


# ------------------------------------------------------------------------------------------------ 5


@pytest.mark.parametrize("how", ["closed_port", "outage"])
async def test_start_while_the_cloud_is_unreachable(tmp_path: Path, how: str) -> None:
    port = free_port() if how == "closed_port" else 0
    spec = make_inventory("http://127.0.0.1:9", tmp_path / "state")
    server = EmulatorServer(spec, port=port, report_interval_ms=1000)
    if how == "outage":
        await server.start()
        server.emulator.faults.set("thingplus", outage_s=math.inf)
        endpoint = server.url
    else:
        endpoint = f"http://127.0.0.1:{port}"
    try:
        inventory = make_inventory(endpoint, tmp_path / "state")
        async with running(inventory) as run:
            daemon = run.daemon
            assert daemon.sampler is not None and daemon.outbox is not None
            await until(
                lambda: daemon.outbox is not None and daemon.outbox.stats.pending >= 20,
                what="samples kept in the outbox while the cloud is away",
            )
            assert daemon.registered is None
            tp = server.emulator.thingplus
            assert not tp.gateways and not tp.points

            appeared_ms = now_ms()
            if how == "outage":
                server.emulator.faults.clear("thingplus")
            else:
                await server.start()
            await until(
                lambda: (
                    daemon.registered is not None and every_sensor_has_points_after(tp, daemon, appeared_ms)
                ),
                what="registration and the backlog after the cloud appeared",
                explain=lambda: describe(daemon, tp),
            )
            await run.stop()
        assert len(tp.gateways) == 1 and len(tp.sensors) == 2
        assert_delivered_exactly_once(daemon, tp)
        for sid in sensor_ids(daemon).values():
            early = [p for p in points_of(tp, sid) if p.time < appeared_ms]
            assert early, "samples taken before the cloud appeared were delivered"
            assert all(p.received >= appeared_ms for p in early)
    finally:
        await server.stop()


# ------------------------------------------------------------------------------------------------ 6


async def test_stop_sends_pending_points_within_the_grace_period(tmp_path: Path) -> None:
    # reportInterval 60 s: after the first heartbeat nothing is uploaded until the stop's flush.
    async with emulator_env(tmp_path, report_interval_ms=60_000) as env, running(env.inventory()) as run:
        daemon = run.daemon
        assert daemon.outbox is not None
        await until(lambda: daemon.registered is not None, what="registration")
        assert daemon.registered is not None
        gateway_id = daemon.registered.gateway_id
        await until(lambda: env.tp.gateway_statuses.get(gateway_id), what="the first heartbeat")
        await until(lambda: daemon.outbox is not None and daemon.outbox.stats.pending >= 15, what="a backlog")
        before = delivered(env.tp)
        started = time.monotonic()
        await run.stop()
        took = time.monotonic() - started
        assert delivered(env.tp) > before
        assert took < daemon.supervisor.grace_s
        assert_delivered_exactly_once(daemon, env.tp)


async def test_stop_while_a_commit_is_in_flight_loses_nothing(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Slow disk: every commit of sampled points takes 300 ms in the outbox's thread, so the stop finds
    # the flusher in the middle of one. That commit must end before the final drain, not after it.
    put = SqliteStore.put

    def slow_put(self: SqliteStore, points: Any) -> int:
        time.sleep(0.3)
        return put(self, points)

    monkeypatch.setattr(SqliteStore, "put", slow_put)
    async with running(env.inventory()) as run:
        daemon = run.daemon
        await until(lambda: daemon.registered is not None and delivered(env.tp) > 0, what="first points")
        assert daemon.buffer is not None
        buffer = daemon.buffer
        await until(lambda: buffer._lock.locked(), what="a commit under way")
        await run.stop()
    assert_delivered_exactly_once(daemon, env.tp)


async def test_stop_during_an_outage_keeps_the_rest_on_disk_for_the_next_start(tmp_path: Path) -> None:
    async with emulator_env(tmp_path) as env:
        async with running(env.inventory(), grace_s=1.0) as run:
            daemon = run.daemon
            await until(lambda: daemon.registered is not None and delivered(env.tp) > 0, what="first points")
            env.server.emulator.faults.set("thingplus", outage_s=math.inf)
            await until(
                lambda: daemon.outbox is not None and daemon.outbox.stats.pending >= 10, what="a backlog"
            )
            started = time.monotonic()
            await run.stop()
            assert time.monotonic() - started < 10
        assert daemon.sampler is not None
        sampled_first = daemon.sampler.stats.sampled
        delivered_first = delivered(env.tp)

        outbox = await Outbox.open(env.state_dir / "outbox.db")
        try:
            on_disk = outbox.stats.pending
        finally:
            await outbox.close()
        assert on_disk > 0
        assert delivered_first + on_disk == sampled_first

        # Next start, cloud back: the backlog goes out first, once.
        env.server.emulator.faults.clear("thingplus")
        restarted_ms = now_ms()
        async with running(env.inventory()) as run2:
            await until(
                lambda: every_sensor_has_points_after(env.tp, run2.daemon, restarted_ms),
                what="points after the restart",
            )
            await run2.stop()
        assert run2.daemon.sampler is not None and run2.daemon.outbox is not None
        assert run2.daemon.outbox.stats.pending == 0
        assert delivered(env.tp) == sampled_first + run2.daemon.sampler.stats.sampled
        for sid in sensor_ids(run2.daemon).values():
            times = times_of(env.tp, sid)
            assert len(times) == len(set(times))
            assert times == sorted(times)
