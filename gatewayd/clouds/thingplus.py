"""Thing+ REST v2 client: registration, status heartbeats and sensor series, and Thing+'s envelope.

Why it looks like this:

* **Auth.** The password grant and its token file are :mod:`gatewayd.clouds.auth.thingplus`; retries and
  "401 → one new token, then AuthError" are the client core's (:mod:`gatewayd.clouds.core`).
* **Errors.** Failures come in the envelope ``{"statusCode", "message", "errors": [{"code"}]}`` (or as plain
  text) and are mapped through :func:`~gatewayd.clouds.http.error_for_status`; a 409 on registration means
  the ``reqId`` already exists, which is success for us (:class:`Registration` with ``created=False``).
* **Strict sending.** Bodies have exactly the keys and order the document shows and are serialised once;
  series bodies come from the one encoder, :mod:`gatewayd.clouds.series`, which checks them.
"""

from __future__ import annotations

import asyncio
import functools
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import structlog

from gatewayd.clouds.auth.thingplus import ThingPlusPassword
from gatewayd.clouds.core import CloudCore
from gatewayd.clouds.http import HttpTransport, RequestObserver, Response
from gatewayd.clouds.jsonbody import dumps
from gatewayd.clouds.request import Request
from gatewayd.clouds.retry import RetryPolicy
from gatewayd.clouds.series import encode_points, encode_series
from gatewayd.errors import AlreadyExistsError, CloudError, PermanentError
from gatewayd.inventory.config import ThingPlusConfig
from gatewayd.statefile import StateFile

log = structlog.get_logger(__name__)

__all__ = [
    "Registration",
    "ThingPlusClient",
    "encode_series",  # the uploader encodes series bodies with it, next to the client that sends them
    "report_interval_ms",
    "valid_duration_s",
]

CLOUD = "thingplus"
#: The only status values Thing+ accepts.
STATUS_VALUES = ("on", "off", "err")


@dataclass(frozen=True)
class Registration:
    """The result of a registration: ``created`` is False when the object already existed (409)."""

    created: bool
    data: dict[str, Any]


def report_interval_ms(record: Mapping[str, Any]) -> int | None:
    """``reportInterval`` of a gateway (or gateway model) record in ms; the document sends it as a string."""
    value = record.get("reportInterval")
    if isinstance(value, bool) or value is None:
        return None
    try:
        ms = int(float(value))
    except (TypeError, ValueError):
        return None
    return ms if ms > 0 else None


def valid_duration_s(interval_ms: int) -> int:
    """``validDuration`` for a status sent every ``interval_ms``: 1.5 x the interval, in whole seconds."""
    return max(1, math.ceil(interval_ms * 1.5 / 1000))


class ThingPlusClient:
    """Thing+ REST v2 over the daemon's shared ``ClientSession``. Every call has the transport's timeout."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        config: ThingPlusConfig,
        *,
        token_store: StateFile | None = None,
        policy: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        observer: RequestObserver | None = None,
    ) -> None:
        self._transport = transport = HttpTransport.for_cloud(session, config, CLOUD, policy, clock, observer)
        self._auth = ThingPlusPassword(transport, config, self._error, store=token_store, clock=clock)
        self._core = CloudCore(
            transport, self._auth, self._unwrap, policy=policy, sleep=sleep, rand=rand, clock=clock
        )

    # ------------------------------------------------------------------------------------------------
    # Reads

    async def sites(self) -> list[dict[str, Any]]:
        """The account's sites (``GET /v2/sites``): the gateway is registered into one of them."""
        return _list_of_dicts(await self._call("GET", "/v2/sites", operation="sites"), "sites")

    async def gateway_model(self, model_id: str) -> dict[str, Any]:
        """A gateway model: its device models and their sensors' type/driverName/model."""
        data = await self._call("GET", f"/v2/gatewayModels/{_seg(model_id)}", operation="gateway_model")
        return _dict(data, "gateway_model")

    async def gateway(self, gateway_id: str) -> dict[str, Any]:
        """The gateway record; its ``reportInterval`` (a string of ms) can change in the portal."""
        data = await self._call("GET", f"/v2/gateways/{_seg(gateway_id)}", operation="gateway")
        return _dict(data, "gateway")

    async def list_devices(self, gateway_id: str) -> list[dict[str, Any]]:
        """The devices Thing+ knows under a gateway, to reconcile with the inventory."""
        path = f"/v2/gateways/{_seg(gateway_id)}/devices"
        return _list_of_dicts(await self._call("GET", path, operation="list_devices"), "list_devices")

    async def list_sensors(self, gateway_id: str) -> list[dict[str, Any]]:
        """The sensors Thing+ knows under a gateway, to reconcile with the inventory."""
        path = f"/v2/gateways/{_seg(gateway_id)}/sensors"
        return _list_of_dicts(await self._call("GET", path, operation="list_sensors"), "list_sensors")

    # ------------------------------------------------------------------------------------------------
    # Registration (idempotent: reqId is our id; 409 means it is already there)

    async def register_gateway(self, gateway_id: str, *, name: str, site_id: str, model: str) -> Registration:
        """``POST /v2/registerGateway`` with the gateway id as ``reqId``."""
        body = {"reqId": gateway_id, "params": {"siteId": site_id, "model": model, "name": name}}
        return await self._register("/v2/registerGateway", body, operation="register_gateway")

    async def register_device(
        self, gateway_id: str, device_id: str, *, name: str, model: str
    ) -> Registration:
        """``POST /v2/gateways/{owner}/devices`` with the device id as ``reqId``."""
        body = {"reqId": device_id, "name": name, "model": model}
        path = f"/v2/gateways/{_seg(gateway_id)}/devices"
        return await self._register(path, body, operation="register_device")

    async def register_sensor(
        self,
        gateway_id: str,
        sensor_id: str,
        *,
        device_id: str,
        name: str,
        type: str,
        driver_name: str,
        model: str,
        category: str = "sensor",
    ) -> Registration:
        """``POST /v2/gateways/{owner}/sensors`` with the sensor id as ``reqId``."""
        body = {
            "reqId": sensor_id,
            "name": name,
            "type": type,
            "driverName": driver_name,
            "model": model,
            "category": category,
            "deviceId": device_id,
        }
        path = f"/v2/gateways/{_seg(gateway_id)}/sensors"
        return await self._register(path, body, operation="register_sensor")

    async def _register(self, path: str, body: dict[str, Any], *, operation: str) -> Registration:
        try:
            data = await self._call("POST", path, operation=operation, body=body)
        except AlreadyExistsError as exc:
            # debug: the registrar logs one line per gateway and device and one for all sensors
            log.debug(
                "thingplus.already_registered", operation=operation, req_id=body["reqId"], code=exc.code
            )
            return Registration(created=False, data={})
        log.debug("thingplus.registered", operation=operation, req_id=body["reqId"])
        return Registration(created=True, data=data if isinstance(data, dict) else {})

    # ------------------------------------------------------------------------------------------------
    # Status and series

    async def gateway_status(self, gateway_id: str, value: str, valid_duration_s: int) -> dict[str, Any]:
        """``PUT /v2/gateways/{id}/status``: the heartbeat, valid for ``valid_duration_s`` seconds."""
        body = _status_payload(value, valid_duration_s)
        path = f"/v2/gateways/{_seg(gateway_id)}/status"
        return _dict_or_empty(await self._call("PUT", path, operation="gateway_status", body=body))

    async def sensor_status(self, gateway_id: str, sensor_id: str, value: str, valid_duration_s: int) -> None:
        """``PUT /v2/gateways/{owner}/sensors/{id}/status``; one per sensor per interval, so the answer
        (which nobody reads) is not parsed when its HTTP status says success."""
        body = _status_payload(value, valid_duration_s)
        path = f"/v2/gateways/{_seg(gateway_id)}/sensors/{_seg(sensor_id)}/status"
        await self._call("PUT", path, operation="sensor_status", body=body, want_data=False)

    async def series(
        self, gateway_id: str, sensor_id: str, points: Sequence[tuple[int, str | dict[str, Any]]]
    ) -> dict[str, Any]:
        """``PUT /v2/gateways/{owner}/sensors/{id}/series``: one ``(time_ms, value)`` point or many.

        One point goes as the document's single object, several as an array. Values must already be
        strings (numbers as strings, e.g. ``"36.5"``) or objects; ``time`` is integer unix ms.
        """
        body = encode_points(points)
        path = f"/v2/gateways/{_seg(gateway_id)}/sensors/{_seg(sensor_id)}/series"
        return _dict_or_empty(await self._call("PUT", path, operation="series", body=body))

    async def series_encoded(self, gateway_id: str, sensor_id: str, body: bytes) -> None:
        """:meth:`series` with the body already encoded by :func:`encode_series` (the upload hot path: the
        outbox keeps values as JSON text, so decoding and re-encoding them would be wasted work; the
        answer is not parsed when its HTTP status says success)."""
        path = f"/v2/gateways/{_seg(gateway_id)}/sensors/{_seg(sensor_id)}/series"
        await self._call("PUT", path, operation="series", body=body, want_data=False)

    # ------------------------------------------------------------------------------------------------
    # Token and calls

    async def authenticate(self) -> None:
        """Make sure a usable token is at hand (stored or new); for ``check`` commands and startup."""
        await self._core.retrying(self._auth.token)

    async def _call(
        self, method: str, path: str, *, operation: str, body: Any = None, want_data: bool = True
    ) -> Any:
        """Send a call and return the envelope's ``data``; raise the mapped error on failure.

        ``want_data=False`` (heartbeats and series, thousands a minute) skips parsing a 2xx answer
        nobody reads: the HTTP status says it all.
        """
        payload = body if body is None or isinstance(body, bytes) else dumps(body)
        return await self._core.call(Request(method, path, operation, body=payload, want_data=want_data))

    # ------------------------------------------------------------------------------------------------
    # The envelope

    def _unwrap(self, resp: Response, request: Request) -> Any:
        if not request.want_data and 200 <= resp.status < 300:
            return {}
        return self._data(resp, request.operation)

    def _data(self, resp: Response, operation: str) -> Any:
        payload = resp.json()
        status = resp.status
        envelope_status = payload.get("statusCode") if isinstance(payload, dict) else None
        if (
            200 <= status < 300
            and isinstance(envelope_status, int)
            and not isinstance(envelope_status, bool)
            and envelope_status >= 400
        ):
            status = envelope_status  # an HTTP 200 whose envelope says it failed
        if 200 <= status < 300:
            if isinstance(payload, dict) and "data" in payload:
                return payload["data"]
            return payload
        raise self._error(status, resp, operation)

    def _error(self, status: int, resp: Response, operation: str) -> CloudError:
        message, code = _describe(resp)
        if status == 409:
            return AlreadyExistsError(message, cloud=CLOUD, operation=operation, status=status, code=code)
        return self._core.failure(status, message, resp, operation, code)


# ----------------------------------------------------------------------------------------------------
# Pure helpers


def _seg(value: str) -> str:
    """One path segment, percent-encoded (the transport sends paths as given).

    Ids are 32 hex digits, two per request at thousands of requests a second: those skip ``quote``.
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"an id must be a non-empty string, got {value!r}")
    if value.isascii() and value.isalnum():
        return value
    return quote(value, safe="")


@functools.lru_cache(maxsize=16, typed=True)  # typed: True is not a valid 1 s validDuration
def _status_payload(value: str, valid_duration_s: int) -> bytes:
    """A status body, encoded: a round sends the same few bodies to every sensor, built once each."""
    return dumps(_status_body(value, valid_duration_s))


def _status_body(value: str, valid_duration_s: int) -> dict[str, Any]:
    if value not in STATUS_VALUES:
        raise ValueError(f"status value must be one of {', '.join(STATUS_VALUES)}, got {value!r}")
    if isinstance(valid_duration_s, bool) or not isinstance(valid_duration_s, int) or valid_duration_s <= 0:
        raise ValueError(
            f"validDuration must be a positive whole number of seconds, got {valid_duration_s!r}"
        )
    return {"validDuration": valid_duration_s, "value": value}


_WS = re.compile(r"\s+")


def _describe(resp: Response) -> tuple[str, str | int | None]:
    """The cloud's message and error code from an envelope, an OAuth2 error, or a plain-text body."""
    payload = resp.json()
    message = ""
    code: str | int | None = None
    if isinstance(payload, dict):
        for key in ("message", "error_description", "error", "name"):
            value = payload.get(key)
            if isinstance(value, str) and value.strip():
                message = value.strip()
                break
        errors = payload.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0].get("code")
            if isinstance(first, (str, int)) and not isinstance(first, bool):
                code = first
            detail = errors[0].get("message")
            if isinstance(detail, str) and detail.strip():  # more telling than "Not Found"
                message = detail.strip()
        if code is None:
            for key in ("name", "error"):  # {"name": "TokenExpiredError"}, OAuth2 {"error": "invalid_grant"}
                value = payload.get(key)
                if isinstance(value, str) and value:
                    code = value
                    break
    elif payload is None:
        message = _WS.sub(" ", resp.text).strip()[:200]
    if not message:
        message = f"HTTP {resp.status}"
    return message, code


def _dict(data: Any, operation: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise PermanentError(
            f"unexpected answer: expected an object, got {type(data).__name__}",
            cloud=CLOUD,
            operation=operation,
        )
    return data


def _dict_or_empty(data: Any) -> dict[str, Any]:
    """Status and series answers are informational: a 2xx is what matters."""
    return data if isinstance(data, dict) else {}


def _list_of_dicts(data: Any, operation: str) -> list[dict[str, Any]]:
    if not isinstance(data, list):
        raise PermanentError(
            f"unexpected answer: expected a list, got {type(data).__name__}", cloud=CLOUD, operation=operation
        )
    return [item for item in data if isinstance(item, dict)]
