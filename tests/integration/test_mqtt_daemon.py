"""The daemon over MQTT against a real, independent broker (mosquitto with a password file and an ACL).

Discovery runs against a small stand-in of the API-key REST (tests.helpers.discoveryrest); the broker is
the ``mqtt_broker`` fixture, which another broker knowing the same accounts can replace.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from gatewayd.clouds.retry import RetryPolicy
from gatewayd.commands.handler import RESTART_EXIT_STATUS
from gatewayd.outbox import Outbox
from gatewayd.outbox.deadletters import outbox_path
from gatewayd.runtime.reportinterval import FILE_NAME
from tests.helpers.mosquitto import Observer
from tests.helpers.mqttenv import MQTT_GATEWAY, MqttEnv
from tests.helpers.waiting import until
from tests.integration.conftest import killed_daemon_child, running

GW = MQTT_GATEWAY
TEMPERATURE = f"{GW}-Room-temperature"
HUMIDITY = f"{GW}-Room-humidity"
FAN = f"{GW}-Room-powerSwitch"


async def test_discovery_statuses_data_and_commands(mqtt_env: MqttEnv) -> None:
    async with Observer(mqtt_env.broker.port) as seen, running(mqtt_env.inventory()) as run:
        await until(lambda: len(seen.on(f"v/a/g/{GW}/status")) >= 2, 15, what="two status messages")
        await until(lambda: len(seen.on(f"v/a/g/{GW}")) >= 2, 15, what="two data messages")
        # Discovery: one device, two sensors and the actuator, under ids from the templates.
        assert sorted(mqtt_env.rest.devices) == [f"{GW}-Room"]
        assert sorted(mqtt_env.rest.sensors) == sorted([TEMPERATURE, HUMIDITY, FAN])
        assert mqtt_env.rest.sensors[FAN]["category"] == "actuator"
        # Presence: `on`, retained, right after connecting.
        assert seen.on(f"v/a/g/{GW}/mqtt/status")[0] == b"on"
        # One status message with every sensor's status (valid 1.5 x 1 s, rounded up).
        status = seen.on(f"v/a/g/{GW}/status")[-1].decode()
        assert status == f"on,2,{TEMPERATURE},on,2,{HUMIDITY},on,2,{FAN},on,2"
        # Data: every message a JSON object of the sensors' points, in time order per sensor.
        for payload in seen.on(f"v/a/g/{GW}"):
            for sid, flat in json.loads(payload).items():
                assert sid in (TEMPERATURE, HUMIDITY)
                assert flat[0::2] == sorted(flat[0::2]) and all(isinstance(v, str) for v in flat[1::2])

        async def ask(request: bytes, request_id: object) -> dict[str, object]:
            await seen.publish(f"v/a/g/{GW}/req", request)

            def answered() -> list[dict[str, object]]:
                found = [json.loads(p) for p in seen.on(f"v/a/g/{GW}/res")]
                return [a for a in found if a.get("id") == request_id]

            await until(lambda: answered(), 10, what=f"the answer to {request!r}")
            return answered()[0]

        control = {"id": "c1", "method": "controlActuator", "params": {"id": FAN, "cmd": "on"}}
        assert await ask(json.dumps(control).encode(), "c1") == {"id": "c1", "result": ""}
        assert run.daemon.snapshot().actuators[0].state == "on"
        answer = await ask(b'{"id": "bad1", "method": ', "bad1")
        assert answer["error"]["code"] == -32700  # type: ignore[index]
        await seen.publish(f"v/a/g/{GW}/req", b"\x00 not json, no id")
        await until(lambda: run.daemon.snapshot().reporting.connection.get("unreadable_requests") == 1, 5)
        interval = {"id": 7, "method": "setProperty", "params": {"reportInterval": "2000"}}
        assert await ask(json.dumps(interval).encode(), 7) == {"id": 7, "result": ""}
        assert run.daemon.report_interval_ms == 2000
        assert json.loads((mqtt_env.state_dir / FILE_NAME).read_text())["report_interval_ms"] == 2000
        assert run.daemon.snapshot().reporting.connection["connected"] is True
    # A clean stop says `off`, retained; a restart registers nothing and keeps the interval the cloud set.
    registered = dict(mqtt_env.rest.requests)
    async with running(mqtt_env.inventory()) as run:
        await until(lambda: run.daemon.registered is not None, 10, what="discovery after the restart")
        assert run.daemon.report_interval_ms == 2000
    assert {k: v for k, v in mqtt_env.rest.requests.items() if k.startswith("POST")} == {
        k: v for k, v in registered.items() if k.startswith("POST")
    }


#: Reconnect a second after the broker is back: the test's observer is subscribed by then.
SLOW_RECONNECT = RetryPolicy(attempts=10**9, base=1.0, cap=1.0)


def delivered_once(points: dict[str, list[tuple[int, Any]]], sensor: str, cloud_id: str) -> list[int]:
    times = [t for t, _ in points.get(cloud_id, [])]
    assert len(times) == len(set(times)), f"{sensor}: a point delivered twice"
    assert times == sorted(times), f"{sensor}: not delivered oldest first"
    return times


async def test_broker_outage_loses_nothing(mqtt_env: MqttEnv) -> None:
    inventory = mqtt_env.inventory()
    async with running(inventory, mqtt_reconnect=SLOW_RECONNECT) as run:
        daemon = run.daemon
        async with Observer(mqtt_env.broker.port) as before:
            await until(lambda: len(before.on(f"v/a/g/{GW}")) >= 1, 15, what="data before the outage")
            mqtt_env.broker.stop()
            await until(lambda: not daemon.snapshot().reporting.connection["connected"], 10, what="the drop")
        pending = daemon.outbox.stats.pending
        await until(lambda: daemon.outbox.stats.pending > pending + 10, 10, what="a backlog in the outbox")
        mqtt_env.broker.start()
        async with Observer(mqtt_env.broker.port) as after:
            await until(lambda: daemon.outbox.stats.pending == 0, 20, what="the backlog delivered")
            await run.stop()
            assert daemon.outbox.stats.pending == 0
            assert daemon.sampler is not None
            sampled = daemon.sampler.stats.sampled

            def points() -> dict[str, list[tuple[int, Any]]]:
                return {k: v + after.points(GW).get(k, []) for k, v in before.points(GW).items()}

            # The broker acknowledged every message to the daemon; its copies reach the observer a little later.
            await until(lambda: sum(map(len, points().values())) >= sampled, 10, what="the observer's copies")
    ids = daemon.registry.cloud_ids()
    for sensor in daemon.sampler.sensors:
        times = delivered_once(points(), sensor.key, ids[sensor.sensor_id])
        assert len(times) == sensor.reads, f"{sensor.key}: sampled {sensor.reads}, delivered {len(times)}"


async def test_sigkill_loses_nothing(mqtt_env: MqttEnv) -> None:
    """SIGKILL while the broker is down: every point on disk then is delivered, once, after a restart."""
    mqtt_env.broker.stop()
    async with killed_daemon_child(mqtt_env, backlog=20, within_s=20):
        pass  # the broker is down from the start: everything sampled stays on disk
    async with await Outbox.open(outbox_path(mqtt_env.state_dir)) as outbox:
        on_disk = await outbox.all_points()
    assert len(on_disk) >= 20
    mqtt_env.broker.start()
    async with Observer(mqtt_env.broker.port) as seen:
        async with running(mqtt_env.inventory(), mqtt_reconnect=SLOW_RECONNECT) as run:
            await until(lambda: run.daemon.registered is not None, 10, what="discovery after the kill")
            await until(lambda: run.daemon.outbox.stats.pending == 0, 20, what="the points kept delivered")
            ids = run.daemon.registry.cloud_ids()
        kept = {(ids[p.sensor_id], p.time_ms) for p in on_disk}

        def seen_kept() -> int:
            return len(kept & {(sid, t) for sid, pts in seen.points(GW).items() for t, _ in pts})

        await until(lambda: seen_kept() == len(kept), 10, what="the observer's copies of the kept points")
        points = seen.points(GW)
    for local_id in {p.sensor_id for p in on_disk}:
        times = delivered_once(points, local_id, ids[local_id])
        missing = [p.time_ms for p in on_disk if p.sensor_id == local_id and p.time_ms not in set(times)]
        assert not missing, f"{local_id}: {len(missing)} points kept on disk were never delivered"


async def test_bad_api_key_is_refused_with_a_clear_error(mqtt_env: MqttEnv) -> None:
    async with running(mqtt_env.inventory(apikey="wrong-key")) as run:
        await until(lambda: mqtt_env.rest.refused > 0, 10, what="discovery refused")
        await until(
            lambda: run.daemon.snapshot().reporting.connection["state"] == "refused", 10, what="login refused"
        )
        error = str(run.daemon.snapshot().reporting.connection["last_error"])
        assert "thingplus.gateway_id and thingplus.apikey" in error
        assert run.daemon.registered is None
        # Sampling goes on into the outbox meanwhile.
        await until(lambda: run.daemon.outbox.stats.pending > 0, 5, what="points kept")


async def test_restart_command_stops_cleanly_with_the_restart_status(mqtt_env: MqttEnv) -> None:
    async with Observer(mqtt_env.broker.port) as seen, running(mqtt_env.inventory()) as run:
        await until(lambda: run.daemon.snapshot().reporting.connection["connected"], 10, what="connected")
        await seen.publish(f"v/a/g/{GW}/req", b'{"id": "r1", "method": "restart"}')
        await asyncio.wait_for(asyncio.shield(run.task), 15)
        run.task.result()  # a clean stop, not a failure
        assert run.daemon.exit_status == RESTART_EXIT_STATUS
        await until(
            lambda: [json.loads(p) for p in seen.on(f"v/a/g/{GW}/res")] == [{"id": "r1", "result": ""}], 5
        )
        assert seen.on(f"v/a/g/{GW}/mqtt/status")[-1] == b"off"
