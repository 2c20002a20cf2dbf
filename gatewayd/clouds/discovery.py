"""Thing+ embedded-gateway REST: what discovery reads and registers, with the API-key auth flow.

Why a client of its own beside :mod:`gatewayd.clouds.thingplus`: the embedded-gateway protocol has
another base (no ``/v2``), another auth (the ``username``/``apikey`` headers of
:mod:`gatewayd.clouds.auth.apikey`), its own calls (sensor drivers' id templates) and bodies. Retries,
timeouts and the error mapping are the client core's, as for every cloud; two answers get a message
that says what to do, because no retry can fix them: 401 (the gateway id or API key is wrong) and 471
(the Thing+ plan forbids the call). 409 means the object exists: success for registration.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import structlog

from gatewayd.clouds.auth.apikey import ApiKeyAuth
from gatewayd.clouds.core import CloudCore
from gatewayd.clouds.http import HttpTransport, RequestObserver, Response
from gatewayd.clouds.jsonbody import dumps
from gatewayd.clouds.request import Request
from gatewayd.clouds.retry import RetryPolicy
from gatewayd.clouds.thingplus import CLOUD, Registration, _describe, _seg
from gatewayd.errors import AlreadyExistsError, AuthError, CloudError, PermanentError
from gatewayd.inventory.config import ThingPlusConfig

log = structlog.get_logger(__name__)

#: What to check when the cloud refuses the API key (401) or the plan (471).
KEYS_TO_CHECK = "check thingplus.gateway_id and thingplus.apikey against the gateway in the Thing+ portal"
PLAN_REFUSED = 471


class DiscoveryClient:
    """The discovery calls of one gateway, authenticated by its id and API key."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        config: ThingPlusConfig,
        *,
        policy: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        observer: RequestObserver | None = None,
    ) -> None:
        if config.gateway_id is None or config.apikey is None:
            raise ValueError("discovery needs thingplus.gateway_id and thingplus.apikey")
        self.gateway_id = config.gateway_id
        transport = HttpTransport.for_cloud(session, config, CLOUD, policy, clock, observer)
        self._core = CloudCore(
            transport,
            ApiKeyAuth(config.gateway_id, config.apikey),
            self._unwrap,
            policy=policy,
            sleep=sleep,
            rand=rand,
            clock=clock,
        )

    async def gateway(self) -> dict[str, Any]:
        """The gateway's record: its ``model`` and whether it may create devices (``autoCreateDiscoverable``)."""
        path = f"/gateways/{_seg(self.gateway_id)}"
        query = "fields=model&fields=autoCreateDiscoverable"
        return _dict(await self._core.call(Request("GET", path, "discovery_gateway", query=query)), "gateway")

    async def gateway_model(self, model_id: str) -> dict[str, Any]:
        """A gateway model: its device models, their sensors and actuators, the remote commands offered."""
        path = f"/gatewayModels/{_seg(model_id)}"
        return _dict(await self._core.call(Request("GET", path, "discovery_gateway_model")), "gateway_model")

    async def sensor_driver(self, driver_name: str) -> dict[str, Any]:
        """A sensor driver (its ``idTemplate``); PermanentError when the cloud has none of that name."""
        query = f"filter%5Bid%5D={_seg(driver_name)}"
        data = await self._core.call(
            Request("GET", "/sensorDrivers/", "discovery_sensor_driver", query=query)
        )
        drivers = data if isinstance(data, list) else [data]
        for driver in drivers:
            if isinstance(driver, dict) and driver.get("id") in (driver_name, None):
                return driver
        raise PermanentError(
            f"the cloud has no sensor driver {driver_name!r}",
            cloud=CLOUD,
            operation="discovery_sensor_driver",
        )

    async def register_device(self, device_id: str, *, name: str, model: str) -> Registration:
        body = {"reqId": device_id, "name": name, "model": model}
        return await self._register(f"/gateways/{_seg(self.gateway_id)}/devices", body, "discovery_device")

    async def register_sensor(
        self,
        sensor_id: str,
        *,
        device_id: str,
        name: str,
        spec: dict[str, str],
    ) -> Registration:
        """A sensor, or an actuator (``spec['category'] == 'actuator'``), of a device."""
        body = {
            "reqId": sensor_id,
            "category": spec.get("category", "sensor"),
            "type": spec["type"],
            "model": spec.get("model", ""),
            "driverName": spec.get("driverName", ""),
            "network": spec.get("network", ""),
            "name": name,
            "deviceId": device_id,
        }
        return await self._register(f"/gateways/{_seg(self.gateway_id)}/sensors", body, "discovery_sensor")

    async def _register(self, path: str, body: dict[str, Any], operation: str) -> Registration:
        try:
            data = await self._core.call(Request("POST", path, operation, body=dumps(body)))
        except AlreadyExistsError:
            log.debug("discovery.already_registered", operation=operation, req_id=body["reqId"])
            return Registration(created=False, data={})
        return Registration(created=True, data=data if isinstance(data, dict) else {})

    def _unwrap(self, resp: Response, request: Request) -> Any:
        payload = resp.json()
        if 200 <= resp.status < 300:
            if isinstance(payload, dict) and "data" in payload and len(payload) <= 3:
                return payload["data"]  # tolerate Thing+'s {statusCode, message, data} envelope
            return payload
        raise self._error(resp, request.operation)

    def _error(self, resp: Response, operation: str) -> CloudError:
        message, code = _describe(resp)
        status = resp.status
        kw: dict[str, Any] = {"cloud": CLOUD, "operation": operation, "status": status, "code": code}
        if status == 409:
            return AlreadyExistsError(message, **kw)
        if status == 401:
            return AuthError(f"the gateway id or API key was refused ({message}): {KEYS_TO_CHECK}", **kw)
        if status == PLAN_REFUSED:
            return PermanentError(
                f"the Thing+ plan forbids this ({message}): check the account's plan in the Thing+ portal",
                **kw,
            )
        return self._core.failure(status, message, resp, operation, code)


def refused_for_good(exc: CloudError) -> bool:
    """A 401 or 471: no retry helps, a person must change the inventory or the portal."""
    return exc.status in (401, PLAN_REFUSED)


def _dict(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise PermanentError(
            f"unexpected {what} answer: expected an object, got {type(data).__name__}",
            cloud=CLOUD,
            operation=f"discovery_{what}",
        )
    return data
