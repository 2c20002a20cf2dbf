"""A fleet over Thing+ MQTT: two shard processes of an 8-gateway fleet against the emulator's broker, which
knows every gateway of the fleet inventory (ids and API keys made from its template)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

pytest.importorskip("amqtt", reason="the emulator's MQTT broker needs amqtt (Python >= 3.10)")

from gatewayd.emulator import EmulatorServer
from gatewayd.inventory.config import load_inventory
from gatewayd.inventory.fleetmqtt import load_fleet_credentials
from tests.helpers.fleetshards import created, merged, run_shard
from tests.helpers.ports import free_port
from tests.integration.conftest import delivered
from tests.integration.test_fleet import DEVICES, SENSORS_PER_GATEWAY

GATEWAYS = 8
SHARDS = 2


def fleet_yaml(endpoint: str, mqtt_port: int, state_dir: Path) -> str:
    return f"""\
fleet:
  name: MQTT fleet
  gateways: {GATEWAYS}
  seed: 3
  ramp: {{per_second: 100}}
gateway: {{name: "Site {{index:02d}}"}}
state_dir: {state_dir}
thingplus:
  endpoint: {endpoint}
  transport: mqtt
  gateway_id: "f1ee7{{index:07x}}"
  apikey: "key-{{shard}}-{{index}}"
  mqtt: {{host: 127.0.0.1, port: {mqtt_port}, tls: false, report_interval: 1s}}
devices:
{DEVICES}"""


async def test_two_shards_of_mqtt_gateways_discover_once_and_deliver_every_point_once(tmp_path: Path) -> None:
    http_port, mqtt_port = free_port(), free_port()
    config = tmp_path / "fleet.yaml"
    state_dir = tmp_path / "state"
    config.write_text(fleet_yaml(f"http://127.0.0.1:{http_port}", mqtt_port, state_dir), encoding="utf-8")
    # As `gatewayd emulator --config fleet.yaml --mqtt-port P` (GATEWAYD_FLEET_SHARDS=2) builds it.
    credentials = load_fleet_credentials(config, shards=SHARDS)
    ids = [f"f1ee7{i:07x}" for i in range(GATEWAYS)]
    assert credentials == [(ids[i], f"key-{i % SHARDS}-{i}") for i in range(GATEWAYS)]
    async with EmulatorServer(
        load_inventory(config), port=http_port, mqtt_port=mqtt_port, mqtt_gateways=credentials
    ) as server:
        tp = server.emulator.thingplus
        reports = [tmp_path / f"report-{i}.json" for i in range(SHARDS)]
        outputs = await asyncio.gather(
            *(run_shard(config, i, SHARDS, reports[i], duration_s=4.0) for i in range(SHARDS))
        )

        # Every gateway logged in as itself, once, and is gone after the clean stop.
        links = tp.mqtt.links
        assert sorted(links) == ids, outputs
        assert all(links[g].counts["connects"] == 1 and not links[g].connected for g in ids)
        assert tp.mqtt.counts["connects_refused"] == 0
        # Discovered once: one device and its sensors per gateway, under ids from the templates.
        assert created(tp, "apikey_register_device") == GATEWAYS
        assert created(tp, "apikey_register_sensor") == GATEWAYS * SENSORS_PER_GATEWAY
        assert sorted(d for d in tp.devices if d.startswith("f1ee7")) == [
            f"{g}-Room {i}" for i, g in enumerate(ids)
        ]
        # Every sampled point delivered exactly once, and the shards' reports adding up.
        report = merged(reports)
        points = report["points"]
        assert report["shards"] == {"count": SHARDS, "included": [0, 1], "missing": []}
        assert report["gateways"]["total"] == report["gateways"]["registered"] == GATEWAYS
        assert points["sampled"] > GATEWAYS * SENSORS_PER_GATEWAY
        assert points["delivered"] == points["sampled"] == delivered(tp)
        assert points["lost"] == points["dead_lettered"] == points["pending"] == 0
        for counter in ("points_out_of_order", "points_out_of_range", "unknown_sensors", "bad_payloads"):
            assert tp.mqtt.counts[counter] == 0, counter
        for sensor_id, series in tp.points.items():
            times = [p.time for p in series]
            assert len(times) == len(set(times)), f"{sensor_id}: a point delivered twice"
        # Each gateway's state (its registry, the cloud's reportInterval) in its own directory.
        for i in range(GATEWAYS):
            gateway_dir = state_dir / f"shard-{i % SHARDS}-of-{SHARDS}" / "gateways" / f"{i:06d}"
            registry = json.loads((gateway_dir / "registry.json").read_text())
            assert ids[i] in json.dumps(registry)


async def test_churn_takes_an_mqtt_gateway_off_the_broker_and_back(tmp_path: Path) -> None:
    """A churned member's session (gatewayd.fleet.member -> runtime.mqttlink): the connection closes (the
    emulator sees it go: ``off``), publishes fail meanwhile, and it comes back no sooner than the policy's
    minimum wait (10 s on the real platform; 0.3 s here)."""
    from gatewayd.clouds.mqttsession import MqttSession
    from gatewayd.clouds.retry import RetryPolicy
    from gatewayd.errors import TransientError
    from tests.helpers.waiting import until

    mqtt_port = free_port()
    config = tmp_path / "fleet.yaml"
    config.write_text(fleet_yaml("http://127.0.0.1:9", mqtt_port, tmp_path / "state"), encoding="utf-8")
    gateway = load_inventory(config, fleet_gateway=(5, 1))
    async with EmulatorServer(
        gateway, mqtt_port=mqtt_port, mqtt_gateways=load_fleet_credentials(config, shards=SHARDS)
    ) as server:
        side = server.emulator.thingplus.mqtt
        gw = "f1ee70000005"

        async def no_request(payload: bytes) -> None:
            raise AssertionError(payload)

        session = MqttSession(
            gateway.thingplus,
            keepalive_s=lambda: 10.0,
            on_request=no_request,
            policy=RetryPolicy(attempts=10**9, base=0.3, cap=0.3),
        )
        session.start()
        try:
            assert await session.wait_connected(5)
            await session.publish(f"v/a/g/{gw}/status", b"on,90")
            session.suspend()
            assert session.connection()["state"] == "suspended" and not session.connected
            await until(lambda: not side.is_connected(gw), 5, what="the emulator to see the connection go")
            assert side.node_status(gw) == "off"  # as Thing+ shows a dropped connection
            with pytest.raises(TransientError):
                await session.publish(f"v/a/g/{gw}/status", b"on,90")
            session.resume()
            assert await session.wait_connected(5)
            await until(lambda: side.is_connected(gw), 5, what="the emulator to see it back")
            assert side.links[gw].counts["connects"] == 2
            assert session.stats.connects == 2 and session.stats.disconnects == 1
        finally:
            await session.close()
