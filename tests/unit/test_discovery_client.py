"""Discovery's REST client: the API-key auth flow and what the cloud's refusals become."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gatewayd.clouds.discovery import DiscoveryClient, refused_for_good
from gatewayd.clouds.retry import RetryPolicy
from gatewayd.errors import AuthError, PermanentError
from gatewayd.inventory.config import parse_inventory
from tests.conftest import loopback_server

ONCE = RetryPolicy(attempts=1)


def client(session: aiohttp.ClientSession, url: str) -> DiscoveryClient:
    text = (
        'gateway: {name: "E"}\nthingplus:\n'
        f"  endpoint: {url}\n  transport: mqtt\n  gateway_id: 0a1b\n  apikey: s3cret\n  mqtt: {{host: h}}\n"
    )
    return DiscoveryClient(session, parse_inventory(text).thingplus, policy=ONCE)


def answering(status: int, body: Any, seen: list[tuple[web.Request, bytes]] | None = None) -> Any:
    """A cloud that answers every request with ``status`` and ``body``, keeping each request and its body."""

    async def handle(request: web.Request) -> web.Response:
        if seen is not None:
            seen.append((request, await request.read()))
        return web.json_response(body, status=status)

    return handle


async def test_every_call_carries_the_gateway_id_and_api_key(session: aiohttp.ClientSession) -> None:
    seen: list[tuple[web.Request, bytes]] = []
    async with loopback_server(answering(200, {"model": "m1"}, seen)) as url:
        assert await client(session, url).gateway() == {"model": "m1"}
    request = seen[0][0]
    assert (request.headers["username"], request.headers["apikey"]) == ("0a1b", "s3cret")
    assert request.path_qs == "/gateways/0a1b?fields=model&fields=autoCreateDiscoverable"
    assert "Authorization" not in request.headers


@pytest.mark.parametrize(
    ("status", "error", "says"),
    [
        (401, AuthError, "check thingplus.gateway_id and thingplus.apikey"),
        (471, PermanentError, "the Thing+ plan forbids this"),
    ],
)
async def test_refusals_are_permanent_and_say_what_to_check(
    session: aiohttp.ClientSession, status: int, error: type[Exception], says: str
) -> None:
    async with loopback_server(answering(status, {"message": "no"})) as url:
        with pytest.raises(error) as info:
            await client(session, url).gateway_model("m1")
    assert says in str(info.value) and refused_for_good(info.value)  # type: ignore[arg-type]


async def test_registration_409_means_it_exists(session: aiohttp.ClientSession) -> None:
    seen: list[tuple[web.Request, bytes]] = []
    async with loopback_server(answering(409, {"message": "Conflict"}, seen)) as url:
        spec = {"type": "temperature", "driverName": "d", "model": "m", "network": "n", "category": "sensor"}
        result = await client(session, url).register_sensor(
            "0a1b-dev-temperature", device_id="0a1b-dev", name="T", spec=spec
        )
    assert result.created is False
    request, body = seen[0]
    assert request.path == "/gateways/0a1b/sensors"
    assert json.loads(body) == {
        "reqId": "0a1b-dev-temperature",
        "category": "sensor",
        "type": "temperature",
        "model": "m",
        "driverName": "d",
        "network": "n",
        "name": "T",
        "deviceId": "0a1b-dev",
    }


async def test_sensor_driver_template(session: aiohttp.ClientSession) -> None:
    template = "{gatewayId}-{deviceAddress}-{type}-{sequence}"
    async with loopback_server(answering(200, [{"id": "tempDriver", "idTemplate": template}])) as url:
        assert (await client(session, url).sensor_driver("tempDriver"))["idTemplate"] == template
    async with loopback_server(answering(200, [])) as url:
        with pytest.raises(PermanentError, match="no sensor driver 'other'"):
            await client(session, url).sensor_driver("other")
