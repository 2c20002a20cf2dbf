"""The real daemon against the emulator, continued: reloads, a failing source, polling, and reloads
before the first registration (the rest: test_daemon.py).

Real HTTP on 127.0.0.1, real SQLite in ``tmp_path``, real APScheduler; conditions are awaited with a
deadline (:func:`until`), never with a fixed sleep.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from gatewayd.errors import ConfigError
from gatewayd.inventory.config import load_inventory
from gatewayd.runtime.service import Daemon, Hooks
from tests.helpers.waiting import until

from .conftest import (
    SENSORS,
    THREE_SENSORS,
    Env,
    assert_delivered_exactly_once,
    delivered,
    emulator_env,
    every_sensor_has_points_after,
    now_ms,
    points_of,
    polled_sections,
    running,
    sensor_ids,
    times_of,
)

#: SENSORS without Humidity.
ONE_SENSOR = """\
- name: Room
  sensors:
    - name: Temperature
      type: temperature
      interval: 200ms
      simulate: {pattern: sine, min: 18, max: 26, period: 1m, seed: 1}
"""


# ------------------------------------------------------------------------------------------------ 7


async def test_reload_adds_refuses_and_removes_sensors(env: Env) -> None:
    path = env.write_inventory()
    settled: list[int] = []  # the daemon process freezes its long-lived heap at each (gatewayd.runtime.heap)

    def on_settled() -> None:
        assert daemon.sampler is not None
        assert not daemon.sensors.closing(), "settled while sources let go of were still closing"
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
            # The reload runs without awaiting once the request is taken: taken up means done.
            await until(lambda: not daemon.supervisor.reload_pending, what="the reload to be handled")

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
        # the refused reloads changed nothing; the removed sources were closed before (see InventoryControl.settle)
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
