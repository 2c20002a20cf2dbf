"""An emulated RCMS open API (Robustel router management), checked from the vendor's document alone.

What a request must carry (``shared/specs/000_*.txt``, the document's ``RCMSClient``):

* headers ``apiVersion``, ``signatureVersion``, ``uniqueCode``, ``clientId``, ``timestamp``, ``signature``;
* a query string holding the five public parameters (``apiVersion``, ``clientId``, ``signatureVersion``,
  ``timestamp``, ``uniqueCode``) next to the API's own parameters.

The emulator rebuilds the canonical string from the query it received (every parameter, sorted by key,
``k=v`` joined by ``&``, unencoded), the string to sign as ``METHOD + path + canonical + client_secret``, and
the HMAC-SHA256 of it keyed with ``clientId + uniqueCode`` (the document sets uniqueCode to the client id,
so the key is the client id twice), lowercase hex, which must equal the ``signature`` header. The body of a
PUT is not signed, as in the document.

Status data is each router's history: records at the router's own reporting interval (one a minute
unless set otherwise, per router and from a time on: :mod:`gatewayd.emulator.rcmstimeline`), every record
of a window served whenever it is asked (paged with 1-based ``pageNum``, oldest first), none after now.
An outage (the fault registry) hides RCMS, not the history: the records of the outage are served after it,
as the real RCMS keeps what the routers sent.

Answers are the envelope ``{"code", "msg", "data"}`` with HTTP 200 even for errors: 40001 for a missing
parameter, 40002 for an invalid parameter, signature, client or timestamp (more than 5 minutes away from the
emulator's clock), 40004 for a business failure (an unknown device serial number).

This module deliberately shares no code with ``gatewayd.clouds``: a wrong client signer must fail here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from gatewayd.emulator.rcmstimeline import DEFAULT_INTERVAL_MS, ReportTimeline
from gatewayd.inventory.config import RcmsConfig

#: Parameters every request carries in its query string, and (but for the signature) in its headers.
PUBLIC_PARAMS: tuple[str, ...] = ("apiVersion", "clientId", "signatureVersion", "timestamp", "uniqueCode")
REQUIRED_HEADERS: tuple[str, ...] = (
    "apiVersion",
    "signatureVersion",
    "uniqueCode",
    "clientId",
    "timestamp",
    "signature",
)
API_VERSION = "1.0"
SIGNATURE_VERSION = "1.0"
#: How far a request's timestamp may be from the emulator's clock, in milliseconds.
MAX_SKEW_MS = 5 * 60 * 1000

CODE_OK = 0
CODE_MISSING = 40001
CODE_INVALID = 40002
CODE_BUSINESS = 40004

DEVICE_TOTAL = "GET /api/link/dashboard/deviceTotal"
STATUS_DATA = "GET /api/link/device/devices/{sn}/statusData"
SET_GROUP = "PUT /api/link/devices/{sn}/group"
ENDPOINTS: tuple[str, ...] = (DEVICE_TOTAL, STATUS_DATA, SET_GROUP)

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 1000

_MODELS = ("R1520", "R1510", "R2110", "EG5120", "R5020")
_FIRMWARE = ("5.2.0", "5.2.1", "5.3.0")
_OPERATORS = ("SK Telecom", "KT", "LG U+")
#: Each router reboots once a week and redials its link twice a day, at a phase of its own.
_BOOT_PERIOD_S = 7 * 86400
_LINK_PERIOD_S = 13 * 3600
#: Each router is offline 10 minutes an hour, at a phase of its own (for the dashboard totals).
_ONLINE_PERIOD_S = 3600
_OFFLINE_S = 600
_INTEGER = re.compile(r"-?[0-9]{1,18}")


class RcmsError(Exception):
    """A refusal: the envelope's ``code`` and ``msg``, and the reason counted in the snapshot."""

    def __init__(self, code: int, reason: str, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.reason = reason
        self.msg = msg


def _digest_int(*parts: object) -> int:
    text = "|".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def _format_uptime(seconds: int) -> str:
    days, rest = divmod(max(seconds, 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days} days, {hours:02d}:{minutes:02d}:{secs:02d}"


class RcmsEmulator:
    """RCMS routes for one client (``config.client_id`` / ``config.client_secret``) and its routers."""

    cloud = "rcms"

    def __init__(
        self,
        config: RcmsConfig,
        *,
        clock: Callable[[], float] = time.time,
        record_interval_ms: int = DEFAULT_INTERVAL_MS,
    ) -> None:
        self._client_id = config.client_id
        self._client_secret = config.client_secret.reveal()
        self._devices: list[str] = list(dict.fromkeys(config.devices))
        self._clock = clock
        self._requests: Counter[str] = Counter()
        self._ok: Counter[str] = Counter()
        self._rejections: Counter[str] = Counter()
        self._groups: dict[str, str] = {}
        self._group_history: list[dict[str, Any]] = []
        #: When each router reports: its status records, as history.
        self.timeline = ReportTimeline(record_interval_ms)

    # ----------------------------------------------------------------------------------------------
    # Public interface

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(
                "/api/link/dashboard/deviceTotal",
                self._handler(DEVICE_TOTAL, self._device_total),
                allow_head=False,
            ),
            web.get(
                "/api/link/device/devices/{sn}/statusData",
                self._handler(STATUS_DATA, self._status_data),
                allow_head=False,
            ),
            web.put("/api/link/devices/{sn}/group", self._handler(SET_GROUP, self._set_group)),
        ]

    def snapshot(self) -> dict[str, Any]:
        return {
            "cloud": self.cloud,
            "client_id": self._client_id,
            "devices": list(self._devices),
            "requests": {k: self._requests[k] for k in ENDPOINTS},
            "ok": {k: self._ok[k] for k in ENDPOINTS},
            "rejections": dict(sorted(self._rejections.items())),
            "groups": dict(self._groups),
            "group_history": [dict(entry) for entry in self._group_history],
            "reporting": self.timeline.snapshot(),
        }

    def set_record_interval(
        self, interval_ms: int, sn: str | None = None, since_ms: int | None = None
    ) -> None:
        """Router ``sn`` (or every router) reports every ``interval_ms`` from ``since_ms`` on (default: now;
        0: its whole history). Records before ``since_ms`` stay as they were. KeyError for an unknown router."""
        if sn is not None and sn not in self._devices:
            raise KeyError(sn)
        start = self._now_ms() if since_ms is None else since_ms
        for router in [sn] if sn is not None else self._devices:
            self.timeline.set_interval(router, interval_ms, start)

    def expire_tokens(self) -> None:
        """RCMS has no tokens: every request is signed."""

    # ----------------------------------------------------------------------------------------------
    # Plumbing

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _handler(
        self, endpoint: str, body: Callable[[web.Request], Awaitable[Any]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            self._requests[endpoint] += 1
            try:
                self._authenticate(request)
                data = await body(request)
            except RcmsError as err:
                self._rejections[err.reason] += 1
                return web.json_response({"code": err.code, "msg": err.msg, "data": None})
            self._ok[endpoint] += 1
            return web.json_response({"code": CODE_OK, "msg": "Success", "data": data})

        return handle

    def _authenticate(self, request: web.Request) -> None:
        """Check the headers, the query's public parameters and the signature; raise RcmsError if wrong."""
        headers = request.headers
        for name in REQUIRED_HEADERS:
            if not headers.get(name):
                raise RcmsError(CODE_MISSING, "missing_parameter", f"Missing required header: {name}")
        query = request.query
        for name in PUBLIC_PARAMS:
            if not query.get(name):
                raise RcmsError(CODE_MISSING, "missing_parameter", f"Missing required parameter: {name}")
        params: dict[str, str] = {}
        for key in query:
            values = query.getall(key)
            if len(values) > 1:
                raise RcmsError(CODE_INVALID, "bad_parameter", f"Invalid parameter: {key} is repeated")
            params[key] = values[0]
        for name in PUBLIC_PARAMS:
            if headers[name] != params[name]:
                raise RcmsError(
                    CODE_INVALID,
                    "bad_parameter",
                    f"Invalid parameter: {name} differs between header and query",
                )
        if params["apiVersion"] != API_VERSION:
            raise RcmsError(
                CODE_INVALID, "bad_parameter", f"Invalid parameter: apiVersion must be {API_VERSION}"
            )
        if params["signatureVersion"] != SIGNATURE_VERSION:
            raise RcmsError(
                CODE_INVALID,
                "bad_parameter",
                f"Invalid parameter: signatureVersion must be {SIGNATURE_VERSION}",
            )
        client_id = params["clientId"]
        if not hmac.compare_digest(client_id.encode("utf-8"), self._client_id.encode("utf-8")):
            raise RcmsError(CODE_INVALID, "unknown_client", "Invalid clientId")
        timestamp = params["timestamp"]
        if not timestamp.isascii() or not timestamp.isdigit():
            raise RcmsError(
                CODE_INVALID, "bad_parameter", "Invalid parameter: timestamp must be milliseconds"
            )
        skew = int(timestamp) - self._now_ms()
        if abs(skew) > MAX_SKEW_MS:
            raise RcmsError(
                CODE_INVALID,
                "stale_timestamp",
                f"Invalid timestamp: out of range ({skew // 1000:+d} s from server time, "
                f"at most {MAX_SKEW_MS // 1000} s allowed)",
            )
        canonical = "&".join(f"{k}={params[k]}" for k in sorted(params))
        string_to_sign = request.method + request.path + canonical + self._client_secret
        key = client_id + params["uniqueCode"]
        expected = hmac.new(key.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode("ascii"), headers["signature"].encode("utf-8")):
            raise RcmsError(CODE_INVALID, "bad_signature", "Invalid signature")

    def _known_device(self, request: web.Request) -> str:
        sn = request.match_info["sn"]
        if sn not in self._devices:
            raise RcmsError(CODE_BUSINESS, "unknown_device", f"Device not found: {sn}")
        return sn

    # ----------------------------------------------------------------------------------------------
    # Endpoints

    async def _device_total(self, request: web.Request) -> dict[str, int]:
        now_s = self._clock()
        online = sum(1 for sn in self._devices if self.is_online(sn, now_s))
        total = len(self._devices)
        return {
            "deviceTotal": total,
            "onlineTotal": online,
            "offlineTotal": total - online,
            "registeredTotal": total,
            "unRegisteredTotal": 0,
            "userTotal": 1 + total // 3,
        }

    async def _status_data(self, request: web.Request) -> list[dict[str, Any]]:
        query = request.query
        page_num = _int_param(query, "pageNum", default=1, minimum=1)
        page_size = _int_param(query, "pageSize", default=DEFAULT_PAGE_SIZE, minimum=1)
        if page_size > MAX_PAGE_SIZE:
            raise RcmsError(
                CODE_INVALID, "bad_parameter", f"Invalid parameter: pageSize must be at most {MAX_PAGE_SIZE}"
            )
        begin = _int_param(query, "beginTime", default=None, minimum=0)
        end = _int_param(query, "endTime", default=None, minimum=0)
        if begin > end:
            raise RcmsError(CODE_INVALID, "bad_parameter", "Invalid parameter: beginTime is after endTime")
        sn = self._known_device(request)
        # The router's records in [beginTime, endTime] and not after now, oldest first.
        last = min(end, self._now_ms())
        start = (page_num - 1) * page_size
        times = self.timeline.times(sn, begin, last, start, start + page_size)
        return [self.status_record(sn, t) for t in times]

    async def _set_group(self, request: web.Request) -> None:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw.strip() else None
        except (ValueError, UnicodeDecodeError):
            raise RcmsError(CODE_INVALID, "bad_parameter", "Invalid parameter: body is not JSON") from None
        if not isinstance(body, dict) or "groupName" not in body:
            raise RcmsError(CODE_MISSING, "missing_parameter", "Missing required parameter: groupName")
        group = body["groupName"]
        if not isinstance(group, str) or not group.strip():
            raise RcmsError(
                CODE_INVALID, "bad_parameter", "Invalid parameter: groupName must be a non-empty string"
            )
        sn = self._known_device(request)
        self._groups[sn] = group
        self._group_history.append({"sn": sn, "groupName": group, "time": self._now_ms()})
        return None

    # ----------------------------------------------------------------------------------------------
    # The routers' made-up but deterministic state

    def is_online(self, sn: str, now_s: float) -> bool:
        """Online but for 10 minutes an hour, at a phase fixed per serial number."""
        phase = _digest_int(sn, "online") % _ONLINE_PERIOD_S
        return (int(now_s) + phase) % _ONLINE_PERIOD_S >= _OFFLINE_S

    def status_record(self, sn: str, time_ms: int) -> dict[str, Any]:
        """The status record of router ``sn`` at ``time_ms``: same inputs, same record."""
        profile = _digest_int(sn, "profile")
        rnd = random.Random(_digest_int(sn, time_ms))
        t_s = time_ms // 1000
        boot_phase = _digest_int(sn, "boot") % _BOOT_PERIOD_S
        link_phase = _digest_int(sn, "link") % _LINK_PERIOD_S
        octets = [(profile >> shift) & 0xFF for shift in (8, 16, 24)]
        subnet = f"10.{octets[0]}.{octets[1]}"
        return {
            "time": time_ms,
            "data": {
                "system": {
                    "system_time": datetime.fromtimestamp(t_s, timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
                    "device_model": _MODELS[profile % len(_MODELS)],
                    "firmware_version": _FIRMWARE[(profile >> 4) % len(_FIRMWARE)],
                    "uptime": _format_uptime((t_s + boot_phase) % _BOOT_PERIOD_S),
                },
                "active_link": {
                    "ip": f"{subnet}.{2 + octets[2] % 250}",
                    "gateway": f"{subnet}.1",
                    "link_uptime": _format_uptime((t_s + link_phase) % _LINK_PERIOD_S),
                    "interface": "WWAN1",
                },
                "cellular": {
                    "rssi": rnd.randint(-70, -50),
                    "rsrp": rnd.randint(-110, -80),
                    "rsrq": rnd.randint(-15, -5),
                    "sinr": rnd.randint(0, 25),
                    "operator": _OPERATORS[(profile >> 12) % len(_OPERATORS)],
                    "network_type": "LTE",
                },
            },
        }


def _int_param(query: Any, name: str, *, default: int | None, minimum: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        if default is None:
            raise RcmsError(CODE_MISSING, "missing_parameter", f"Missing required parameter: {name}")
        return default
    if not _INTEGER.fullmatch(raw):
        raise RcmsError(CODE_INVALID, "bad_parameter", f"Invalid parameter: {name} must be an integer")
    value = int(raw)
    if value < minimum:
        raise RcmsError(
            CODE_INVALID, "bad_parameter", f"Invalid parameter: {name} must be at least {minimum}"
        )
    return value
