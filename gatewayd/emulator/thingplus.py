"""An emulated Thing+ REST v2 (HTTPS + OAuth2), written from the vendor's interworking guide.

It checks what the document (and ``shared/specs/README.md``) says the real platform checks, and
records everything it accepts so tests can look:

* ``POST /v2/oauth2/token``: password grant; ``password`` must be the md5 hex of the user's password.
  JSON or form body; client credentials in the body or as HTTP Basic. Answers ``{access_token,
  token_type}`` outside the envelope; bad credentials 401.
* Every other call needs ``Authorization: Bearer <token>``: missing or unknown answers 401 ``Access
  denied``, an expired one 401 ``{"name": "TokenExpiredError", "message": "jwt expired"}``.
* ``GET /v2/sites``, ``GET /v2/gatewayModels/{id}`` (only ``52``, the Open API Gateway),
  ``POST /v2/registerGateway``, ``GET /v2/gateways[/{id}]``,
  ``POST|GET /v2/gateways/{owner}/devices``, ``POST|GET /v2/gateways/{owner}/sensors``,
  ``PUT /v2/gateways/{id}/status``, ``PUT /v2/gateways/{owner}/sensors/{id}/status``,
  ``PUT /v2/gateways/{owner}/sensors/{id}/series`` (one point or an array).
* Answers in the envelope ``{statusCode, message, data}``; failures carry ``errors: [{code, message}]``
  with codes ``SCHEMA_VALIDATE`` (wrong type, missing or extra key, bad reqId), ``INVALID_INPUT``
  (well formed but wrong: a sensor triple not in the model, a device of another gateway, a stale
  point), ``NOT_FOUND`` and ``CONFLICT`` (a reqId that exists).

Nothing here comes from gatewayd's own Thing+ client: the emulator must not share its mistakes.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import logging
import math
import re
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

import structlog
from aiohttp import web

from gatewayd.inventory.config import ThingPlusConfig

log = structlog.get_logger(__name__)
_stdlib_log = logging.getLogger(__name__)

GATEWAY_MODEL_ID = "52"
DEVICE_MODEL_ID = "open-api-device-v1.0"
#: A password-grant token lives 90 days.
TOKEN_LIFETIME_S = 90 * 86400.0

#: Sensor types of the Open API device model: (type, model). The document lists temperature, humidity
#: and conductivity (and elides the rest); the others follow the same naming. Clients should read
#: the list from ``GET /v2/gatewayModels/52`` rather than assume it.
SENSOR_TYPES: tuple[tuple[str, str], ...] = (
    ("temperature", "openApiTemp"),
    ("humidity", "openApiHumi"),
    ("conductivity", "openApiConductivity"),
    ("number", "openApiNumber"),
    ("percent", "openApiPercent"),
    ("string", "openApiString"),
    ("onoff", "openApiOnoff"),
    ("voltage", "openApiVoltage"),
    ("current", "openApiCurrent"),
    ("power", "openApiPower"),
    ("pressure", "openApiPressure"),
    ("co2", "openApiCo2"),
    ("co", "openApiCo"),
    ("light", "openApiLight"),
    ("noise", "openApiNoise"),
    ("dust", "openApiDust"),
    ("battery", "openApiBattery"),
    ("count", "openApiCount"),
    ("weight", "openApiWeight"),
    ("location", "openApiLocation"),
)
DRIVER_NAME = "openApiSensor"
NETWORK = "daliworks"

#: Types whose value is free text or an object; every other type needs a numeric string.
_FREE_TYPES = frozenset({"string", "onoff", "location"})
_REQ_ID = re.compile(r"^[0-9a-f]{32}$")
_MD5_HEX = re.compile(r"^[0-9a-f]{32}$")
_STATUS_VALUES = ("on", "off", "err")
_MAX_DEVICES = 99

_REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Point(NamedTuple):
    """One accepted series point: the sensor's ``time`` (unix ms), its value, and when it arrived (ms).

    A named tuple: a run keeps millions, and one is 64 bytes (a frozen dataclass with its ``__dict__``,
    ~350) and quick to make.
    """

    time: int
    value: str | dict[str, Any]
    received: int


class StatusRecord(NamedTuple):
    """One accepted status: when it arrived (unix ms), the value, validDuration (s) and expireAt (ms)."""

    received: int
    value: str
    valid_duration: int
    expire_at: int


class _Reject(Exception):
    """A refusal in the envelope: ``{statusCode, message, errors: [{code, message}]}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> web.Response:
        return web.json_response(
            {
                "statusCode": self.status,
                "message": _REASONS.get(self.status, "Error"),
                "errors": [{"code": self.code, "message": self.message}],
            },
            status=self.status,
        )


class _Denied(_Reject):
    """A 401 for the bearer token; the real platform answers these outside the envelope."""

    def __init__(self, expired: bool, message: str) -> None:
        super().__init__(401, "TOKEN_EXPIRED" if expired else "ACCESS_DENIED", message)
        self.expired = expired

    def response(self) -> web.Response:
        if self.expired:
            return web.json_response({"name": "TokenExpiredError", "message": "jwt expired"}, status=401)
        return web.Response(status=401, text="Access denied")


class _OAuthError(_Reject):
    """A token-endpoint refusal, OAuth2 style: ``{error, error_description}``."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(status, error, description)

    def response(self) -> web.Response:
        return web.json_response({"error": self.code, "error_description": self.message}, status=self.status)


def _schema(message: str) -> _Reject:
    return _Reject(400, "SCHEMA_VALIDATE", message)


def _invalid(message: str) -> _Reject:
    return _Reject(400, "INVALID_INPUT", message)


def _not_found(message: str) -> _Reject:
    return _Reject(404, "NOT_FOUND", message)


def _conflict(message: str) -> _Reject:
    return _Reject(409, "CONFLICT", message)


#: ``json.dumps`` without its per-call argument checks and cycle check (answers are trees): the same text.
_dumps = json.JSONEncoder(check_circular=False).encode


def _ok(data: Any, status: int = 200) -> web.Response:
    """The envelope ``{statusCode, message, data}``, as ``json_response`` would write it.

    Only ``data`` is encoded per call: the head of the envelope is the same for every answer of a status.
    """
    text = f'{{"statusCode": {status}, "message": "{_REASONS[status]}", "data": {_dumps(data)}}}'
    return web.Response(text=text, status=status, content_type="application/json")


class ThingPlusEmulator:
    """The emulated Thing+ cloud: its routes, its state, and what tests need to look at.

    Inspect after requests: :attr:`gateways`, :attr:`devices`, :attr:`sensors` (records as the API
    answers them), :attr:`points` (sensor id -> accepted points, in arrival order, duplicates kept),
    :attr:`gateway_statuses` / :attr:`sensor_statuses` (id -> accepted statuses), :attr:`requests`
    (count of requests by kind) and :attr:`rejections` (``"kind:CODE"`` -> count).
    """

    cloud = "thingplus"

    def __init__(
        self,
        config: ThingPlusConfig,
        *,
        report_interval_ms: int = 60000,
        clock: Callable[[], float] = time.time,
        site_id: str = "1",
        token_lifetime_s: float = TOKEN_LIFETIME_S,
        series_max_age_s: float | None = None,
    ) -> None:
        _check_interval(report_interval_ms)
        self._client_id = config.client_id
        self._client_secret = config.client_secret.reveal()
        self._username = config.username
        if config.password_md5 is not None:
            self._password_md5 = config.password_md5.reveal().lower()
        else:
            assert config.password is not None
            self._password_md5 = hashlib.md5(config.password.reveal().encode("utf-8")).hexdigest()
        self._clock = clock
        self.site_id = site_id
        self.report_interval_ms = report_interval_ms
        self.token_lifetime_s = token_lifetime_s
        #: Points older than this (by their ``time``) are refused with 400 INVALID_INPUT; None: no limit.
        self.series_max_age_s = series_max_age_s
        #: Token request encodings accepted: "json" and/or "form" (the guide shows JSON, its OAuth2 page form).
        self.token_encodings: frozenset[str] = frozenset({"json", "form"})
        self._created_ms = self._now_ms()

        self._tokens: dict[str, float] = {}  # live token -> issued at (clock seconds)
        self._expired: set[str] = set()
        self.tokens_issued = 0

        self.gateways: dict[str, dict[str, Any]] = {}
        self.devices: dict[str, dict[str, Any]] = {}
        self.sensors: dict[str, dict[str, Any]] = {}
        self.points: dict[str, list[Point]] = {}
        self.gateway_statuses: dict[str, list[StatusRecord]] = {}
        self.sensor_statuses: dict[str, list[StatusRecord]] = {}
        self.requests: Counter[str] = Counter()
        self.rejections: Counter[str] = Counter()

    # -- the shared emulator interface ------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        r = self._route
        # The reporting calls come first: aiohttp tries the resources under ``/v2/gateways`` in the order
        # they were added (no path matches two of them, so the order changes nothing else).
        return [
            web.put("/v2/gateways/{owner}/sensors/{id}/series", r("series", self._series)),
            web.put("/v2/gateways/{owner}/sensors/{id}/status", r("sensor_status", self._sensor_status)),
            web.put("/v2/gateways/{id}/status", r("gateway_status", self._gateway_status)),
            web.post("/v2/oauth2/token", r("token", self._token, auth=False)),
            web.get("/v2/sites", r("sites", self._sites)),
            web.get("/v2/gatewayModels/{id}", r("gateway_model", self._gateway_model)),
            web.post("/v2/registerGateway", r("register_gateway", self._register_gateway)),
            web.get("/v2/gateways", r("list_gateways", self._list_gateways)),
            web.get("/v2/gateways/{id}", r("get_gateway", self._get_gateway)),
            web.post("/v2/gateways/{owner}/devices", r("register_device", self._register_device)),
            web.get("/v2/gateways/{owner}/devices", r("list_devices", self._list_devices)),
            web.get("/v2/gateways/{owner}/devices/{id}", r("get_device", self._get_device)),
            web.post("/v2/gateways/{owner}/sensors", r("register_sensor", self._register_sensor)),
            web.get("/v2/gateways/{owner}/sensors", r("list_sensors", self._list_sensors)),
            web.get("/v2/gateways/{owner}/sensors/{id}", r("get_sensor", self._get_sensor)),
        ]

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state: registered objects, per-sensor counts and latest values, request counts."""
        return {
            "report_interval_ms": self.report_interval_ms,
            "tokens": {
                "issued": self.tokens_issued,
                "live": len(self._tokens),
                "expired": len(self._expired),
            },
            "requests": dict(self.requests),
            "rejections": dict(self.rejections),
            "gateways": [
                {
                    **gw,
                    "statuses": len(self.gateway_statuses.get(gid, [])),
                    "latest_status": _status_view(self.gateway_statuses.get(gid)),
                }
                for gid, gw in self.gateways.items()
            ],
            "devices": list(self.devices.values()),
            "sensors": [
                {
                    **sensor,
                    "points": len(self.points.get(sid, [])),
                    "latest": self.latest(sid),
                    "statuses": len(self.sensor_statuses.get(sid, [])),
                    "latest_status": _status_view(self.sensor_statuses.get(sid)),
                }
                for sid, sensor in self.sensors.items()
            ],
        }

    def expire_tokens(self) -> None:
        """Invalidate every token issued so far: the next call with one gets 401 ``jwt expired``."""
        self._expired.update(self._tokens)
        count = len(self._tokens)
        self._tokens.clear()
        log.info("emulator.thingplus.tokens_expired", count=count)

    # -- knobs and inspection for tests -----------------------------------------------------------

    def set_report_interval(self, ms: int, gateway_id: str | None = None) -> None:
        """Change reportInterval as the portal would: for one gateway, or for the model and all gateways."""
        _check_interval(ms)
        if gateway_id is not None:
            if gateway_id not in self.gateways:
                raise KeyError(gateway_id)
            targets = [self.gateways[gateway_id]]
        else:
            self.report_interval_ms = ms
            targets = list(self.gateways.values())
        now = self._now_ms()
        for gateway in targets:
            gateway["reportInterval"] = str(ms)
            gateway["mtime"] = now
        log.info("emulator.thingplus.report_interval_set", ms=ms, gateway=gateway_id or "all")

    def delete_gateway(self, gateway_id: str) -> dict[str, int]:
        """Delete a gateway with its devices and sensors, as the portal does: from then on every call
        naming it answers 404 NOT_FOUND until it is registered again. The points and statuses received
        so far stay in :attr:`points` and the status histories, so a test can still count every delivery.
        """
        if gateway_id not in self.gateways:
            raise KeyError(gateway_id)
        del self.gateways[gateway_id]
        devices = [d for d, device in self.devices.items() if device["owner"] == gateway_id]
        sensors = [s for s, sensor in self.sensors.items() if sensor["owner"] == gateway_id]
        for device_id in devices:
            del self.devices[device_id]
        for sensor_id in sensors:
            del self.sensors[sensor_id]
        log.info(
            "emulator.thingplus.gateway_deleted",
            gateway=gateway_id,
            devices=len(devices),
            sensors=len(sensors),
        )
        return {"devices": len(devices), "sensors": len(sensors)}

    def latest(self, sensor_id: str) -> dict[str, Any] | None:
        """The point with the greatest ``time`` received for a sensor (last arrival wins a tie)."""
        points = self.points.get(sensor_id)
        if not points:
            return None
        best = max(reversed(points), key=lambda p: p.time)
        return {"time": best.time, "value": best.value}

    def series(self, sensor_id: str) -> list[tuple[int, str | dict[str, Any]]]:
        """A sensor's points as the platform would keep them: one value per time (last write wins), sorted."""
        by_time: dict[int, str | dict[str, Any]] = {}
        for point in self.points.get(sensor_id, []):
            by_time[point.time] = point.value
        return sorted(by_time.items(), key=lambda item: item[0])

    def issue_token(self) -> str:
        """A fresh valid token, as if the token endpoint had been called."""
        header = _b64(json.dumps({"typ": "JWT", "alg": "HS256"}))
        issued = self._clock()
        payload = _b64(
            json.dumps(
                {
                    "userId": "1",
                    "clientId": self._client_id,
                    "iat": int(issued),
                    "exp": int(issued + self.token_lifetime_s),
                    "jti": secrets.token_hex(8),
                }
            )
        )
        token = f"{header}.{payload}.{_b64(secrets.token_bytes(32))}"
        self._tokens[token] = issued
        self.tokens_issued += 1
        return token

    # -- plumbing ---------------------------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _route(self, kind: str, fn: Handler, *, auth: bool = True) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            self.requests[kind] += 1
            try:
                if auth:
                    self._authorize(request)
                return await fn(request)
            except _Reject as exc:
                self.rejections[f"{kind}:{exc.code}"] += 1
                log.info(
                    "emulator.thingplus.rejected",
                    kind=kind,
                    method=request.method,
                    path=request.path,
                    status=exc.status,
                    code=exc.code,
                    reason=exc.message,
                )
                return exc.response()

        return handler

    def _authorize(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _Denied(False, "no bearer token")
        if token in self._expired:
            raise _Denied(True, "token expired")
        issued = self._tokens.get(token)
        if issued is None:
            raise _Denied(False, "unknown token")
        if self._clock() - issued >= self.token_lifetime_s:
            del self._tokens[token]
            self._expired.add(token)
            raise _Denied(True, "token past its lifetime")

    async def _json(self, request: web.Request) -> Any:
        raw = await request.read()
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _schema("body is not valid JSON") from None

    def _gateway(self, gateway_id: str) -> dict[str, Any]:
        gateway = self.gateways.get(gateway_id)
        if gateway is None:
            raise _not_found(f"gateway {gateway_id} not found")
        return gateway

    def _owned_sensor(self, owner: str, sensor_id: str) -> dict[str, Any]:
        self._gateway(owner)
        sensor = self.sensors.get(sensor_id)
        if sensor is None or sensor["owner"] != owner:
            raise _not_found(f"sensor {sensor_id} not found under gateway {owner}")
        return sensor

    # -- token ------------------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        content_type = request.content_type
        params: dict[str, Any]
        if content_type == "application/x-www-form-urlencoded":
            if "form" not in self.token_encodings:
                raise _OAuthError(400, "invalid_request", "form-encoded token requests are not accepted")
            try:
                params = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
            except UnicodeDecodeError:
                raise _OAuthError(400, "invalid_request", "body is not UTF-8") from None
        else:
            if "json" not in self.token_encodings:
                raise _OAuthError(400, "invalid_request", "JSON token requests are not accepted")
            try:
                body = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                raise _OAuthError(400, "invalid_request", "body is neither JSON nor a form") from None
            if not isinstance(body, dict):
                raise _OAuthError(400, "invalid_request", "body must be an object")
            params = body
        basic = _basic_credentials(request.headers.get("Authorization", ""))
        if basic is not None:
            params.setdefault("client_id", basic[0])
            params.setdefault("client_secret", basic[1])

        grant = params.get("grant_type")
        if grant is None:
            raise _OAuthError(400, "invalid_request", "grant_type is missing")
        if grant != "password":
            raise _OAuthError(400, "unsupported_grant_type", f"grant_type {grant!r} is not supported")
        for key in ("client_id", "client_secret", "username", "password"):
            if not isinstance(params.get(key), str) or not params[key]:
                raise _OAuthError(400, "invalid_request", f"{key} is missing")
        if params["client_id"] != self._client_id or not secrets.compare_digest(
            params["client_secret"].encode(), self._client_secret.encode()
        ):
            raise _OAuthError(401, "invalid_client", "client authentication failed")
        password = params["password"]
        if not _MD5_HEX.match(password):
            raise _OAuthError(401, "invalid_grant", "password must be the md5 hex of the user's password")
        if params["username"] != self._username or not secrets.compare_digest(
            password.encode(), self._password_md5.encode()
        ):
            raise _OAuthError(401, "invalid_grant", "invalid resource owner credentials")
        token = self.issue_token()
        log.info(
            "emulator.thingplus.token_issued", client_id=self._client_id, encoding=_encoding(content_type)
        )
        return web.json_response({"access_token": token, "token_type": "Bearer"})

    # -- sites and models -------------------------------------------------------------------------

    async def _sites(self, request: web.Request) -> web.StreamResponse:
        created = str(self._created_ms)
        site = {
            "billing": f"site:{self.site_id}",
            "code": "iot-service",
            "ctime": created,
            "_service": "1",
            "billingReserve": f"site:{self.site_id}:reserve",
            "billingLimit": f"site:{self.site_id}:limit",
            "name": "default",
            "id": self.site_id,
            "billingMeter": f"site:{self.site_id}:meter",
            "mtime": created,
            "billingCurrent": f"site:{self.site_id}:current",
        }
        return _ok([site])

    async def _gateway_model(self, request: web.Request) -> web.StreamResponse:
        model_id = request.match_info["id"]
        if model_id != GATEWAY_MODEL_ID:
            raise _not_found(f"gateway model {model_id} not found")
        return _ok(self.gateway_model())

    def gateway_model(self) -> dict[str, Any]:
        """The Open API Gateway model (id 52) as ``GET /v2/gatewayModels/52`` answers it."""
        created = str(self._created_ms)
        return {
            "reportInterval": str(self.report_interval_ms),
            "displayName": "Open API Gateway",
            "id": GATEWAY_MODEL_ID,
            "model": "open-api-gateway-v1.0",
            "deviceModels": [
                {
                    "id": DEVICE_MODEL_ID,
                    "displayName": "Open API Device",
                    "idTemplate": "{gatewayId}-{deviceAddress}",
                    "discoverable": "y",
                    "sensors": [
                        {
                            "network": NETWORK,
                            "driverName": DRIVER_NAME,
                            "model": model,
                            "type": kind,
                            "category": "sensor",
                        }
                        for kind, model in SENSOR_TYPES
                    ],
                    "max": _MAX_DEVICES,
                }
            ],
            "gatewayIdConfig": "n",
            "mtime": created,
            "idFormat": "uuid",
            "vendor": "OPEN API",
            "ctime": created,
            "deviceMgmt": {
                "reportInterval": {"show": "y", "change": "y"},
                "DM": {
                    name: {"support": "n"} for name in ("poweroff", "reboot", "restart", "swUpdate", "swInfo")
                },
            },
        }

    # -- gateways ---------------------------------------------------------------------------------

    async def _register_gateway(self, request: web.Request) -> web.StreamResponse:
        body = await self._json(request)
        _keys(body, "body", required=("reqId", "params"))
        req_id = _req_id(body["reqId"])
        params = body["params"]
        _keys(params, "params", required=("siteId", "model", "name"))
        site = _string(params, "siteId", "params")
        model = _string(params, "model", "params")
        name = _string(params, "name", "params")
        if site != self.site_id:
            raise _not_found(f"site {site} not found")
        if model != GATEWAY_MODEL_ID:
            raise _not_found(f"gateway model {model} not found")
        if req_id in self.gateways:
            raise _conflict(f"gateway {req_id} already exists")
        now = self._now_ms()
        gateway = {
            "name": name,
            "model": model,
            "_site": site,
            "_service": "1",
            "reportInterval": str(self.report_interval_ms),
            "mtime": now,
            "ctime": now,
            "tree": req_id,
            "id": req_id,
        }
        self.gateways[req_id] = gateway
        log.info("emulator.thingplus.gateway_registered", gateway=req_id, name=name)
        return _ok(dict(gateway), 201)

    async def _list_gateways(self, request: web.Request) -> web.StreamResponse:
        return _ok([dict(g) for g in self.gateways.values()])

    async def _get_gateway(self, request: web.Request) -> web.StreamResponse:
        return _ok(dict(self._gateway(request.match_info["id"])))

    async def _gateway_status(self, request: web.Request) -> web.StreamResponse:
        gateway_id = request.match_info["id"]
        body = await self._json(request)
        self._gateway(gateway_id)
        value, valid_duration = _status_body(body)
        record = self._record_status(self.gateway_statuses, gateway_id, value, valid_duration)
        history = self.gateway_statuses[gateway_id]
        data = {
            "type": "status",
            "value": value,
            "srcDbType": "gateway",
            "time": str(record.received),
            "expireAt": str(record.expire_at),
            "vtime": str(record.received),
            "status": gateway_id,
            "owner": gateway_id,
            "gateway": gateway_id,
            "mtime": str(record.received),
            "ctime": str(history[0].received),
            "id": f"status.gateway.{_short(gateway_id)}",
        }
        return _ok(data)

    # -- devices ----------------------------------------------------------------------------------

    async def _register_device(self, request: web.Request) -> web.StreamResponse:
        owner = request.match_info["owner"]
        body = await self._json(request)
        _keys(body, "body", required=("reqId", "name", "model"))
        req_id = _req_id(body["reqId"])
        name = _string(body, "name", "body")
        model = _string(body, "model", "body")
        gateway = self._gateway(owner)
        if model != DEVICE_MODEL_ID:
            raise _invalid(
                f"device model {model!r} is not a device model of gateway model {gateway['model']}"
            )
        if req_id in self.devices:
            raise _conflict(f"device {req_id} already exists")
        if sum(1 for d in self.devices.values() if d["owner"] == owner) >= _MAX_DEVICES:
            raise _invalid(f"gateway {owner} already has the most devices its model allows ({_MAX_DEVICES})")
        now = self._now_ms()
        device = {
            "name": name,
            "model": model,
            "owner": owner,
            "_site": gateway["_site"],
            "_service": "1",
            "mtime": now,
            "ctime": now,
            "id": req_id,
        }
        self.devices[req_id] = device
        log.info("emulator.thingplus.device_registered", gateway=owner, device=req_id, name=name)
        return _ok(dict(device), 201)

    async def _list_devices(self, request: web.Request) -> web.StreamResponse:
        owner = request.match_info["owner"]
        self._gateway(owner)
        return _ok([dict(d) for d in self.devices.values() if d["owner"] == owner])

    async def _get_device(self, request: web.Request) -> web.StreamResponse:
        owner, device_id = request.match_info["owner"], request.match_info["id"]
        self._gateway(owner)
        device = self.devices.get(device_id)
        if device is None or device["owner"] != owner:
            raise _not_found(f"device {device_id} not found under gateway {owner}")
        return _ok(dict(device))

    # -- sensors ----------------------------------------------------------------------------------

    async def _register_sensor(self, request: web.Request) -> web.StreamResponse:
        owner = request.match_info["owner"]
        body = await self._json(request)
        fields = ("reqId", "name", "type", "driverName", "model", "category", "deviceId")
        _keys(body, "body", required=fields)
        req_id = _req_id(body["reqId"])
        name, kind, driver, model, category, device_id = (_string(body, key, "body") for key in fields[1:])
        self._gateway(owner)
        device = self.devices.get(device_id)
        if device is None:
            raise _not_found(f"device {device_id} not found")
        if device["owner"] != owner:
            raise _invalid(f"device {device_id} belongs to another gateway, not {owner}")
        if category != "sensor":
            raise _invalid(
                f"category must be 'sensor' (actuators are not supported over HTTPS), not {category!r}"
            )
        expected = dict(SENSOR_TYPES).get(kind)
        if expected is None:
            raise _invalid(f"sensor type {kind!r} is not in device model {device['model']}")
        if driver != DRIVER_NAME or model != expected:
            raise _invalid(
                f"sensor type {kind!r} needs driverName {DRIVER_NAME!r} and model {expected!r}, "
                f"not {driver!r} and {model!r}"
            )
        if req_id in self.sensors:
            raise _conflict(f"sensor {req_id} already exists")
        now = self._now_ms()
        sensor = {
            "name": name,
            "type": kind,
            "driverName": driver,
            "model": model,
            "category": category,
            "deviceId": device_id,
            "owner": owner,
            "mtime": now,
            "ctime": now,
            "id": req_id,
        }
        self.sensors[req_id] = sensor
        log.info(
            "emulator.thingplus.sensor_registered", gateway=owner, device=device_id, sensor=req_id, type=kind
        )
        return _ok(dict(sensor), 201)

    async def _list_sensors(self, request: web.Request) -> web.StreamResponse:
        owner = request.match_info["owner"]
        self._gateway(owner)
        return _ok([dict(s) for s in self.sensors.values() if s["owner"] == owner])

    async def _get_sensor(self, request: web.Request) -> web.StreamResponse:
        return _ok(dict(self._owned_sensor(request.match_info["owner"], request.match_info["id"])))

    async def _sensor_status(self, request: web.Request) -> web.StreamResponse:
        owner, sensor_id = request.match_info["owner"], request.match_info["id"]
        body = await self._json(request)
        sensor = self._owned_sensor(owner, sensor_id)
        value, valid_duration = _status_body(body)
        record = self._record_status(self.sensor_statuses, sensor_id, value, valid_duration)
        history = self.sensor_statuses[sensor_id]
        sensor["status"] = f"status.sensor.{_short(sensor_id)}"
        data = {
            "type": "status",
            "value": value,
            "srcType": sensor["type"],
            "srcCategory": "sensor",
            "srcDbType": "sensor",
            "time": str(record.received),
            "expireAt": str(record.expire_at),
            "vtime": str(history[0].received),
            "status": sensor_id,
            "owner": owner,
            "sensor": sensor_id,
            "mtime": str(record.received),
            "ctime": str(history[0].received),
            "id": sensor["status"],
        }
        return _ok(data)

    async def _series(self, request: web.Request) -> web.StreamResponse:
        owner, sensor_id = request.match_info["owner"], request.match_info["id"]
        body = await self._json(request)
        sensor = self._owned_sensor(owner, sensor_id)
        many = isinstance(body, list)
        items = body if many else [body]
        if many and not items:
            raise _schema("body must hold at least one point")
        now = self._now_ms()
        points = [
            self._point(item, f"body[{i}]" if many else "body", sensor["type"], now)
            for i, item in enumerate(items)
        ]
        history = self.points.setdefault(sensor_id, [])
        first_ms = history[0].received if history else now
        history.extend(points)
        sensor["series"] = f"series.sensor.{_short(sensor_id)}"
        sensor["mtime"] = now
        if _debug_enabled():
            log.debug(
                "emulator.thingplus.series_accepted", gateway=owner, sensor=sensor_id, points=len(points)
            )
        if not many:
            return _ok({**sensor, "mtime": str(now), "ctime": str(sensor["ctime"])})
        last = max(points, key=lambda p: p.time)
        data = {
            "type": "series",
            "srcType": sensor["type"],
            "seriesPack": [{"value": p.value, "time": p.time} for p in points],
            "mtime": str(now),
            "ctime": str(first_ms),
            "time": str(last.time),
            "value": last.value,
            "owner": owner,
            "series": sensor_id,
            "sensor": sensor_id,
            "srcCategory": "sensor",
            "srcDbType": "sensor",
            "id": sensor["series"],
        }
        return _ok(data)

    def _point(self, item: Any, where: str, kind: str, now: int) -> Point:
        _keys(item, where, required=("value", "time"))
        value, when = item["value"], item["time"]
        if isinstance(value, dict):
            if kind not in _FREE_TYPES:
                raise _invalid(f"{where}.value: a {kind} value must be a numeric string, not an object")
        elif isinstance(value, str):
            if kind not in _FREE_TYPES and not _numeric(value):
                raise _invalid(f"{where}.value: a {kind} value must be a numeric string, not {value!r}")
        else:
            raise _schema(f"{where}.value must be a string or an object, not {_json_type(value)}")
        if isinstance(when, bool) or not isinstance(when, int):
            raise _schema(f"{where}.time must be an integer (unix ms), not {_json_type(when)}")
        if when <= 0:
            raise _schema(f"{where}.time must be a positive unix time in ms")
        if self.series_max_age_s is not None and when < now - self.series_max_age_s * 1000:
            raise _invalid(f"{where}.time {when} is too far in the past")
        return Point(when, value, now)

    def _record_status(
        self, store: dict[str, list[StatusRecord]], key: str, value: str, valid_duration: int
    ) -> StatusRecord:
        now = self._now_ms()
        record = StatusRecord(
            received=now, value=value, valid_duration=valid_duration, expire_at=now + valid_duration * 1000
        )
        store.setdefault(key, []).append(record)
        if _debug_enabled():
            log.debug(
                "emulator.thingplus.status_accepted", target=key, value=value, valid_duration=valid_duration
            )
        return record


# --------------------------------------------------------------------------------------------------
# Checks, each from the document


def _keys(obj: Any, where: str, *, required: tuple[str, ...]) -> None:
    if isinstance(obj, dict) and len(obj) == len(required) and all(map(obj.__contains__, required)):
        return  # exactly the required keys: the common case, without building sets
    if not isinstance(obj, dict):
        raise _schema(f"{where} must be an object, not {_json_type(obj)}")
    extra = sorted(set(obj) - set(required))
    if extra:
        raise _schema(f"{where} has unknown key(s): {', '.join(extra)}")
    missing = [k for k in required if k not in obj]
    if missing:
        raise _schema(f"{where} is missing required key(s): {', '.join(missing)}")


def _string(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj[key]
    if not isinstance(value, str):
        raise _schema(f"{where}.{key} must be a string, not {_json_type(value)}")
    if not value:
        raise _schema(f"{where}.{key} must not be empty")
    return value


def _req_id(value: Any) -> str:
    """The Open API Gateway model's idFormat is uuid: 32 lowercase hex digits, no dashes."""
    if not isinstance(value, str):
        raise _schema(f"reqId must be a string, not {_json_type(value)}")
    if not _REQ_ID.match(value):
        raise _schema(f"reqId {value!r} is not a uuid without dashes in lowercase (32 hex digits)")
    return value


def _status_body(body: Any) -> tuple[str, int]:
    _keys(body, "body", required=("validDuration", "value"))
    value, valid_duration = body["value"], body["validDuration"]
    if not isinstance(value, str) or value not in _STATUS_VALUES:
        raise _schema(f"value must be one of {', '.join(_STATUS_VALUES)}, not {value!r}")
    if isinstance(valid_duration, bool) or not isinstance(valid_duration, int):
        raise _schema(f"validDuration must be an integer (seconds), not {_json_type(valid_duration)}")
    if valid_duration <= 0:
        raise _schema("validDuration must be a positive number of seconds")
    return value, valid_duration


def _numeric(value: str) -> bool:
    try:
        number = float(value)
    except ValueError:
        return False
    return math.isfinite(number)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _status_view(records: list[StatusRecord] | None) -> dict[str, Any] | None:
    if not records:
        return None
    last = records[-1]
    return {"value": last.value, "received": last.received, "expireAt": last.expire_at}


def _check_interval(ms: Any) -> None:
    if isinstance(ms, bool) or not isinstance(ms, int) or ms <= 0:
        raise ValueError(f"reportInterval must be a positive integer of milliseconds, not {ms!r}")


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _encoding(content_type: str) -> str:
    return "form" if content_type == "application/x-www-form-urlencoded" else "json"


def _b64(data: str | bytes) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@functools.lru_cache(maxsize=65536)
def _short(value: str) -> str:
    """Six hex digits naming an id's status or series object (cached: every status and series asks)."""
    return hashlib.sha1(value.encode("utf-8")).hexdigest()[:6]


def _debug_enabled() -> bool:
    """False when structlog would drop this module's debug lines at once: then none is built per request.

    That is gatewayd's logging (``filter_by_level`` over stdlib) above debug; any other setup (none,
    ``capture_logs``) gets every line as before.
    """
    if _stdlib_log.isEnabledFor(logging.DEBUG):
        return True
    return structlog.stdlib.filter_by_level not in structlog.get_config()["processors"]
