"""An emulated loctube open API (a JetLinks-based tracker platform), checked from the vendor's document alone.

Three ways in, all accepted at all times (the first one a request carries decides):

1. ``X-Access-Token: <token>`` from ``POST /api/v1/token``; its expiry is sliding (each use resets it).
2. OAuth2: ``Authorization: bearer <token>`` (scheme in any case) or ``?access_token=<token>``, from
   ``POST /loctube/oauth2/token`` (grants ``client_credentials`` and ``refresh_token``, JSON or form body).
3. A signed request: ``X-Client-Id``, ``X-Timestamp`` (ms, at most 5 minutes from the emulator's clock) and
   ``X-Sign``. GET/DELETE sign the query (keys sorted, ``k=v`` joined by ``&``, a repeated key's values joined
   by ``,``, values URL-decoded) + timestamp + secure key; POST/PUT sign the raw body bytes as received +
   timestamp + secure key. The digest is plain md5 or sha256 (the config's ``sign``), hex, compared ignoring
   case. ``POST /api/v1/token`` itself must be signed.

Every response, errors included, carries ``X-Timestamp`` and ``X-Sign`` = digest(body bytes + X-Timestamp +
secure key), the document's "sign-off".

Error bodies: the signature filter answers Spring-style ``{"timestamp", "status", "error", "message",
"path"}`` (400 for a missing, malformed or out-of-range timestamp, 403 for an unknown client or a missing or
wrong signature); controllers answer ``{"status", "code", "message", "result": null}`` (401 ``unauthorized``
for a missing, unknown or expired token, 404 ``not_found`` for an unknown device, 400 for a bad body).

This module deliberately shares no code with ``gatewayd.clouds``: a wrong client signer must fail here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from gatewayd.inventory.config import LoctubeConfig

#: How far a signed request's timestamp may be from the emulator's clock, in milliseconds.
MAX_SKEW_MS = 5 * 60 * 1000
DEFAULT_TOKEN_EXPIRES = 7200
OAUTH2_ACCESS_EXPIRES = 7200
OAUTH2_REFRESH_EXPIRES = 30 * 86400
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 1000

DETAIL = "GET /api/v1/device/{id}/_detail"
LATEST = "GET /api/v1/device/{id}/properties/_latest"
QUERY = "POST /api/v1/device/_query"
INSTANCE_QUERY = "POST /device/instance/_query"
TOKEN = "POST /api/v1/token"
OAUTH2_TOKEN = "POST /loctube/oauth2/token"
ENDPOINTS: tuple[str, ...] = (DETAIL, LATEST, QUERY, INSTANCE_QUERY, TOKEN, OAUTH2_TOKEN)

_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 500: "Server Error"}
_QUERY_COLUMNS = ("id", "name", "state", "productId")
_TERM_TYPES = ("eq", "not", "like", "in")

#: Each tracker is online 20 minutes, then offline 10, at a phase of its own.
_STATE_PERIOD_MS = 30 * 60 * 1000
_OFFLINE_MS = 10 * 60 * 1000
#: Battery drains from 100 % to 20 % over 12 hours, then is recharged.
_BATTERY_PERIOD_MS = 12 * 3600 * 1000
#: A tracker drives round a circle of about 1 km radius once an hour.
_LAP_MS = 3600 * 1000
_RADIUS_DEG = 0.01
_KM_PER_DEG = 111.32


class Rejected(Exception):
    """A refusal: HTTP status, the reason counted in the snapshot, and the body's shape."""

    def __init__(self, status: int, reason: str, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        #: None: a Spring-style filter error; otherwise a controller error with this ``code``.
        self.code = code

    def body(self, path: str, now_s: float) -> dict[str, Any]:
        if self.code is None:
            when = datetime.fromtimestamp(now_s, timezone.utc).isoformat(timespec="milliseconds")
            return {
                "timestamp": when,
                "status": self.status,
                "error": _REASONS.get(self.status, "Error"),
                "message": self.message,
                "path": path,
            }
        return {"status": self.status, "code": self.code, "message": self.message, "result": None}


def _filter_error(status: int, reason: str, message: str) -> Rejected:
    return Rejected(status, reason, message)


def _unauthorized(reason: str, message: str) -> Rejected:
    return Rejected(401, reason, message, code="unauthorized")


@dataclass
class _Token:
    kind: str  # "x-access" | "oauth2-access" | "oauth2-refresh"
    client_id: str
    issued: float
    last_used: float
    #: Seconds; 0 or less never expires.
    lifetime: float
    sliding: bool
    revoked: bool = False

    def expired(self, now: float) -> bool:
        if self.revoked:
            return True
        return self.lifetime > 0 and now >= self.last_used + self.lifetime


def _digest_int(*parts: object) -> int:
    text = "|".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def _json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class LoctubeEmulator:
    """loctube routes for one client (``config.client_id`` / ``config.secure_key``) and its trackers."""

    cloud = "loctube"

    def __init__(self, config: LoctubeConfig, *, clock: Callable[[], float] = time.time) -> None:
        self._client_id = config.client_id
        self._secure_key = config.secure_key.reveal()
        self._algorithm = config.sign
        self._devices: list[str] = list(dict.fromkeys(config.devices))
        self._clock = clock
        self._tokens: dict[str, _Token] = {}
        self._requests: Counter[str] = Counter()
        self._ok: Counter[str] = Counter()
        self._auth_used: Counter[str] = Counter()
        self._issued: Counter[str] = Counter()
        self._rejections: Counter[str] = Counter()

    # ----------------------------------------------------------------------------------------------
    # Public interface

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(
                "/api/v1/device/{id}/_detail",
                self._handler(DETAIL, self._detail, self._authenticate),
                allow_head=False,
            ),
            web.get(
                "/api/v1/device/{id}/properties/_latest",
                self._handler(LATEST, self._latest, self._authenticate),
                allow_head=False,
            ),
            web.post("/api/v1/device/_query", self._handler(QUERY, self._query, self._authenticate)),
            web.post(
                "/device/instance/_query", self._handler(INSTANCE_QUERY, self._query, self._authenticate)
            ),
            web.post("/api/v1/token", self._handler(TOKEN, self._issue_token, self._check_signature)),
            web.post("/loctube/oauth2/token", self._handler(OAUTH2_TOKEN, self._oauth2_token, None)),
        ]

    def snapshot(self) -> dict[str, Any]:
        now = self._clock()
        active = Counter(t.kind for t in self._tokens.values() if not t.expired(now))
        return {
            "cloud": self.cloud,
            "client_id": self._client_id,
            "sign": self._algorithm,
            "devices": list(self._devices),
            "requests": {k: self._requests[k] for k in ENDPOINTS},
            "ok": {k: self._ok[k] for k in ENDPOINTS},
            "auth": dict(sorted(self._auth_used.items())),
            "tokens_issued": {k: self._issued[k] for k in ("x-access", "oauth2-access", "oauth2-refresh")},
            "tokens_active": {k: active[k] for k in ("x-access", "oauth2-access", "oauth2-refresh")},
            "rejections": dict(sorted(self._rejections.items())),
        }

    def expire_tokens(self) -> None:
        """Expire every X-Access-Token and OAuth2 access token now; refresh tokens stay valid."""
        for token in self._tokens.values():
            if token.kind in ("x-access", "oauth2-access"):
                token.revoked = True

    def digest(self, data: bytes) -> str:
        """The configured digest (md5 or sha256) of ``data``, lowercase hex."""
        return hashlib.new(self._algorithm, data).hexdigest()

    # ----------------------------------------------------------------------------------------------
    # Plumbing

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _signed(self, status: int, payload: Any) -> web.Response:
        body = _json_bytes(payload)
        timestamp = str(self._now_ms())
        sign = self.digest(body + timestamp.encode("ascii") + self._secure_key.encode("utf-8"))
        return web.Response(
            status=status,
            body=body,
            content_type="application/json",
            charset="utf-8",
            headers={"X-Timestamp": timestamp, "X-Sign": sign},
        )

    def _handler(
        self,
        endpoint: str,
        body: Callable[[web.Request, bytes], Awaitable[Any]],
        auth: Callable[[web.Request, bytes], None] | None,
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            self._requests[endpoint] += 1
            try:
                raw = await request.read()
                if auth is not None:
                    auth(request, raw)
                result = await body(request, raw)
            except Rejected as err:
                self._rejections[err.reason] += 1
                return self._signed(err.status, err.body(request.path, self._clock()))
            self._ok[endpoint] += 1
            return self._signed(200, result)

        return handle

    def _authenticate(self, request: web.Request, raw: bytes) -> None:
        """Accept a valid X-Access-Token, OAuth2 access token or signature; raise Rejected otherwise."""
        x_token = request.headers.get("X-Access-Token")
        if x_token is not None:
            self._use_token(x_token, "x-access")
            self._auth_used["token"] += 1
            return
        scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() == "bearer":
            self._use_token(credentials.strip(), "oauth2-access")
            self._auth_used["oauth2"] += 1
            return
        if "access_token" in request.query:
            self._use_token(request.query["access_token"], "oauth2-access")
            self._auth_used["oauth2"] += 1
            return
        if not any(h in request.headers for h in ("X-Client-Id", "X-Sign", "X-Timestamp")):
            raise _unauthorized(
                "unauthenticated",
                "no credentials: sign the request (X-Client-Id, X-Timestamp, X-Sign) or send a token",
            )
        self._check_signature(request, raw)

    def _use_token(self, value: str, kind: str) -> None:
        now = self._clock()
        token = self._tokens.get(value)
        if not value or token is None or token.kind != kind:
            raise _unauthorized("token_unknown", "unknown token: please log in again")
        if token.expired(now):
            raise _unauthorized("token_expired", "token expired: please log in again")
        if token.sliding:
            token.last_used = now

    def _check_signature(self, request: web.Request, raw: bytes) -> None:
        headers = request.headers
        client_id = headers.get("X-Client-Id")
        if not client_id:
            raise _filter_error(403, "unknown_client", "missing header X-Client-Id")
        if not hmac.compare_digest(client_id.encode("utf-8"), self._client_id.encode("utf-8")):
            raise _filter_error(403, "unknown_client", f"unknown client: {client_id}")
        timestamp = headers.get("X-Timestamp")
        if not timestamp:
            raise _filter_error(400, "missing_timestamp", "missing header X-Timestamp")
        if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 18:
            raise _filter_error(400, "bad_timestamp", "X-Timestamp must be unix time in milliseconds")
        skew = int(timestamp) - self._now_ms()
        if abs(skew) > MAX_SKEW_MS:
            raise _filter_error(
                400,
                "stale_timestamp",
                f"timestamp expired: {skew // 1000:+d} s from server time, at most "
                f"{MAX_SKEW_MS // 1000} s allowed",
            )
        sign = headers.get("X-Sign")
        if not sign:
            raise _filter_error(403, "bad_sign", "missing header X-Sign")
        if request.method in ("GET", "DELETE", "HEAD"):
            query = request.query
            signed = "&".join(f"{key}={','.join(query.getall(key))}" for key in sorted(set(query))).encode(
                "utf-8"
            )
        else:
            signed = raw
        expected = self.digest(signed + timestamp.encode("ascii") + self._secure_key.encode("utf-8"))
        if not hmac.compare_digest(expected.encode("ascii"), sign.strip().lower().encode("utf-8")):
            raise _filter_error(403, "bad_sign", "signature error")
        self._auth_used["signature"] += 1

    def _device(self, request: web.Request) -> str:
        device_id = request.match_info["id"]
        if device_id not in self._devices:
            raise Rejected(404, "not_found", f"device not found: {device_id}", code="not_found")
        return device_id

    # ----------------------------------------------------------------------------------------------
    # Tokens

    def _new_token(self, kind: str, lifetime: float, *, sliding: bool) -> str:
        value = secrets.token_hex(16)
        now = self._clock()
        self._tokens[value] = _Token(kind, self._client_id, now, now, lifetime, sliding)
        self._issued[kind] += 1
        self._drop_dead_tokens(now)
        return value

    def _drop_dead_tokens(self, now: float) -> None:
        """Forget tokens expired for more than a day (kept a while so their 401 says 'expired')."""
        dead = [
            v for v, t in self._tokens.items() if t.lifetime > 0 and now >= t.last_used + t.lifetime + 86400
        ]
        for value in dead:
            del self._tokens[value]

    async def _issue_token(self, request: web.Request, raw: bytes) -> Any:
        expires: Any = DEFAULT_TOKEN_EXPIRES
        if raw.strip():
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise Rejected(400, "bad_request", "body is not JSON", code="illegal_argument") from None
            if not isinstance(body, dict):
                raise Rejected(400, "bad_request", "body must be a JSON object", code="illegal_argument")
            expires = body.get("expires", DEFAULT_TOKEN_EXPIRES)
            if expires is None:
                expires = DEFAULT_TOKEN_EXPIRES
        if isinstance(expires, bool) or not isinstance(expires, (int, float)) or not math.isfinite(expires):
            raise Rejected(400, "bad_request", "expires must be a number of seconds", code="illegal_argument")
        token = self._new_token("x-access", float(expires), sliding=True)
        return {"status": 200, "result": token, "code": "success"}

    async def _oauth2_token(self, request: web.Request, raw: bytes) -> Any:
        params = _token_request_params(request, raw)
        basic = _basic_credentials(request.headers.get("Authorization", ""))
        client_id = params.get("client_id") or (basic[0] if basic else "")
        client_secret = params.get("client_secret") or (basic[1] if basic else "")
        grant = params.get("grant_type", "")
        if not grant:
            raise _oauth2_error(400, "invalid_request", "grant_type is missing")
        if grant not in ("client_credentials", "refresh_token"):
            raise _oauth2_error(400, "unsupported_grant_type", f"unsupported grant_type: {grant}")
        if not client_id or not client_secret:
            raise _oauth2_error(401, "invalid_client", "client_id and client_secret are required")
        if not (
            hmac.compare_digest(client_id.encode("utf-8"), self._client_id.encode("utf-8"))
            and hmac.compare_digest(client_secret.encode("utf-8"), self._secure_key.encode("utf-8"))
        ):
            raise _oauth2_error(401, "invalid_client", "bad client_id or client_secret")
        if grant == "refresh_token":
            value = params.get("refresh_token", "")
            if not value:
                raise _oauth2_error(400, "invalid_request", "refresh_token is missing")
            refresh = self._tokens.get(value)
            if refresh is None or refresh.kind != "oauth2-refresh":
                raise _oauth2_error(400, "invalid_grant", "unknown refresh_token")
            if refresh.expired(self._clock()):
                raise _oauth2_error(400, "invalid_grant", "refresh_token expired")
            refresh_value = value
        else:
            refresh_value = self._new_token("oauth2-refresh", OAUTH2_REFRESH_EXPIRES, sliding=False)
        access = self._new_token("oauth2-access", OAUTH2_ACCESS_EXPIRES, sliding=False)
        return {
            "access_token": access,
            "refresh_token": refresh_value,
            "expires_in": OAUTH2_ACCESS_EXPIRES,
            "token_type": "bearer",
        }

    # ----------------------------------------------------------------------------------------------
    # Devices

    async def _detail(self, request: web.Request, raw: bytes) -> Any:
        device_id = self._device(request)
        return {"result": self.device_detail(device_id, self._now_ms()), "status": 200, "code": "success"}

    async def _latest(self, request: web.Request, raw: bytes) -> Any:
        device_id = self._device(request)
        detail = self.device_detail(device_id, self._now_ms())
        stamp = detail["propertiesTime"]
        result = [
            {"property": name, "value": value, "formatValue": str(value), "timestamp": stamp}
            for name, value in detail["properties"].items()
        ]
        return {"result": result, "status": 200, "code": "success"}

    async def _query(self, request: web.Request, raw: bytes) -> Any:
        body: Any = {}
        if raw.strip():
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise Rejected(400, "bad_request", "body is not JSON", code="illegal_argument") from None
        if not isinstance(body, dict):
            raise Rejected(400, "bad_request", "body must be a JSON object", code="illegal_argument")
        page_index = _int_field(body, "pageIndex", 0, 0, None)
        page_size = _int_field(body, "pageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        terms = body.get("terms") or []
        if not isinstance(terms, list):
            raise Rejected(400, "bad_request", "terms must be a list", code="illegal_argument")
        now_ms = self._now_ms()
        rows = [self.device_detail(d, now_ms) for d in self._devices]
        for term in terms:
            rows = [row for row in rows if _matches(row, term)]
        start = page_index * page_size
        page = rows[start : start + page_size]
        result = {"pageIndex": page_index, "pageSize": page_size, "total": len(rows), "data": page}
        return {"result": result, "status": 200, "code": "success"}

    def is_online(self, device_id: str, now_ms: int) -> bool:
        """Online 20 minutes, offline 10, at a phase fixed per device id."""
        return self._state_position(device_id, now_ms) < _STATE_PERIOD_MS - _OFFLINE_MS

    def _state_position(self, device_id: str, now_ms: int) -> int:
        phase = _digest_int(device_id, "state") % _STATE_PERIOD_MS
        return (now_ms + phase) % _STATE_PERIOD_MS

    def device_detail(self, device_id: str, now_ms: int) -> dict[str, Any]:
        """The tracker's detail as the document shows it, plus ``properties`` (latest values) and their time."""
        position = self._state_position(device_id, now_ms)
        cycle_start = now_ms - position
        online_span = _STATE_PERIOD_MS - _OFFLINE_MS
        online = position < online_span
        if online:
            online_time = cycle_start
            offline_time = cycle_start - _OFFLINE_MS
        else:
            online_time = cycle_start
            offline_time = cycle_start + online_span
        profile = _digest_int(device_id, "profile")
        create_time = 1_672_124_830_209 + profile % (90 * 86400 * 1000)
        values_at = now_ms if online else offline_time
        return {
            "id": device_id,
            "name": f"Tracker {device_id}",
            "protocol": "evgps",
            "transport": "TCP",
            "orgId": "emulator",
            "productId": "katchu",
            "productName": "katchu",
            "deviceType": {"text": "directly connected device", "value": "device"},
            "state": {"text": "online", "value": "online"}
            if online
            else {"text": "offline", "value": "offline"},
            "address": f"/10.{(profile >> 8) & 0xFF}.{(profile >> 16) & 0xFF}.{2 + (profile >> 24) % 250}:"
            f"{30000 + profile % 30000}",
            "onlineTime": online_time,
            "offlineTime": offline_time,
            "createTime": create_time,
            "registerTime": create_time + 2923,
            "metadata": _METADATA,
            "configuration": {
                "isDebug": "false",
                "parseType": "",
                "isChina": "false",
                "isDelayMsg": "true",
                "isHexLog": "false",
                "trackerType": "katchu",
                "isIgnoreEvLog": "false",
            },
            "tags": [],
            "properties": self.properties(device_id, values_at),
            "propertiesTime": values_at - values_at % 1000,
        }

    def properties(self, device_id: str, at_ms: int) -> dict[str, Any]:
        """Latest values at ``at_ms``: battery drains and recharges; the tracker drives round a circle."""
        profile = _digest_int(device_id, "profile")
        battery_phase = _digest_int(device_id, "battery") % _BATTERY_PERIOD_MS
        drained = ((at_ms + battery_phase) % _BATTERY_PERIOD_MS) / _BATTERY_PERIOD_MS
        lap_phase = _digest_int(device_id, "lap") % _LAP_MS
        angle = 2 * math.pi * ((at_ms + lap_phase) % _LAP_MS) / _LAP_MS
        base_lat = 37.5665 + ((profile >> 4) % 1000 - 500) / 10000
        base_lon = 126.9780 + ((profile >> 14) % 1000 - 500) / 10000
        lap_km = 2 * math.pi * _RADIUS_DEG * _KM_PER_DEG
        wobble = (_digest_int(device_id, at_ms // 60000) % 200 - 100) / 100  # +-1 km/h per minute
        return {
            "battery": round(100 - 80 * drained),
            "latitude": round(base_lat + _RADIUS_DEG * math.sin(angle), 6),
            "longitude": round(base_lon + _RADIUS_DEG * math.cos(angle), 6),
            "speed": round(lap_km * 3600 * 1000 / _LAP_MS + wobble, 1),
        }


_METADATA = json.dumps(
    {
        "properties": [
            {"id": "battery", "name": "Battery", "valueType": {"type": "int", "unit": "percent"}},
            {"id": "latitude", "name": "Latitude", "valueType": {"type": "double"}},
            {"id": "longitude", "name": "Longitude", "valueType": {"type": "double"}},
            {"id": "speed", "name": "Speed", "valueType": {"type": "float", "unit": "km/h"}},
        ]
    },
    separators=(",", ":"),
)


def _oauth2_error(status: int, code: str, message: str) -> Rejected:
    return Rejected(status, f"oauth2_{code}", message, code=code)


def _token_request_params(request: web.Request, raw: bytes) -> dict[str, str]:
    """The token request's parameters from a JSON or form body (either, whatever the Content-Type says)."""
    text = raw.decode("utf-8", errors="replace").strip()
    parsed: Any = None
    if request.content_type != "application/x-www-form-urlencoded":
        try:
            parsed = json.loads(text) if text else {}
        except ValueError:
            parsed = None
    if parsed is None:
        parsed = dict(parse_qsl(text, keep_blank_values=True))
    if not isinstance(parsed, dict):
        raise _oauth2_error(400, "invalid_request", "the token request must be a JSON object or a form")
    params: dict[str, str] = {}
    for key, value in parsed.items():
        if isinstance(value, str):
            params[str(key)] = value.strip()
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            params[str(key)] = str(value)
    return params


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


def _int_field(body: dict[str, Any], name: str, default: int, minimum: int, maximum: int | None) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]{1,18}\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Rejected(400, "bad_request", f"{name} must be an integer", code="illegal_argument")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise Rejected(400, "bad_request", f"{name} must be {bound}", code="illegal_argument")
    return value


def _term_value(row: dict[str, Any], column: str) -> str:
    value = row[column]
    return str(value["value"]) if isinstance(value, dict) else str(value)


def _matches(row: dict[str, Any], term: Any) -> bool:
    if not isinstance(term, dict) or not isinstance(term.get("column"), str):
        raise Rejected(400, "bad_request", "each term needs a 'column'", code="illegal_argument")
    column = term["column"]
    if column not in _QUERY_COLUMNS:
        raise Rejected(
            400,
            "bad_request",
            f"unsupported term column {column!r}: one of {', '.join(_QUERY_COLUMNS)}",
            code="illegal_argument",
        )
    term_type = str(term.get("termType") or "eq").lower()
    if term_type not in _TERM_TYPES:
        raise Rejected(
            400,
            "bad_request",
            f"unsupported termType {term_type!r}: one of {', '.join(_TERM_TYPES)}",
            code="illegal_argument",
        )
    actual = _term_value(row, column)
    wanted = term.get("value")
    if term_type == "in":
        options = wanted if isinstance(wanted, list) else str(wanted).split(",")
        return actual in [str(o) for o in options]
    if term_type == "like":
        return _like(actual, str(wanted))
    equal = actual == str(wanted)
    return equal if term_type == "eq" else not equal


def _like(value: str, pattern: str) -> bool:
    """SQL LIKE with ``%`` (any run) only, case-sensitive."""
    parts = pattern.split("%")
    if len(parts) == 1:
        return value == pattern
    if not value.startswith(parts[0]) or not value.endswith(parts[-1]):
        return False
    pos = len(parts[0])
    end = len(value) - len(parts[-1])
    for part in parts[1:-1]:
        found = value.find(part, pos, end)
        if found < 0:
            return False
        pos = found + len(part)
    return pos <= end
