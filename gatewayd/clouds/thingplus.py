"""Thing+ REST v2 client: token lifecycle, registration, status heartbeats and sensor series.

Why it looks like this:

* **Token.** ``POST /v2/oauth2/token`` with the password grant; ``password`` is the md5 hex of the user's
  password. The document sends JSON, the vendor's OAuth2 page says form-encoded: we send JSON and fall back
  to a form when JSON is refused, then remember which one worked (also across restarts). The answer has no
  ``expires_in``; a password-grant token lives 90 days, so we renew after :data:`TOKEN_RENEW_AFTER_S`. The
  token is kept in a 0600 :class:`~gatewayd.statefile.StateFile`, tagged with endpoint, client id and
  username so that changing any of them invalidates it.
* **401.** Any call answered 401 gets one new token and one more try; a second 401 is an AuthError.
* **Errors.** Failures come in the envelope ``{"statusCode", "message", "errors": [{"code"}]}`` (or as plain
  text) and are mapped through :func:`~gatewayd.clouds.http.error_for_status`; a 409 on registration means
  the ``reqId`` already exists, which is success for us (:class:`Registration` with ``created=False``).
* **Strict sending.** Bodies have exactly the keys and order the document shows and are serialised once;
  transient failures (5xx, 429, timeouts) are retried with the client's policy, each attempt built anew.

Secrets (client secret, password hash, access token) never go into log events.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlencode

import aiohttp
import structlog

from gatewayd.clouds.http import (
    HttpTransport,
    RequestObserver,
    Response,
    RetryPolicy,
    error_for_status,
    parse_retry_after,
    with_retries,
)
from gatewayd.compat import zip_strict
from gatewayd.errors import AlreadyExistsError, CloudError, PermanentError, StorageError
from gatewayd.inventory.config import ThingPlusConfig
from gatewayd.statefile import StateFile

log = structlog.get_logger(__name__)

CLOUD = "thingplus"
TOKEN_PATH = "/v2/oauth2/token"
#: A password-grant token lives 90 days (vendor guide); renew a day early so a slow clock cannot bite.
TOKEN_LIFETIME_S = 90 * 86400.0
TOKEN_RENEW_AFTER_S = 89 * 86400.0
#: The only status values Thing+ accepts.
STATUS_VALUES = ("on", "off", "err")
#: Series times are unix milliseconds; anything below this (1973-03-03 in ms) is surely seconds.
MIN_TIME_MS = 10**11
#: Version of the token record layout in the token file.
TOKEN_RECORD_VERSION = 1

Encoding = Literal["json", "form"]
_OTHER_ENCODING: dict[Encoding, Encoding] = {"json": "form", "form": "json"}
_CONTENT_TYPE: dict[Encoding, str] = {
    "json": "application/json",
    "form": "application/x-www-form-urlencoded",
}
#: Token answers that mean "I did not understand that body": try the other encoding before giving up.
#: 401 is included because a server that does not parse JSON sees no client_id and refuses the client.
_ENCODING_REFUSED = (400, 401, 415)


@dataclass(frozen=True)
class Registration:
    """The result of a registration: ``created`` is False when the object already existed (409)."""

    created: bool
    data: dict[str, Any]


@dataclass(frozen=True)
class Token:
    """An access token and when we got it; the token itself is kept out of ``repr``."""

    token_type: str
    access_token: str = field(repr=False)
    obtained_at: float
    #: The ``Authorization`` header value, built once: every request sends it.
    header: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "header", f"{self.token_type} {self.access_token}")

    def authorization(self) -> str:
        """The ``Authorization`` header value: token type and token separated by one space."""
        return self.header

    def expired(self, now: float) -> bool:
        """True once the token is old enough that we renew it rather than wait for a 401."""
        return token_expired(self.obtained_at, now)


def token_expired(obtained_at: float, now: float) -> bool:
    """Whether a token obtained at ``obtained_at`` (unix s) should be renewed at ``now``."""
    return now >= obtained_at + TOKEN_RENEW_AFTER_S


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


class _EncodingRefused(Exception):
    """Internal: the token endpoint did not take this encoding; ``error`` is what to raise if none works."""

    def __init__(self, error: CloudError) -> None:
        super().__init__(str(error))
        self.error = error


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
        self._config = config
        self._transport = HttpTransport.for_cloud(session, config, CLOUD, policy, clock, observer)
        self._store = token_store
        self._policy = policy
        self._sleep = sleep
        self._clock = clock
        self._rand = rand
        self._token: Token | None = None
        self._encoding: Encoding = "json"
        self._store_loaded = False
        self._lock = asyncio.Lock()

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
                "thingplus_already_registered", operation=operation, req_id=body["reqId"], code=exc.code
            )
            return Registration(created=False, data={})
        log.debug("thingplus_registered", operation=operation, req_id=body["reqId"])
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
        body = _series_body(points)
        path = f"/v2/gateways/{_seg(gateway_id)}/sensors/{_seg(sensor_id)}/series"
        return _dict_or_empty(await self._call("PUT", path, operation="series", body=body))

    async def series_encoded(self, gateway_id: str, sensor_id: str, body: bytes) -> None:
        """:meth:`series` with the body already encoded by :func:`encode_series` (the upload hot path:
        the outbox keeps values as JSON text, so decoding and re-encoding them would be wasted work;
        the answer is not parsed when its HTTP status says success)."""
        path = f"/v2/gateways/{_seg(gateway_id)}/sensors/{_seg(sensor_id)}/series"
        await self._call("PUT", path, operation="series", body=body, want_data=False)

    # ------------------------------------------------------------------------------------------------
    # Token lifecycle

    async def authenticate(self) -> None:
        """Make sure a usable token is at hand (stored or new); for ``check`` commands and startup."""
        await with_retries(self._ensure_token, self._policy, sleep=self._sleep, rand=self._rand)

    async def _ensure_token(self) -> Token:
        """The current token: in memory, else from the token file, else a new one from the cloud."""
        token = self._token
        if token is not None and not token.expired(self._clock()):
            return token
        async with self._lock:
            if not self._store_loaded:
                self._store_loaded = True
                self._token = self._load_stored()
            token = self._token
            if token is not None and not token.expired(self._clock()):
                return token
            if token is not None:
                log.info(
                    "thingplus_token_expiring", age_days=round((self._clock() - token.obtained_at) / 86400)
                )
            return await self._obtain_token()

    async def _renew(self, stale: Token) -> Token:
        """A new token after ``stale`` was refused, unless a concurrent call already got one."""
        async with self._lock:
            current = self._token
            if current is not None and current is not stale and not current.expired(self._clock()):
                return current
            self._token = None
            return await self._obtain_token()

    async def _obtain_token(self) -> Token:
        """Ask for a token, in the remembered encoding first, then the other one. Caller holds the lock."""
        errors: list[CloudError] = []
        for encoding in (self._encoding, _OTHER_ENCODING[self._encoding]):
            try:
                token = await self._token_attempt(encoding)
            except _EncodingRefused as refused:
                log.info(
                    "thingplus_token_refused",
                    encoding=encoding,
                    status=refused.error.status,
                    code=refused.error.code,
                    message=refused.error.message,
                )
                errors.append(refused.error)
                continue
            if encoding != self._encoding:
                log.info("thingplus_token_encoding", encoding=encoding)
            self._encoding = encoding
            self._token = token
            log.info("thingplus_token_obtained", encoding=encoding, token_type=token.token_type)
            self._save(token)
            return token
        raise _most_telling(errors)

    async def _token_attempt(self, encoding: Encoding) -> Token:
        """One token request in one encoding."""
        fields = [
            ("grant_type", "password"),
            ("client_id", self._config.client_id),
            ("client_secret", self._config.client_secret.reveal()),
            ("username", self._config.username),
            ("password", self._config.password_hash().reveal()),
        ]
        body = _dumps(dict(fields)) if encoding == "json" else urlencode(fields).encode("ascii")
        resp = await self._transport.send(
            "POST",
            TOKEN_PATH,
            operation="token",
            headers={"Content-Type": _CONTENT_TYPE[encoding]},
            body=body,
        )
        if 200 <= resp.status < 300:
            token = self._parse_token(resp.json())
            if token is not None:
                return token
            raise _EncodingRefused(
                PermanentError(
                    "the token answer has no access_token",
                    cloud=CLOUD,
                    operation="token",
                    status=resp.status,
                )
            )
        error = self._error(resp.status, resp, "token")
        if resp.status in _ENCODING_REFUSED:
            raise _EncodingRefused(error)
        raise error

    def _parse_token(self, payload: Any) -> Token | None:
        if (
            isinstance(payload, dict)
            and isinstance(payload.get("data"), dict)
            and "access_token" not in payload
        ):
            payload = payload["data"]  # tolerate an enveloped answer
        if not isinstance(payload, dict):
            return None
        access = payload.get("access_token")
        if not isinstance(access, str) or not access:
            return None
        token_type = payload.get("token_type")
        if not isinstance(token_type, str) or not token_type.strip():
            token_type = "Bearer"
        return Token(token_type=token_type.strip(), access_token=access, obtained_at=self._clock())

    def _load_stored(self) -> Token | None:
        """The token from the token file, when it was issued for this endpoint, client and user."""
        if self._store is None:
            return None
        try:
            record = self._store.load()
        except StorageError as exc:
            log.warning("thingplus_token_store_unusable", error=str(exc))
            return None
        if record is None:
            return None
        wanted = self._identity()
        if any(record.get(key) != value for key, value in wanted.items()):
            log.info("thingplus_token_stale", reason="endpoint, client or user changed")
            return None
        encoding = record.get("encoding")
        if encoding in _CONTENT_TYPE:
            self._encoding = encoding
        access = record.get("access_token")
        token_type = record.get("token_type")
        obtained_at = record.get("obtained_at")
        if (
            not isinstance(access, str)
            or not access
            or not isinstance(token_type, str)
            or not token_type
            or not isinstance(obtained_at, (int, float))
            or isinstance(obtained_at, bool)
        ):
            log.warning("thingplus_token_stale", reason="incomplete token record")
            return None
        token = Token(token_type=token_type, access_token=access, obtained_at=float(obtained_at))
        log.info(
            "thingplus_token_loaded",
            age_days=round((self._clock() - token.obtained_at) / 86400, 1),
            expired=token.expired(self._clock()),
        )
        return token

    def _save(self, token: Token) -> None:
        """Keep the token for the next start; a state dir we cannot write costs a login, not the call."""
        if self._store is None:
            return
        record: dict[str, Any] = {
            **self._identity(),
            "token_type": token.token_type,
            "access_token": token.access_token,
            "obtained_at": token.obtained_at,
            "encoding": self._encoding,
        }
        try:
            self._store.save(record)
        except StorageError as exc:
            log.warning("thingplus_token_not_saved", error=str(exc))

    def _identity(self) -> dict[str, Any]:
        """What a stored token must match to be reused."""
        return {
            "version": TOKEN_RECORD_VERSION,
            "cloud": CLOUD,
            "endpoint": self._config.endpoint,
            "client_id": self._config.client_id,
            "username": self._config.username,
        }

    # ------------------------------------------------------------------------------------------------
    # One call: token, 401 renewal, transient retries, envelope

    async def _call(
        self, method: str, path: str, *, operation: str, body: Any = None, want_data: bool = True
    ) -> Any:
        """Send a call and return the envelope's ``data``; raise the mapped error on failure.

        ``want_data=False`` (heartbeats and series, thousands a minute) skips parsing a 2xx answer
        nobody reads: the HTTP status says it all.
        """
        payload = body if body is None or isinstance(body, bytes) else _dumps(body)
        renewed = False

        async def attempt() -> Any:
            nonlocal renewed
            token = await self._ensure_token()
            resp = await self._send(method, path, operation, token, payload)
            if resp.status == 401 and not renewed:
                renewed = True
                log.info("thingplus_token_rejected", operation=operation, message=_describe(resp)[0])
                token = await self._renew(token)
                resp = await self._send(method, path, operation, token, payload)
            if not want_data and 200 <= resp.status < 300:
                return {}
            return self._unwrap(resp, operation)

        return await with_retries(attempt, self._policy, sleep=self._sleep, rand=self._rand)

    async def _send(
        self, method: str, path: str, operation: str, token: Token, payload: bytes | None
    ) -> Response:
        headers = {"Authorization": token.authorization()}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        return await self._transport.send(method, path, operation=operation, headers=headers, body=payload)

    def _unwrap(self, resp: Response, operation: str) -> Any:
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
        retry_after = parse_retry_after(resp.headers.get("Retry-After"), self._clock())
        return error_for_status(
            status, message, cloud=CLOUD, operation=operation, code=code, retry_after=retry_after
        )


# ----------------------------------------------------------------------------------------------------
# Pure helpers


def _dumps(body: Any) -> bytes:
    """Compact JSON, serialised once: these exact bytes go on the wire (and on every retry)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


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
    return _dumps(_status_body(value, valid_duration_s))


def _status_body(value: str, valid_duration_s: int) -> dict[str, Any]:
    if value not in STATUS_VALUES:
        raise ValueError(f"status value must be one of {', '.join(STATUS_VALUES)}, got {value!r}")
    if isinstance(valid_duration_s, bool) or not isinstance(valid_duration_s, int) or valid_duration_s <= 0:
        raise ValueError(
            f"validDuration must be a positive whole number of seconds, got {valid_duration_s!r}"
        )
    return {"validDuration": valid_duration_s, "value": value}


def _series_body(points: Sequence[tuple[int, str | dict[str, Any]]]) -> dict[str, Any] | list[dict[str, Any]]:
    if not points:
        raise ValueError("series needs at least one point")
    items: list[dict[str, Any]] = []
    for when, value in points:
        if isinstance(when, bool) or not isinstance(when, int):
            raise ValueError(f"a point's time must be integer unix milliseconds, got {when!r}")
        if when < MIN_TIME_MS:
            raise ValueError(f"a point's time must be unix milliseconds, {when} looks like seconds")
        if not isinstance(value, (str, dict)):
            raise ValueError(
                f"a point's value must be a string (numbers as strings, e.g. '36.5') or an object, got {value!r}"
            )
        items.append({"value": value, "time": when})
    return items[0] if len(items) == 1 else items


def encode_series(times: Sequence[int], values_json: Sequence[str]) -> bytes:
    """The series body for points whose values are already JSON text (a string or an object).

    The same bytes :meth:`ThingPlusClient.series` sends: one point as the single object, several as an
    array, compact separators.
    """
    if not times:
        raise ValueError("series needs at least one point")
    items = [f'{{"value":{v},"time":{int(t)}}}' for t, v in zip_strict(times, values_json)]
    text = items[0] if len(items) == 1 else "[" + ",".join(items) + "]"
    return text.encode("utf-8")


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


def _most_telling(errors: list[CloudError]) -> CloudError:
    """Of the errors from both encodings, the one that says most about why: not 'unsupported type'."""
    for error in reversed(errors):
        if error.status is not None and error.status != 415 and not 200 <= error.status < 300:
            return error
    return errors[-1]


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
