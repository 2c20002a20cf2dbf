"""The real daemon against the emulator: registration, heartbeats, delivery, outages, reload, polling.

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
from gatewayd.emulator.thingplus import ThingPlusEmulator
from gatewayd.errors import ConfigError, StorageError
from gatewayd.inventory.config import load_inventory
from gatewayd.outbox import Outbox
from gatewayd.outbox.sqlitestore import SqliteStore
from gatewayd.runtime.service import REPORT_INTERVAL_REFRESH_EVERY, Daemon, Hooks
from tests.conftest import pairwise

from .conftest import (
    SENSORS,
    THREE_SENSORS,
    Env,
    delivered,
    describe,
    emulator_env,
    free_port,
    make_inventory,
    points_of,
    running,
    times_of,
    until,
)

REGISTER_KINDS = ("register_gateway", "register_device", "register_sensor")


#: SENSORS without Humidity.
ONE_SENSOR = """\
- name: Room
  sensors:
    - name: Temperature
      type: temperature
      interval: 200ms
      simulate: {pattern: sine, min: 18, max: 26, period: 1m, seed: 1}
"""


def now_ms() -> int:
    return int(time.time() * 1000)


def sensor_ids(daemon: Daemon) -> dict[str, str]:
    """'device/sensor' -> Thing+ sensor id, for the sensors the daemon samples now."""
    assert daemon.sampler is not None
    return {s.key: s.sensor_id for s in daemon.sampler.sensors}


def every_sensor_has_points_after(tp: ThingPlusEmulator, daemon: Daemon, after_ms: int) -> bool:
    return all(any(t > after_ms for t in times_of(tp, sid)) for sid in sensor_ids(daemon).values())


def assert_delivered_exactly_once(daemon: Daemon, tp: ThingPlusEmulator) -> None:
    """After a stop: nothing pending, and per sensor every read arrived once, in time order."""
    assert daemon.outbox is not None and daemon.sampler is not None
    assert daemon.outbox.stats.pending == 0
    assert daemon.sampler.stats.sampled > 0
    for sensor in daemon.sampler.sensors:
        times = times_of(tp, sensor.sensor_id)
        assert len(times) == len(set(times)), f"{sensor.key}: duplicate points"
        assert times == sorted(times), f"{sensor.key}: not received oldest first"
        assert len(times) == sensor.reads, f"{sensor.key}: sampled {sensor.reads}, received {len(times)}"
    assert delivered(tp) == daemon.sampler.stats.sampled


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
        assert took < daemon.grace_s
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


# ------------------------------------------------------------------------------------------------ 7


async def test_reload_adds_refuses_and_removes_sensors(env: Env) -> None:
    path = env.write_inventory()
    settled: list[int] = []  # the daemon process freezes its long-lived heap at each (gatewayd.runtime.heap)

    def on_settled() -> None:
        assert daemon.sampler is not None
        closing = [t for t in daemon._tasks if t.get_name().startswith("close ") and not t.done()]
        assert not closing, "settled while sources let go of were still closing"
        settled.append(len(daemon.sampler.sensors))

    hooks = Hooks(on_settled=on_settled)
    async with running(load_inventory(path), inventory_path=path, hooks=hooks) as run:
        daemon = run.daemon
        await until(lambda: daemon.registered is not None and delivered(env.tp) > 0, what="first points")
        await until(lambda: settled == [2], what="settled after registration")
        old = sensor_ids(daemon)
        old_runtimes = {s.key: s for s in daemon.sampler.sensors} if daemon.sampler else {}

        async def reload_and_wait() -> None:
            daemon.reload()
            # _reload runs without awaiting once the request is taken: cleared means done.
            await until(lambda: not daemon._reload_requested.is_set(), what="the reload to be handled")

        # Add a sensor: it is registered, its points arrive, the old ones keep flowing (same runtimes).
        env.write_inventory(devices=THREE_SENSORS)
        added_ms = now_ms()
        await reload_and_wait()
        await until(lambda: len(env.tp.sensors) == 3, what="the new sensor registered")
        new = sensor_ids(daemon)
        assert {k: new[k] for k in old} == old
        (new_key,) = set(new) - set(old)
        assert new_key == "Cellar/Level"
        await until(lambda: every_sensor_has_points_after(env.tp, daemon, added_ms), what="all three flowing")
        assert all(s is old_runtimes[s.key] for s in daemon.sampler.sensors if s.key in old_runtimes)
        assert env.tp.requests["register_gateway"] == 1
        assert env.tp.requests["register_sensor"] == 3
        await until(lambda: env.tp.sensor_statuses.get(new[new_key]), what="statuses of the new sensor")
        # Registered and running: the daemon keeps no sensor configs, only their fingerprints.
        await until(lambda: daemon.inventory.devices == [], what="the sensor configs let go")
        await until(lambda: settled == [2, 3], what="settled after the added sensor registered")

        # Change one sensor's source: only its runtime is rebuilt (config fingerprints differ).
        env.write_inventory(devices=THREE_SENSORS.replace("max: 100, seed: 3", "max: 50, seed: 3"))
        kept_runtimes = {s.key: s for s in daemon.sampler.sensors}
        await reload_and_wait()
        rebuilt = [s.key for s in daemon.sampler.sensors if s is not kept_runtimes[s.key]]
        assert rebuilt == ["Cellar/Level"]
        assert sensor_ids(daemon) == new
        await until(lambda: settled == [2, 3, 3], what="settled after the changed sensor")

        # An invalid inventory (bad YAML, then a type the gateway model lacks) is refused.
        good = daemon.inventory
        for bad in ("gateway: [unclosed\n", None):
            if bad is None:
                env.write_inventory(devices=THREE_SENSORS.replace("type: percent", "type: warp_drive"))
            else:
                path.write_text(bad, encoding="utf-8")
            await reload_and_wait()
            assert daemon.inventory is good
            assert sensor_ids(daemon) == new
        refused_ms = now_ms()
        await until(lambda: every_sensor_has_points_after(env.tp, daemon, refused_ms), what="still flowing")

        # Remove a sensor: no more reads, points or statuses for it; its backlog still goes out.
        env.write_inventory(devices=ONE_SENSOR)
        await reload_and_wait()
        assert set(sensor_ids(daemon)) == {"Room/Temperature"}
        # the refused reloads changed nothing; the removed sources were closed before (see Daemon._settle)
        await until(lambda: settled == [2, 3, 3, 1], what="settled after the removal")
        gone = [new["Room/Humidity"], new["Cellar/Level"]]
        assert daemon.registered is not None
        statuses = env.tp.gateway_statuses[daemon.registered.gateway_id]
        # Past a few heartbeats, reads and heartbeats begun before the reload are over, and what the
        # removed sensors read last is in the outbox; it still goes out (they stay registered).
        heartbeats = len(statuses)
        await until(lambda: len(statuses) >= heartbeats + 3, what="heartbeats after the removal")
        await until(
            lambda: (
                daemon.outbox is not None
                and all(daemon.outbox.stats.pending_by_sensor.get(sid, 0) == 0 for sid in gone)
            ),
            what="the removed sensors' backlog sent",
        )
        points_then = {sid: len(points_of(env.tp, sid)) for sid in gone}
        statuses_then = {sid: len(env.tp.sensor_statuses.get(sid, [])) for sid in gone}
        kept = new["Room/Temperature"]
        kept_then = len(points_of(env.tp, kept))
        heartbeats = len(statuses)
        await until(lambda: len(statuses) >= heartbeats + 3, what="three more heartbeats")
        await until(lambda: len(points_of(env.tp, kept)) > kept_then, what="the kept sensor still flowing")
        assert {sid: len(points_of(env.tp, sid)) for sid in gone} == points_then
        assert {sid: len(env.tp.sensor_statuses.get(sid, [])) for sid in gone} == statuses_then
        await run.stop()

    assert daemon.outbox is not None and daemon.outbox.stats.pending == 0
    for sid in new.values():
        times = times_of(env.tp, sid)
        assert times and len(times) == len(set(times)) and times == sorted(times)
    assert daemon.sampler is not None
    assert delivered(env.tp) == daemon.sampler.stats.sampled


# ------------------------------------------------------------------------------------------------ 8


async def test_a_failing_source_is_reported_err_and_the_others_keep_delivering(env: Env) -> None:
    devices = (
        SENSORS
        + """\
- name: Broken
  sensors:
    - name: Dead probe
      type: temperature
      interval: 100ms
      simulate: {pattern: constant, value: 1, dropout: 1.0}
"""
    )
    async with running(env.inventory(devices=devices)) as run:
        daemon = run.daemon
        await until(lambda: daemon.registered is not None, what="registration")
        ids = sensor_ids(daemon)
        dead = ids["Broken/Dead probe"]
        healthy = [sid for key, sid in ids.items() if key != "Broken/Dead probe"]

        def latest_status(sid: str) -> str | None:
            records = env.tp.sensor_statuses.get(sid)
            return records[-1].value if records else None

        await until(
            lambda: latest_status(dead) == "err" and all(latest_status(s) == "on" for s in healthy),
            what="'err' for the failing sensor, 'on' for the others",
        )
        marked_ms = now_ms()
        await until(
            lambda: all(any(t > marked_ms for t in times_of(env.tp, s)) for s in healthy),
            what="the healthy sensors still delivering",
        )
        runtime = next(s for s in daemon.sampler.sensors if s.sensor_id == dead) if daemon.sampler else None
        assert runtime is not None and runtime.ok is False and runtime.status == "err"
        assert runtime.reads == 0 and runtime.failures > 0
        assert runtime.last_error == "simulated dropout"
        await run.stop()
    assert dead in env.tp.sensors
    assert not env.tp.points.get(dead)
    values = [r.value for r in env.tp.sensor_statuses[dead]]
    assert set(values[values.index("err") :]) == {"err"}  # 'on' only before its first read, if ever
    assert_delivered_exactly_once(daemon, env.tp)


# ------------------------------------------------------------------------------------------------ 9


def polled_sections(auth: str, *, rcms_interval: str = "60s") -> str:
    # RCMS keeps one record a minute, so the first poll (one interval back) must span a minute boundary.
    return f"""\
rcms:
  endpoint: @endpoint@
  client_id: it-rcms
  client_secret: it-rcms-secret
  poll_interval: {rcms_interval}
  devices: [IT-SN-0001]
loctube:
  endpoint: @endpoint@
  client_id: it-loctube
  secure_key: it-loctube-key
  sign: sha256
  auth: {auth}
  poll_interval: 300ms
  devices: [test001]
"""


@pytest.mark.parametrize("auth", ["signature", "token", "oauth2"])
async def test_polling_fills_the_latest_state(tmp_path: Path, auth: str) -> None:
    async with emulator_env(tmp_path, extra=polled_sections(auth)) as env, running(env.inventory()) as run:
        daemon = run.daemon
        polls = daemon.poll_stats.polls
        await until(
            lambda: polls.get(("loctube", "ok"), 0) >= 3 and polls.get(("rcms", "ok"), 0) >= 1,
            what="successful polls",
        )
        assert polls.get(("loctube", "error"), 0) == 0 and polls.get(("rcms", "error"), 0) == 0
        loctube = daemon.latest.get("loctube", "test001")
        assert loctube is not None
        at, detail = loctube
        assert abs(at - time.time()) < 5 and detail["id"] == "test001"
        rcms = daemon.latest.get("rcms", "IT-SN-0001")
        assert rcms is not None and "cellular" in rcms[1]["data"]
        assert (env.state_dir / "rcms-poll.json").exists()
        lt = env.server.emulator.loctube
        assert lt is not None
        assert lt.snapshot()["auth"].get(auth, 0) >= 3
        assert not lt.snapshot()["rejections"]
        await run.stop()
    assert_delivered_exactly_once(daemon, env.tp)


async def test_a_failing_poll_never_affects_thingplus_uploads(tmp_path: Path) -> None:
    extra = polled_sections("signature", rcms_interval="300ms")
    async with emulator_env(tmp_path, extra=extra) as env:
        env.server.emulator.faults.set("rcms", outage_s=math.inf)
        async with running(env.inventory()) as run:
            daemon = run.daemon
            polls = daemon.poll_stats.polls
            await until(lambda: daemon.registered is not None, what="registration")
            registered_ms = now_ms()
            await until(
                lambda: (
                    polls.get(("rcms", "error"), 0) >= 1
                    and every_sensor_has_points_after(env.tp, daemon, registered_ms + 1000)
                    and polls.get(("loctube", "ok"), 0) >= 3
                ),
                what="failed RCMS polls while Thing+ and loctube carry on",
            )
            assert polls.get(("rcms", "ok"), 0) == 0
            assert daemon.latest.get("rcms", "IT-SN-0001") is None
            assert daemon.latest.get("loctube", "test001") is not None
            assert daemon.uploader is not None and not daemon.uploader.stats.errors
            await run.stop()
        assert_delivered_exactly_once(daemon, env.tp)


# ------------------------------------------------------------------------------------------------ 11


async def test_a_sensor_type_the_gateway_model_lacks_is_a_config_error(env: Env) -> None:
    devices = SENSORS.replace("type: humidity", "type: warp_drive")
    daemon = Daemon(env.inventory(devices=devices), grace_s=2.0)
    with pytest.raises(ConfigError) as caught:
        await daemon.run()
    message = "\n".join(str(p) for p in caught.value.problems)
    assert "Room/Humidity" in message and "warp_drive" in message
    assert "devices[0].sensors[1].type" in message
    assert env.tp.requests["register_gateway"] == 0  # refused before anything was registered


async def test_reload_while_the_first_registration_is_in_flight_registers_the_added_sensor(env: Env) -> None:
    path = env.write_inventory()
    faults = env.server.emulator.faults
    faults.set("thingplus", latency_s=0.3)  # every call slow: registration takes a few seconds
    async with running(load_inventory(path), inventory_path=path) as run:
        daemon = run.daemon
        await until(lambda: env.tp.requests["token"] >= 1, what="registration under way")
        assert daemon.registered is None
        env.write_inventory(devices=THREE_SENSORS)
        daemon.reload()
        # the request flag clears before the new inventory is parsed and applied: wait for the effect
        await until(lambda: "Cellar/Level" in sensor_ids(daemon), what="the reload applied")
        assert set(sensor_ids(daemon)) == {"Room/Temperature", "Room/Humidity", "Cellar/Level"}
        faults.clear("thingplus")
        await until(lambda: daemon.registered is not None, what="registration")
        added = sensor_ids(daemon)["Cellar/Level"]
        await until(lambda: added in env.tp.sensors, what="the added sensor registered")
        await until(lambda: points_of(env.tp, added), what="the added sensor's points")
        await run.stop()
    assert_delivered_exactly_once(daemon, env.tp)


async def test_reload_before_registration_with_a_type_the_model_lacks_is_refused_later(env: Env) -> None:
    """Before the first registration the model is unknown, so a bad type passes the reload; once the cloud
    answers it is refused like any invalid reload: the daemon reverts and keeps running, not exit 2."""
    path = env.write_inventory()
    faults = env.server.emulator.faults
    faults.set("thingplus", outage_s=math.inf)
    async with running(load_inventory(path), inventory_path=path) as run:
        daemon = run.daemon
        await until(lambda: daemon.sampler is not None and daemon.sampler.stats.sampled > 0, what="sampling")
        env.write_inventory(devices=THREE_SENSORS.replace("type: percent", "type: warp_drive"))
        daemon.reload()
        # accepted for now: nothing to check it against (waited for: the request flag clears before it applies)
        await until(lambda: "Cellar/Level" in sensor_ids(daemon), what="the reload applied")
        faults.clear("thingplus")
        await until(lambda: daemon.registered is not None, what="registration with the old inventory")
        assert set(sensor_ids(daemon)) == {"Room/Temperature", "Room/Humidity"}
        assert daemon.fatal is None
        await until(lambda: len(env.tp.sensors) == 2 and delivered(env.tp) > 0, what="old sensors flowing")
        await run.stop()
    assert daemon.fatal is None
