"""Helpers for the emulator tests: an inventory (tests/helpers/inventories.py), and requests built by hand.

The requests here follow the vendor documents, not gatewayd's clients: the emulator is checked on its own.
"""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp

from gatewayd.inventory.config import Inventory, parse_inventory
from tests.helpers.clocks import FakeClock
from tests.helpers.inventories import THINGPLUS as THINGPLUS_CREDENTIALS
from tests.helpers.inventories import THINGPLUS_PASSWORD_MD5, inventory_yaml, loctube, rcms

CLIENT_ID = THINGPLUS_CREDENTIALS["client_id"]
CLIENT_SECRET = THINGPLUS_CREDENTIALS["client_secret"]
USERNAME = THINGPLUS_CREDENTIALS["username"]
PASSWORD = THINGPLUS_CREDENTIALS["password"]
PASSWORD_MD5 = THINGPLUS_PASSWORD_MD5

ENDPOINT = "http://127.0.0.1:9"
THINGPLUS = inventory_yaml(ENDPOINT, state_dir="/tmp/gatewayd-emulator-tests")
ALL_CLOUDS = THINGPLUS + rcms(ENDPOINT, devices=["SN-0001"]) + loctube(ENDPOINT, devices=["dev0001"])


def inventory(text: str = THINGPLUS) -> Inventory:
    return parse_inventory(text, env={})


#: A point time a minute before :class:`FakeClock`'s default now: well inside the emulator's stale limit.
RECENT_MS = int(FakeClock().now * 1000) - 60_000


def new_id() -> str:
    """A reqId as the document makes one: a uuid without dashes, lowercase."""
    return uuid.uuid4().hex


def token_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "grant_type": "password",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "username": USERNAME,
        "password": PASSWORD_MD5,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


async def get_token(http: aiohttp.ClientSession) -> dict[str, str]:
    """The Authorization header for a fresh token."""
    async with http.post("/v2/oauth2/token", json=token_body()) as resp:
        assert resp.status == 200, await resp.text()
        data = await resp.json()
    return {"Authorization": f"{data['token_type']} {data['access_token']}"}


async def call(
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    json: Any = None,
    data: Any = None,
) -> tuple[int, Any]:
    """Status and body (parsed as JSON when it is JSON, text otherwise)."""
    async with http.request(method, path, headers=headers, json=json, data=data) as resp:
        if resp.content_type == "application/json":
            return resp.status, await resp.json()
        return resp.status, await resp.text()


async def send_json_text(
    http: aiohttp.ClientSession, method: str, path: str, headers: dict[str, str], text: str
) -> tuple[int, Any]:
    """``text`` sent as the JSON body byte for byte (``90.0`` stays ``90.0``), as a client wrote it."""
    return await call(http, method, path, {**headers, "Content-Type": "application/json"}, data=text.encode())


def error_code(body: Any) -> str:
    """The first ``errors[].code`` of a Thing+ failure envelope."""
    assert isinstance(body, dict), body
    return str(body["errors"][0]["code"])


async def register(
    http: aiohttp.ClientSession,
    auth: dict[str, str],
    sensor_type: str = "temperature",
    model: str = "openApiTemp",
) -> tuple[str, str, str]:
    """Register a gateway, a device and a sensor as the document shows; their ids."""
    gateway, device, sensor = new_id(), new_id(), new_id()
    status, body = await call(
        http,
        "POST",
        "/v2/registerGateway",
        auth,
        {"reqId": gateway, "params": {"siteId": "1", "model": "52", "name": "Open Gateway 1"}},
    )
    assert status == 201, body
    status, body = await call(
        http,
        "POST",
        f"/v2/gateways/{gateway}/devices",
        auth,
        {"reqId": device, "name": "Open Gateway Device 1", "model": "open-api-device-v1.0"},
    )
    assert status == 201, body
    status, body = await call(
        http,
        "POST",
        f"/v2/gateways/{gateway}/sensors",
        auth,
        sensor_body(sensor, device, type=sensor_type, model=model),
    )
    assert status == 201, body
    return gateway, device, sensor


def sensor_body(req_id: str, device: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "reqId": req_id,
        "name": "Temperature Sensor",
        "type": "temperature",
        "driverName": "openApiSensor",
        "model": "openApiTemp",
        "category": "sensor",
        "deviceId": device,
    }
    body.update(overrides)
    return body


# -- Thing+'s API-key REST (MQTT gateways' discovery), by hand from the protocol document ------------


def apikey_headers(gateway: str, apikey: str) -> dict[str, str]:
    """The two headers every API-key REST call carries."""
    return {"username": gateway, "apikey": apikey}


async def discover_sensor(
    http: aiohttp.ClientSession,
    gateway: str,
    apikey: str,
    address: str = "dev1",
    sensor_type: str = "temperature",
    model: str = "openApiTemp",
    driver: str = "embeddedSensor",
    category: str = "sensor",
) -> str:
    """Register a device (409: it exists) and one sensor or actuator of it over the API-key REST, with
    ids built from the templates ``{gatewayId}-{deviceAddress}[-{type}]``; the sensor id."""
    headers = apikey_headers(gateway, apikey)
    device = f"{gateway}-{address}"
    body = {"reqId": device, "name": f"Device {address}", "model": "embedded-device-v1.0"}
    status, answer = await call(http, "POST", f"/gateways/{gateway}/devices", headers, body)
    assert status in (201, 409), answer
    sensor = f"{device}-{sensor_type}"
    body = {
        "reqId": sensor,
        "category": category,
        "type": sensor_type,
        "model": model,
        "driverName": driver,
        "network": "daliworks",
        "name": f"{sensor_type} of {address}",
        "deviceId": device,
    }
    status, answer = await call(http, "POST", f"/gateways/{gateway}/sensors", headers, body)
    assert status == 201, answer
    return sensor
