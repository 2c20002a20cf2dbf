"""The emulator's admin paths for Thing+'s MQTT side: known gateways, and commands sent as the portal would.

Never faulted; JSON in and out, a refusal is ``{"error": "..."}``.

=======  ======================================  ====================================================
GET      /_emulator/thingplus/mqtt-gateways      the known MQTT gateways ``[{id, apikey, model,
                                                 forbid_create, record}]``
POST     /_emulator/thingplus/mqtt-gateways      ``{"id", "apikey", "model"?, "forbid_create"?}``:
                                                 know a gateway (again: new key, model, plan);
                                                 ``forbid_create: true`` makes its discovery POSTs
                                                 answer 471
POST     /_emulator/thingplus/rpc                ``{"gateway", "method", "params"?, "timeout"?}``
                                                 (timeout in s, default 10): publish the JSON-RPC
                                                 request on ``v/a/g/{gw}/req`` and answer 200 with
                                                 the gateway's answer object; 504 ``{"error":
                                                 "timeout"}`` when none came in time; 404 for an
                                                 unknown or not connected gateway
POST     /_emulator/thingplus/mqtt-outage        ``{"seconds"?}``: the broker unreachable for that
                                                 long (no ``seconds``: until cleared): open MQTT
                                                 connections are cut (the last will fires) and new
                                                 ones closed at once; answers the outage's state
DELETE   /_emulator/thingplus/mqtt-outage        end the outage now
=======  ======================================  ====================================================
"""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web

from gatewayd.emulator.thingplus.mqttmodel import MQTT_GATEWAY_MODEL_ID
from gatewayd.emulator.thingplus.mqttrpc import CommandTimeout, NotConnected
from gatewayd.emulator.thingplus.mqttside import MqttSide

PREFIX = "/_emulator/thingplus"
DEFAULT_RPC_TIMEOUT_S = 10.0


def _refuse(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any] | None:
    try:
        body = json.loads((await request.read()).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def routes(side: MqttSide) -> list[web.RouteDef]:
    async def list_gateways(request: web.Request) -> web.StreamResponse:
        return web.json_response(side.gateways.snapshot())

    async def add_gateway(request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        if body is None:
            return _refuse("body must be a JSON object {id, apikey, model?, forbid_create?}")
        unknown = sorted(set(body) - {"id", "apikey", "model", "forbid_create"})
        if unknown:
            return _refuse(f"unknown key(s) {unknown}: expected id, apikey, model, forbid_create")
        forbid = body.get("forbid_create", False)
        if not isinstance(forbid, bool):
            return _refuse("forbid_create must be true or false")
        try:
            gateway = side.gateways.add(
                body.get("id"),
                body.get("apikey"),
                body.get("model", MQTT_GATEWAY_MODEL_ID),
                forbid_create=forbid,
            )
        except ValueError as exc:
            return _refuse(str(exc))
        return web.json_response(gateway.view(), status=201)

    async def rpc(request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        if body is None:
            return _refuse("body must be a JSON object {gateway, method, params?, timeout?}")
        unknown = sorted(set(body) - {"gateway", "method", "params", "timeout"})
        if unknown:
            return _refuse(f"unknown key(s) {unknown}: expected gateway, method, params, timeout")
        gateway, method = body.get("gateway"), body.get("method")
        if not isinstance(gateway, str) or not gateway:
            return _refuse("gateway must be a gateway id (string)")
        if not isinstance(method, str) or not method:
            return _refuse("method must be a JSON-RPC method name (string)")
        timeout = body.get("timeout", DEFAULT_RPC_TIMEOUT_S)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
            return _refuse("timeout must be a positive number of seconds")
        try:
            answer = await side.commands.call(gateway, method, body.get("params", {}), float(timeout))
        except NotConnected:
            known = "connected" if gateway in side.gateways.known else "known"
            return _refuse(f"gateway {gateway} is not {known}", 404)
        except CommandTimeout as exc:
            return web.json_response({"error": "timeout", "id": str(exc), "timeout_s": timeout}, status=504)
        return web.json_response(answer)

    async def start_outage(request: web.Request) -> web.StreamResponse:
        body = await _body(request) if request.can_read_body else {}
        if body is None or set(body) - {"seconds"}:
            return _refuse('body must be a JSON object {"seconds"?}')
        seconds = body.get("seconds")
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))):
            return _refuse("seconds must be a positive number")
        try:
            cut = side.outage.start(None if seconds is None else float(seconds))
        except ValueError as exc:
            return _refuse(str(exc))
        return web.json_response({**side.outage.snapshot(), "cut_now": cut})

    async def clear_outage(request: web.Request) -> web.StreamResponse:
        side.outage.clear()
        return web.json_response(side.outage.snapshot())

    return [
        web.post(f"{PREFIX}/mqtt-outage", start_outage),
        web.delete(f"{PREFIX}/mqtt-outage", clear_outage),
        web.get(f"{PREFIX}/mqtt-gateways", list_gateways),
        web.post(f"{PREFIX}/mqtt-gateways", add_gateway),
        web.post(f"{PREFIX}/rpc", rpc),
    ]
