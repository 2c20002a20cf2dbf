"""The emulator's own HTTP paths under ``/_emulator/``: look at its state, set faults, play the portal.

Never faulted. Requests and answers are JSON; a refusal is ``{"error": "..."}`` with 400 or 404, and a
change asked by a page of another site (an ``Origin`` that is not the emulator's own) is refused with 403
(:func:`same_origin_admin`).

=======  ======================================  ====================================================
GET      /_emulator/healthz                      ``{"ok": true, "clouds": [...]}``
GET      /_emulator/state                        every cloud's snapshot under its name, and ``faults``;
                                                 ``?summary=gateways``: Thing+ as a line per gateway
                                                 (counts, not points) and totals, cheap for a fleet
GET      /_emulator/faults                       the faults of every cloud
POST     /_emulator/faults/{cloud}               set faults (``{cloud}``: thingplus, rcms, loctube,
                                                 or ``all``); body keys, all optional:
                                                 ``outage_s`` (seconds), ``outage`` (true: until
                                                 cleared), ``failure_rate`` (0..1),
                                                 ``failure_statuses`` ([503, 500]), ``latency_s``,
                                                 ``rate_limit`` (``{"count", "window_s",
                                                 "retry_after"}``), ``seed`` (reseeds the coin),
                                                 ``oauth2_form_only`` (loctube: true makes the OAuth2
                                                 token endpoint answer JSON with 415)
DELETE   /_emulator/faults/{cloud}               clear faults (``?kinds=outage,latency`` for some)
DELETE   /_emulator/faults                       clear every fault of every cloud
POST     /_emulator/tokens/expire                expire every cloud's tokens (``{"cloud": ...}``: one)
POST     /_emulator/thingplus/report-interval    ``{"ms": 5000}`` (``"gateway": id`` for one gateway)
POST     /_emulator/thingplus/series-limits      ``{"max_age": "2d", "max_future": "10m"}``, either
                                                 optional: how old (ahead) a series point Thing+
                                                 takes, a duration (seconds or ``90s``, ``30m``,
                                                 ``2d``) or null (no limit); shown in ``state``
DELETE   /_emulator/thingplus/gateways/{id}      delete a gateway with its devices and sensors, as the
                                                 portal would (404 if unknown); points received stay
                                                 counted
POST     /_emulator/rcms/record-interval         ``{"ms": 10000}``: routers report every ``ms`` from now
                                                 on (``"sn"``: one router); earlier records stay
GET|POST /_emulator/thingplus/mqtt-gateways      MQTT gateways known (see :mod:`.thingplus.mqttadmin`)
POST     /_emulator/thingplus/rpc                a JSON-RPC command to an MQTT gateway, its answer
POST|DEL /_emulator/thingplus/mqtt-outage         the MQTT broker unreachable for ``{"seconds"}`` (or ends it)
GET      /_emulator/console/events               the web console's live stream (server-sent events)
GET      /_emulator/console/sensors/{id}/points  a sensor's recent points for the console's chart
=======  ======================================  ====================================================

The two ``console`` paths are the web console's (:mod:`gatewayd.emulator.console`, page at ``/``); its
controls call the paths above.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from gatewayd.emulator.faults import CLOUDS, KINDS
from gatewayd.emulator.thingplus.mqttadmin import routes as mqtt_routes
from gatewayd.inventory.types import parse_duration

if TYPE_CHECKING:
    from gatewayd.emulator.app import Emulator
    from gatewayd.emulator.thingplus import ThingPlusEmulator

log = structlog.get_logger(__name__)

PREFIX = "/_emulator"

_FAULT_KEYS = frozenset(
    {
        "outage_s",
        "outage",
        "failure_rate",
        "failure_statuses",
        "latency_s",
        "rate_limit",
        "seed",
        "oauth2_form_only",
    }
)


class _BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def routes(emulator: Emulator) -> list[web.RouteDef]:
    """The admin routes for ``emulator``."""
    api = AdminApi(emulator)
    return [
        web.get(f"{PREFIX}/healthz", api.healthz),
        web.get(f"{PREFIX}/state", api.state),
        web.get(f"{PREFIX}/faults", api.get_faults),
        web.post(f"{PREFIX}/faults/{{cloud}}", api.set_faults),
        web.delete(f"{PREFIX}/faults/{{cloud}}", api.clear_faults),
        web.delete(f"{PREFIX}/faults", api.clear_faults),
        web.post(f"{PREFIX}/tokens/expire", api.expire_tokens),
        web.post(f"{PREFIX}/thingplus/report-interval", api.report_interval),
        web.post(f"{PREFIX}/thingplus/series-limits", api.series_limits),
        web.delete(f"{PREFIX}/thingplus/gateways/{{id}}", api.delete_gateway),
        web.post(f"{PREFIX}/rcms/record-interval", api.rcms_record_interval),
        *(mqtt_routes(emulator.thingplus.mqtt) if "thingplus" in emulator.clouds else []),
    ]


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@web.middleware
async def same_origin_admin(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Refuse a change to the emulator asked by a page of another site (403).

    Why: the console invites people to keep the emulator open in a browser, and any other page that
    browser shows could POST to ``/_emulator/`` on loopback (a JSON body sent as ``text/plain`` needs no
    preflight) and start an outage or send a command. A browser says where a request comes from in
    ``Origin``; the console's own requests carry the emulator's origin, and clients that are not
    browsers (tests, ``curl``, the one-shot commands) send none, so only cross-site requests are refused.
    """
    if request.method not in _SAFE_METHODS and request.path.startswith(PREFIX + "/"):
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc.lower() != request.host.lower():
            log.warning("emulator.cross_site_refused", origin=origin[:100], path=request.path)
            return web.json_response(
                {"error": f"refused: a page of {origin[:100]} may not change the emulator"}, status=403
            )
    return await handler(request)


def _error(exc: _BadRequest) -> web.Response:
    return web.json_response({"error": str(exc)}, status=exc.status)


async def _body(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip() and optional:
        return {}
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _BadRequest("body must be a JSON object") from None
    if not isinstance(body, dict):
        raise _BadRequest("body must be a JSON object")
    return body


class AdminApi:
    """Handlers of the admin routes, bound to one :class:`~gatewayd.emulator.app.Emulator`."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def _thingplus(self) -> ThingPlusEmulator:
        try:
            return self.emulator.thingplus
        except LookupError as exc:
            raise _BadRequest(str(exc), 404) from None

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"ok": True, "clouds": sorted(self.emulator.clouds)})

    async def state(self, request: web.Request) -> web.StreamResponse:
        summary = request.query.get("summary")
        if summary not in (None, "gateways"):
            return _error(_BadRequest(f"unknown summary {summary!r}: expected 'gateways'"))
        return web.json_response(self.emulator.state(per_gateway=summary == "gateways"))

    async def get_faults(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.emulator.faults.snapshot())

    def _clouds(self, name: str) -> list[str]:
        if name == "all":
            return [c for c in CLOUDS if c in self.emulator.clouds]
        if name not in CLOUDS:
            raise _BadRequest(f"unknown cloud {name!r}: expected one of {[*CLOUDS, 'all']}", 404)
        return [name]

    async def set_faults(self, request: web.Request) -> web.StreamResponse:
        try:
            clouds = self._clouds(request.match_info["cloud"])
            body = await _body(request)
            unknown = sorted(set(body) - _FAULT_KEYS)
            if unknown:
                raise _BadRequest(f"unknown key(s) {unknown}: expected some of {sorted(_FAULT_KEYS)}")
            outage_s = body.get("outage_s")
            outage = body.get("outage")
            if outage is not None and not isinstance(outage, bool):
                raise _BadRequest("outage must be true (until cleared) or false")
            if outage and outage_s is not None:
                raise _BadRequest("give 'outage' (until cleared) or 'outage_s', not both")
            if outage:
                outage_s = math.inf
            rate_limit = body.get("rate_limit")
            if rate_limit is not None and not isinstance(rate_limit, dict):
                raise _BadRequest("rate_limit must be an object {count, window_s, retry_after}")
            seed = body.get("seed")
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
                raise _BadRequest("seed must be an integer")
            faults = self.emulator.faults
            try:
                for cloud in clouds:
                    faults.set(
                        cloud,
                        outage_s=outage_s,
                        failure_rate=body.get("failure_rate"),
                        failure_statuses=body.get("failure_statuses"),
                        latency_s=body.get("latency_s"),
                        rate_limit=rate_limit,
                        oauth2_form_only=body.get("oauth2_form_only"),
                    )
                    if outage is False:
                        faults.clear(cloud, "outage")
            except (TypeError, ValueError) as exc:
                raise _BadRequest(str(exc)) from None
            if seed is not None:
                faults.reseed(seed)
        except _BadRequest as exc:
            return _error(exc)
        snapshot = faults.snapshot()
        return web.json_response({cloud: snapshot[cloud] for cloud in clouds})

    async def clear_faults(self, request: web.Request) -> web.StreamResponse:
        try:
            name = request.match_info.get("cloud", "all")
            clouds = list(CLOUDS) if name == "all" else self._clouds(name)
            kinds = [k for k in request.query.get("kinds", "").split(",") if k]
            unknown = sorted(set(kinds) - set(KINDS))
            if unknown:
                raise _BadRequest(f"unknown fault kind(s) {unknown}: expected some of {list(KINDS)}")
            for cloud in clouds:
                self.emulator.faults.clear(cloud, *kinds)
        except _BadRequest as exc:
            return _error(exc)
        snapshot = self.emulator.faults.snapshot()
        return web.json_response({cloud: snapshot[cloud] for cloud in clouds})

    async def expire_tokens(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await _body(request, optional=True)
            unknown = sorted(set(body) - {"cloud"})
            if unknown:
                raise _BadRequest(f"unknown key(s) {unknown}: expected only 'cloud'")
            cloud = body.get("cloud")
            if cloud is not None and cloud not in self.emulator.clouds:
                raise _BadRequest(
                    f"this emulator serves no {cloud!r}: it serves {sorted(self.emulator.clouds)}", 404
                )
            expired = self.emulator.expire_tokens(cloud)
        except _BadRequest as exc:
            return _error(exc)
        log.info("emulator.tokens_expired", clouds=expired)
        return web.json_response({"expired": expired})

    async def report_interval(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await _body(request)
            unknown = sorted(set(body) - {"ms", "gateway"})
            if unknown:
                raise _BadRequest(f"unknown key(s) {unknown}: expected 'ms' and optionally 'gateway'")
            ms = body.get("ms")
            if isinstance(ms, bool) or not isinstance(ms, int) or ms <= 0:
                raise _BadRequest("ms must be a positive integer of milliseconds")
            gateway = body.get("gateway")
            if gateway is not None and not isinstance(gateway, str):
                raise _BadRequest("gateway must be a gateway id (string)")
            thingplus = self._thingplus()
            try:
                thingplus.set_report_interval(ms, gateway)
            except KeyError:
                raise _BadRequest(f"gateway {gateway} is not registered", 404) from None
        except _BadRequest as exc:
            return _error(exc)
        return web.json_response({"reportInterval": str(ms), "gateway": gateway})

    async def series_limits(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await _body(request)
            unknown = sorted(set(body) - {"max_age", "max_future"})
            if unknown:
                raise _BadRequest(f"unknown key(s) {unknown}: expected 'max_age' and/or 'max_future'")
            limits: dict[str, float | None] = {}
            for key, value in body.items():
                try:
                    limits[f"{key}_s"] = None if value is None else parse_duration(value)
                except ValueError as exc:
                    raise _BadRequest(f"{key}: {exc}") from None
            thingplus = self._thingplus()
            thingplus.set_series_limits(**limits)
        except _BadRequest as exc:
            return _error(exc)
        return web.json_response(thingplus.series_limits())

    async def delete_gateway(self, request: web.Request) -> web.StreamResponse:
        gateway_id = request.match_info["id"]
        try:
            thingplus = self._thingplus()
            try:
                removed = thingplus.delete_gateway(gateway_id)
            except KeyError:
                raise _BadRequest(f"gateway {gateway_id} is not registered", 404) from None
        except _BadRequest as exc:
            return _error(exc)
        return web.json_response({"deleted": gateway_id, **removed})

    async def rcms_record_interval(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await _body(request)
            unknown = sorted(set(body) - {"ms", "sn"})
            if unknown:
                raise _BadRequest(f"unknown key(s) {unknown}: expected 'ms' and optionally 'sn'")
            ms = body.get("ms")
            if isinstance(ms, bool) or not isinstance(ms, int) or ms <= 0:
                raise _BadRequest("ms must be a positive integer of milliseconds")
            sn = body.get("sn")
            if sn is not None and not isinstance(sn, str):
                raise _BadRequest("sn must be a router serial number (string)")
            rcms = self.emulator.rcms
            if rcms is None:
                raise _BadRequest("this emulator serves no RCMS", 404)
            try:
                rcms.set_record_interval(ms, sn)
            except KeyError:
                raise _BadRequest(f"router {sn} is not in rcms.devices", 404) from None
        except _BadRequest as exc:
            return _error(exc)
        return web.json_response({"ms": ms, "sn": sn})
