"""The emulated Thing+'s API-key REST (discovery of MQTT gateways), called by hand as the document shows it."""

from __future__ import annotations

import aiohttp

from gatewayd.emulator import EmulatorServer
from gatewayd.emulator.thingplus import ThingPlusEmulator
from gatewayd.emulator.thingplus.mqttgateways import DEMO_MQTT_APIKEY, DEMO_MQTT_GATEWAY_ID
from tests.emulator import apikey_headers, call, discover_sensor, error_code, inventory, token_body

GW, KEY = DEMO_MQTT_GATEWAY_ID, DEMO_MQTT_APIKEY
DEMO = apikey_headers(GW, KEY)


async def test_discovery_reads_the_models_and_registers_devices_sensors_and_actuators(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator
) -> None:
    status, gateway = await call(
        http, "GET", f"/gateways/{GW}?fields=model&fields=autoCreateDiscoverable", DEMO
    )
    assert status == 200
    assert gateway == {"id": GW, "model": "53", "autoCreateDiscoverable": "y"}

    status, model = await call(http, "GET", f"/gatewayModels/{gateway['model']}", DEMO)
    assert status == 200
    (device_model,) = model["deviceModels"]
    assert device_model["idTemplate"] == "{gatewayId}-{deviceAddress}"
    entries = {e["type"]: e for e in device_model["sensors"]}
    assert entries["temperature"]["category"] == "sensor"
    assert entries["powerSwitch"]["category"] == entries["led"]["category"] == "actuator"
    assert {k: v["support"] for k, v in model["deviceMgmt"]["DM"].items()} == {
        "poweroff": "y",
        "reboot": "y",
        "restart": "y",
        "swUpdate": "y",
        "swInfo": "y",
    }

    driver_name = entries["powerSwitch"]["driverName"]
    status, drivers = await call(http, "GET", f"/sensorDrivers/?filter[id]={driver_name}", DEMO)
    assert status == 200
    assert [d["id"] for d in drivers] == [driver_name]
    assert drivers[0]["idTemplate"] == "{gatewayId}-{deviceAddress}-{type}-{sequence}"

    sensor = await discover_sensor(http, GW, KEY)
    switch = await discover_sensor(
        http, GW, KEY, sensor_type="powerSwitch", model=entries["powerSwitch"]["model"],
        driver=driver_name, category="actuator",
    )  # fmt: skip
    assert tp.devices[f"{GW}-dev1"]["owner"] == GW
    assert tp.sensors[sensor]["category"] == "sensor"
    assert tp.sensors[switch]["category"] == "actuator"

    # Registered again: 409, as the document says.
    body = {"reqId": f"{GW}-dev1", "name": "again", "model": "embedded-device-v1.0"}
    status, answer = await call(http, "POST", f"/gateways/{GW}/devices", DEMO, body)
    assert status == 409 and error_code(answer) == "CONFLICT"

    status, state = await call(http, "GET", "/_emulator/state")
    shown = {s["id"]: s for s in state["thingplus"]["sensors"]}
    assert shown[switch]["category"] == "actuator" and shown[sensor]["points"] == 0


async def test_discovery_refusals(http: aiohttp.ClientSession, server: EmulatorServer) -> None:
    status, _ = await call(http, "GET", f"/gateways/{GW}", apikey_headers(GW, "wrong-key"))
    assert status == 401
    status, _ = await call(http, "GET", f"/gateways/{GW}", apikey_headers("no-such-gw", KEY))
    assert status == 401
    status, _ = await call(http, "GET", f"/gateways/{GW}")
    assert status == 401

    status, other = await call(
        http, "POST", "/_emulator/thingplus/mqtt-gateways", json={"id": "a0b1c2d3e4f5", "apikey": "k2"}
    )
    assert status == 201, other
    status, _ = await call(http, "GET", "/gateways/a0b1c2d3e4f5", DEMO)
    assert status == 403
    status, _ = await call(http, "GET", "/gateways/ffffffffffff", DEMO)
    assert status == 404
    status, _ = await call(http, "GET", "/gatewayModels/52", DEMO)
    assert status == 404

    wrong_category = {
        "reqId": f"{GW}-dev1-led",
        "category": "sensor",
        "type": "led",
        "model": "embeddedLed",
        "driverName": "embeddedActuator",
        "name": "led",
        "deviceId": f"{GW}-dev1",
    }
    await discover_sensor(http, GW, KEY)
    status, answer = await call(http, "POST", f"/gateways/{GW}/sensors", DEMO, wrong_category)
    assert status == 400 and "actuator" in answer["errors"][0]["message"]
    status, answer = await call(
        http,
        "POST",
        f"/gateways/{GW}/devices",
        DEMO,
        {"reqId": "dev2", "name": "x", "model": "embedded-device-v1.0"},
    )
    assert status == 400 and "idTemplate" in answer["errors"][0]["message"]

    # The plan switch: creating objects answers 471 until it is lifted.
    status, _ = await call(
        http,
        "POST",
        "/_emulator/thingplus/mqtt-gateways",
        json={"id": GW, "apikey": KEY, "forbid_create": True},
    )
    assert status == 201
    body = {"reqId": f"{GW}-dev2", "name": "d2", "model": "embedded-device-v1.0"}
    status, _ = await call(http, "POST", f"/gateways/{GW}/devices", DEMO, body)
    assert status == 471
    assert server.emulator.thingplus.rejections["apikey_register_device:PLAN_LIMIT"] == 1


async def test_admin_knows_mqtt_gateways(http: aiohttp.ClientSession) -> None:
    status, known = await call(http, "GET", "/_emulator/thingplus/mqtt-gateways")
    assert status == 200
    assert [(g["id"], g["apikey"], g["model"]) for g in known] == [(GW, KEY, "53")]
    for bad in ({"id": "gw"}, {"id": "gw x", "apikey": "k"}, {"id": "gw", "apikey": "k", "model": "52"}, []):
        status, answer = await call(http, "POST", "/_emulator/thingplus/mqtt-gateways", json=bad)
        assert status == 400, (bad, answer)
    status, added = await call(
        http, "POST", "/_emulator/thingplus/mqtt-gateways", json={"id": "0a0b0c0d0e0f", "apikey": "k"}
    )
    assert status == 201 and added["model"] == "53"
    status, gateway = await call(http, "GET", "/gateways/0a0b0c0d0e0f", apikey_headers("0a0b0c0d0e0f", "k"))
    assert status == 200 and gateway["autoCreateDiscoverable"] == "y"


MQTT_INVENTORY = """\
gateway: {name: "MQTT gateway"}
state_dir: /tmp/gatewayd-emulator-tests
thingplus:
  endpoint: http://127.0.0.1:9
  transport: mqtt
  gateway_id: 0a1b2c3d4e5f
  apikey: inventory-apikey
  mqtt: {host: 127.0.0.1, port: 1883, tls: false}
devices:
  - name: dev1
    sensors:
      - {name: t, type: temperature, interval: 1s, simulate: {pattern: sine}}
"""


async def test_an_mqtt_inventory_serves_its_gateway_and_no_oauth2_account() -> None:
    """An inventory of the MQTT mode names no OAuth2 account: the emulator starts all the same, knows
    the inventory's gateway with its API key (beside the demo one), and refuses every token request."""
    async with (
        EmulatorServer(inventory(MQTT_INVENTORY)) as server,
        aiohttp.ClientSession(base_url=server.url) as http,
    ):
        headers = apikey_headers("0a1b2c3d4e5f", "inventory-apikey")
        status, gateway = await call(http, "GET", "/gateways/0a1b2c3d4e5f?fields=model", headers)
        assert status == 200 and gateway["model"] == "53"
        status, _ = await call(http, "GET", f"/gateways/{GW}", DEMO)
        assert status == 200
        status, answer = await call(http, "POST", "/v2/oauth2/token", json=token_body())
        assert status == 401 and answer["error"] == "invalid_client"
