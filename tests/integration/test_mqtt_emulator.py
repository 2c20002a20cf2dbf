"""The daemon over MQTT against the emulator: its API-key discovery REST and its in-process broker (amqtt).

Together, never a stand-in on either side: discovery once, one status and few data messages a report as the
emulator counts them, commands sent the portal's way (``POST /_emulator/thingplus/rpc``) acting on a real
Modbus coil, setProperty changing the cadence the emulator sees, an MQTT outage and a SIGKILL losing
nothing, bad credentials refused clearly, and ``gatewayd thingplus rpc`` against the emulator.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from gatewayd.emulator.thingplus import ThingPlusEmulator
from gatewayd.inventory.sources import ModbusSource
from gatewayd.outbox import Outbox
from gatewayd.outbox.deadletters import outbox_path
from gatewayd.runtime.service import Daemon
from gatewayd.sources.modbus import ModbusReader
from gatewayd.sources.modbuslink import ModbusPool
from tests.helpers.modbuspeer import TcpPeer
from tests.helpers.mqttenv import MQTT_DEVICES, MQTT_GATEWAY, MqttEnv
from tests.helpers.waiting import until
from tests.integration.conftest import gatewayd_cli, killed_daemon_child, running

GW = MQTT_GATEWAY
FAN = f"{GW}-Room-powerSwitch"
REGISTER_KINDS = ("apikey_register_device", "apikey_register_sensor")


def tp_of(env: MqttEnv) -> ThingPlusEmulator:
    tp = env.rest
    assert isinstance(tp, ThingPlusEmulator)
    return tp


def counts(tp: ThingPlusEmulator) -> dict[str, int]:
    link = tp.mqtt.links.get(GW)
    return dict(link.counts) if link is not None else {}


def status_times(tp: ThingPlusEmulator) -> list[int]:
    """When the emulator received each gateway status (ms)."""
    return [s.received for s in tp.gateway_statuses.get(GW, [])]


async def rpc(env: MqttEnv, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """A command the portal's way: through the emulator's admin API; the gateway's answer."""
    body = {"gateway": GW, "method": method, "params": params, "timeout": 5}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{env.rest_url}/_emulator/thingplus/rpc", json=body) as resp,
    ):
        assert resp.status == 200, await resp.text()
        answer: dict[str, Any] = await resp.json()
        return answer


async def outage(env: MqttEnv, on: bool) -> None:
    """The emulator's MQTT outage knob: the broker unreachable until cleared."""
    async with aiohttp.ClientSession() as http:
        method = http.post if on else http.delete
        async with method(f"{env.rest_url}/_emulator/thingplus/mqtt-outage", json={}) as resp:
            assert resp.status == 200, await resp.text()


def cloud_times(daemon: Daemon, tp: ThingPlusEmulator) -> dict[str, list[int]]:
    """Per local sensor key: the times of the points the emulator holds for its Thing+ id."""
    assert daemon.sampler is not None
    ids = daemon.registry.cloud_ids()
    return {s.key: [p.time for p in tp.points.get(ids[s.sensor_id], [])] for s in daemon.sampler.sensors}


def assert_once_in_order(times: dict[str, list[int]]) -> None:
    for key, seen in times.items():
        assert len(seen) == len(set(seen)), f"{key}: a point delivered twice"
        assert seen == sorted(seen), f"{key}: not delivered oldest first"


async def test_discovery_once_and_one_status_message_a_report(emulator_mqtt_env: MqttEnv) -> None:
    env, tp = emulator_mqtt_env, tp_of(emulator_mqtt_env)
    async with running(env.inventory()) as run:
        await until(lambda: counts(tp).get("messages_gateway_status", 0) >= 3, 15, what="three statuses")
        await until(lambda: counts(tp).get("points", 0) >= 20, 15, what="points")
        daemon = run.daemon
    # Discovery: one device, two sensors and the actuator under the templates' ids, registered once.
    assert sorted(tp.devices) == [f"{GW}-Room"]
    sensors = {sid: s["category"] for sid, s in tp.sensors.items()}
    assert sensors == {f"{GW}-Room-temperature": "sensor", f"{GW}-Room-humidity": "sensor", FAN: "actuator"}
    registered = {k: tp.requests[k] for k in REGISTER_KINDS}
    assert registered == {"apikey_register_device": 1, "apikey_register_sensor": 3}
    assert not tp.rejections and not tp.mqtt.counts.get("connects_refused")
    # Statuses: one message a report, carrying every sensor's and the actuator's; never per sensor.
    seen = counts(tp)
    assert seen.get("messages_sensor_status", 0) == seen.get("messages_sensor_data", 0) == 0
    reports = seen["messages_gateway_status"]
    assert reports == len(tp.gateway_statuses[GW])
    assert all(len(tp.sensor_statuses[sid]) == reports for sid in sensors)
    # Data: gateway-data messages each carrying many points; none out of order, none refused.
    assert 0 < seen["messages_gateway_data"] <= reports + 1 < seen["points"]
    assert not {"bad_payloads", "unknown_sensors", "points_out_of_order", "points_out_of_range"} & set(seen)
    assert_once_in_order(cloud_times(daemon, tp))
    assert sum(map(len, cloud_times(daemon, tp).values())) == daemon.sampler.stats.sampled  # type: ignore[union-attr]
    # A restart registers nothing.
    async with running(env.inventory()) as run:
        await until(lambda: run.daemon.registered is not None, 10, what="discovery after the restart")
        await until(lambda: tp.mqtt.is_connected(GW), 10, what="connected again")
    assert {k: tp.requests[k] for k in REGISTER_KINDS} == registered


def modbus_fan(peer: TcpPeer) -> str:
    """The test devices with the Fan on coil 1 of the Modbus peer (it starts off)."""
    target = f"{{host: 127.0.0.1, port: {peer.port}, unit: 1, coil: 1, timeout: 2s}}"
    return MQTT_DEVICES.replace("simulate: {}}", f"modbus: {target}}}")


async def watch_coil(peer: TcpPeer, seen: list[bool]) -> None:
    """Read coil 1 off the peer every 20 ms, keeping each change (until cancelled)."""
    pool = ModbusPool()
    coil = ModbusReader(
        ModbusSource.model_validate(
            {"host": "127.0.0.1", "port": peer.port, "function": "coil", "address": 1, "timeout": 2.0}
        ),
        pool,
    )
    try:
        while True:
            value = bool(await coil.read())
            if not seen or seen[-1] != value:
                seen.append(value)
            await asyncio.sleep(0.02)
    finally:
        await pool.close()


async def test_commands_blink_a_modbus_coil_and_set_the_report_cadence(
    emulator_mqtt_env: MqttEnv, peer: TcpPeer
) -> None:
    env, tp = emulator_mqtt_env, tp_of(emulator_mqtt_env)
    async with running(env.inventory(devices=modbus_fan(peer))) as run:
        await until(lambda: tp.mqtt.is_connected(GW) and FAN in tp.sensors, 10, what="connected")
        seen: list[bool] = []
        watcher = asyncio.create_task(watch_coil(peer, seen))
        try:
            await until(lambda: seen == [False], 5, what="the coil read")
            blink = {"id": FAN, "cmd": "blink", "options": {"interval": 200, "duration": 1400}}
            assert await rpc(env, "controlActuator", blink) == {
                "id": tp.mqtt.commands.view(GW)[-1]["id"],
                "result": "",
            }
            await until(
                lambda: run.daemon.snapshot().actuators[0].state == "off" and len(seen) >= 6 and not seen[-1],
                10,
                what="the blink seen on the coil",
            )
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        # Off, then on at once, toggling at 200 ms for 1.4 s (the 20 ms reads may miss no more than a
        # toggle or two on a loaded box), and off at the end.
        assert seen[:5] == [False, True, False, True, False] and len(seen) <= 9
        assert run.daemon.snapshot().actuators[0].state == "off"

        # setProperty: the statuses the emulator receives come at the new interval from then on.
        await until(lambda: len(status_times(tp)) >= 3, 10, what="statuses at 1 s")
        before = status_times(tp)
        assert all(b - a < 1600 for a, b in zip(before[-3:], before[-2:]))
        answer = await rpc(env, "setProperty", {"reportInterval": "2000"})
        assert "result" in answer, answer
        changed = len(status_times(tp))
        await until(lambda: len(status_times(tp)) >= changed + 2, 10, what="statuses at 2 s")
        after = status_times(tp)[changed:]
        assert all(1700 <= b - a <= 2600 for a, b in zip(after, after[1:])), after
        assert run.daemon.report_interval_ms == 2000


async def test_an_mqtt_outage_then_sigkill_loses_nothing(emulator_mqtt_env: MqttEnv) -> None:
    """The broker cut while the daemon runs (a child process), the daemon SIGKILLed during the outage, then
    the outage ends and a restart delivers: every point is on the emulator exactly once, in time order."""
    env, tp = emulator_mqtt_env, tp_of(emulator_mqtt_env)
    async with killed_daemon_child(env, backlog=20, within_s=15):
        await until(lambda: counts(tp).get("points", 0) >= 10, 15, what="points before the outage")
        await outage(env, True)
        await until(lambda: not tp.mqtt.is_connected(GW), 5, what="the connection cut")
    before = {sid: [p.time for p in pts] for sid, pts in tp.points.items()}
    async with await Outbox.open(outbox_path(env.state_dir)) as box:
        on_disk = await box.all_points()
    await outage(env, False)
    async with running(env.inventory()) as run:
        await until(lambda: run.daemon.registered is not None, 10, what="discovery after the kill")
        await until(lambda: counts(tp).get("messages_gateway_data", 0) > 0 and tp.mqtt.is_connected(GW), 10)
        await asyncio.sleep(1.5)  # a second report of fresh points
        await run.stop()
        daemon = run.daemon
    assert daemon.outbox.stats.pending == 0 and daemon.sampler is not None
    ids = daemon.registry.cloud_ids()
    times = cloud_times(daemon, tp)
    assert_once_in_order(times)
    for sensor in daemon.sampler.sensors:
        cloud_id = ids[sensor.sensor_id]
        kept = sorted(p.time_ms for p in on_disk if p.sensor_id == sensor.sensor_id)
        assert kept, f"{sensor.key}: nothing kept on disk at the kill"
        delivered = before.get(cloud_id, []) + kept
        assert times[sensor.key][: len(delivered)] == delivered, f"{sensor.key}: kept points lost"
        assert len(times[sensor.key]) == len(delivered) + sensor.reads, f"{sensor.key}: fresh points lost"
    assert not tp.rejections and "points_out_of_order" not in counts(tp)


async def test_bad_credentials_are_refused_with_a_clear_error(emulator_mqtt_env: MqttEnv) -> None:
    env, tp = emulator_mqtt_env, tp_of(emulator_mqtt_env)
    async with running(env.inventory(apikey="wrong-key")) as run:
        await until(
            lambda: run.daemon.snapshot().reporting.connection["state"] == "refused", 10, what="refused"
        )
        error = str(run.daemon.snapshot().reporting.connection["last_error"])
        assert "thingplus.gateway_id and thingplus.apikey" in error
        assert run.daemon.registered is None
        await until(lambda: run.daemon.outbox.stats.pending > 0, 5, what="points kept meanwhile")
    assert tp.rejections["apikey_get_gateway:UNAUTHORIZED"] >= 1
    assert not tp.devices and not tp.sensors and GW not in tp.mqtt.links


async def test_thingplus_rpc_cli_against_the_emulator(emulator_mqtt_env: MqttEnv) -> None:
    env, tp = emulator_mqtt_env, tp_of(emulator_mqtt_env)
    path = env.tmp_path / "inventory.yaml"
    path.write_text(env.inventory_text())
    async with running(env.inventory()):
        await until(lambda: tp.mqtt.is_connected(GW) and FAN in tp.sensors, 10, what="connected")
        code, out, err = await gatewayd_cli("thingplus", "rpc", "--config", str(path), "swInfo")
        assert code == 0, err
        assert "version" in json.loads(out)["result"]
        params = json.dumps({"id": FAN, "cmd": "on"})
        code, out, err = await gatewayd_cli(
            "thingplus", "rpc", "--config", str(path), "controlActuator", params
        )
        assert (code, json.loads(out)["result"]) == (0, ""), err
        code, out, err = await gatewayd_cli("thingplus", "rpc", "--config", str(path), "reboot")
        assert code == 0 and json.loads(out)["error"]["code"] == -32000, (out, err)
    assert [c["method"] for c in tp.mqtt.commands.view(GW)] == ["swInfo", "controlActuator", "reboot"]


async def test_a_report_interval_of_days_still_connects(emulator_mqtt_env: MqttEnv) -> None:
    """keepalive = 2 x reportInterval, but MQTT's field is 16 bits: a cloud's setProperty of a day must not
    leave the session unable to encode its CONNECT (it used to die silently, reporting nothing more)."""
    from gatewayd.clouds.mqttsession import MqttSession

    async def no_request(payload: bytes) -> None:
        raise AssertionError(payload)

    config = emulator_mqtt_env.inventory().thingplus
    session = MqttSession(config, keepalive_s=lambda: 2 * 86_400.0, on_request=no_request)
    session.start()
    try:
        assert await session.wait_connected(5), session.connection()
        await session.publish(f"v/a/g/{MQTT_GATEWAY}/status", b"on,90")
    finally:
        await session.close()
