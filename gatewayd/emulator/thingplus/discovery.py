"""Thing+'s REST with an API key, as MQTT gateways use it for discovery (no ``/v2`` prefix).

Every call carries the headers ``username: <gateway id>`` and ``apikey: <API key>``:

* ``GET /gateways/{gw}?fields=model&fields=autoCreateDiscoverable``: the gateway record (those fields)
* ``GET /gatewayModels/{model}``: the embedded-gateway model, its device models and ``deviceMgmt``
* ``GET /sensorDrivers/?filter[id]={driverName}``: the drivers named, with their ``idTemplate``
* ``POST /gateways/{gw}/devices`` ``{reqId, name, model}``
* ``POST /gateways/{gw}/sensors`` ``{reqId, category, type, model, driverName, network, name, deviceId}``
  (actuators too, with ``category: actuator``)

Answers are the objects themselves (no ``{statusCode, data}`` envelope); refusals use the HTTPS path's
error body ``{statusCode, message, errors: [{code, message}]}``: 401 wrong gateway id or API key, 403 a
gateway asking about another one, 404 unknown gateway, model, device or driver, 409 an id that exists,
471 while the gateway's plan forbids creating objects (``forbid_create`` of the MQTT gateway), 400 a bad
body. Registered devices and sensors go where the HTTPS path keeps them (``devices``, ``sensors``).
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from aiohttp import web

from gatewayd.emulator.thingplus.checks import conflict_first, keys, string, text_or_integer
from gatewayd.emulator.thingplus.mqttgateways import MqttGateway, MqttGateways
from gatewayd.emulator.thingplus.mqttmodel import (
    CATALOGUE,
    MAX_DEVICES,
    MQTT_DEVICE_MODEL_ID,
    MQTT_NETWORK,
    mqtt_gateway_model,
    sensor_driver,
)
from gatewayd.emulator.thingplus.state import Record, ThingPlusState
from gatewayd.emulator.thingplus.wire import Reject, invalid, not_found, read_json

log = structlog.get_logger(__name__)

_SENSOR_REQUIRED = ("reqId", "category", "type", "model", "driverName", "name", "deviceId")
_SENSOR_OPTIONAL = frozenset({"network", "sequence"})
_DEVICE_OPTIONAL = frozenset({"address"})


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")


class Discovery:
    """The API-key REST handlers of one emulated Thing+ and its known MQTT gateways."""

    def __init__(self, state: ThingPlusState, gateways: MqttGateways) -> None:
        self.state = state
        self.gateways = gateways

    def routes(self) -> list[web.RouteDef]:
        r = self._route
        return [
            web.get("/gateways/{gw}", r("apikey_get_gateway", self.get_gateway)),
            web.get("/gatewayModels/{model}", r("apikey_gateway_model", self.gateway_model)),
            web.get("/sensorDrivers/", r("apikey_sensor_drivers", self.sensor_drivers)),
            web.get("/sensorDrivers", r("apikey_sensor_drivers", self.sensor_drivers)),
            web.post("/gateways/{gw}/devices", r("apikey_register_device", self.register_device)),
            web.post("/gateways/{gw}/sensors", r("apikey_register_sensor", self.register_sensor)),
        ]

    def _route(self, kind: str, fn: Any) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            self.state.requests[kind] += 1
            try:
                caller = self._caller(request)
                return await fn(request, caller)
            except Reject as exc:
                self.state.rejections[f"{kind}:{exc.code}"] += 1
                log.info("emulator.thingplus.rejected", kind=kind, path=request.path, **exc.log_fields())
                return exc.response()

        return handler

    def _caller(self, request: web.Request) -> MqttGateway:
        gateway = self.gateways.check(request.headers.get("username"), request.headers.get("apikey"))
        if gateway is None:
            raise Reject(401, "UNAUTHORIZED", "wrong gateway id (username) or API key (apikey)")
        return gateway

    def _own(self, request: web.Request, caller: MqttGateway) -> Record:
        """The gateway of the path: it must exist (404) and be the caller (403)."""
        gateway_id = request.match_info["gw"]
        record = self.gateways.records.get(gateway_id)
        if record is None:
            raise not_found(f"gateway {gateway_id} not found")
        if gateway_id != caller.id:
            raise Reject(403, "FORBIDDEN", f"gateway {caller.id} may not act for gateway {gateway_id}")
        return record

    def _may_create(self, caller: MqttGateway) -> None:
        if caller.forbid_create:
            raise Reject(471, "PLAN_LIMIT", f"the plan of gateway {caller.id} forbids creating objects")

    async def get_gateway(self, request: web.Request, caller: MqttGateway) -> web.Response:
        record = self._own(request, caller)
        fields = request.query.getall("fields", [])
        if not fields:
            return _json(dict(record))
        return _json({"id": record["id"], **{f: record[f] for f in fields if f in record}})

    async def gateway_model(self, request: web.Request, caller: MqttGateway) -> web.Response:
        model_id = request.match_info["model"]
        if model_id != caller.model:
            raise not_found(f"gateway model {model_id} not found")
        return _json(mqtt_gateway_model(self.state.report_interval_ms, self.state.created_ms))

    async def sensor_drivers(self, request: web.Request, caller: MqttGateway) -> web.Response:
        wanted = request.query.getall("filter[id]", [])
        if not wanted:
            raise invalid("filter[id] is required: the driver names to look up")
        drivers = [d for d in map(sensor_driver, wanted) if d is not None]
        return _json(drivers)

    async def register_device(self, request: web.Request, caller: MqttGateway) -> web.Response:
        state = self.state
        gateway = self._own(request, caller)
        body = await read_json(request)
        conflict_first(body, state.devices, "device")
        keys(body, "body", required=("reqId", "name", "model"), optional=_DEVICE_OPTIONAL)
        device_id = self._new_id(body, caller)
        name, model = string(body, "name", "body"), string(body, "model", "body")
        text_or_integer(body, "address", "body")
        if model != MQTT_DEVICE_MODEL_ID:
            raise invalid(f"device model {model!r} is not a device model of gateway model {caller.model}")
        if sum(1 for d in state.devices.values() if d["owner"] == caller.id) >= MAX_DEVICES:
            raise invalid(
                f"gateway {caller.id} already has the most devices its model allows ({MAX_DEVICES})"
            )
        self._may_create(caller)
        record = self._record({"name": name, "model": model, "owner": caller.id}, gateway, device_id, body)
        state.devices[device_id] = record
        log.info("emulator.thingplus.device_registered", gateway=caller.id, device=device_id, name=name)
        return _json(dict(record), 201)

    async def register_sensor(self, request: web.Request, caller: MqttGateway) -> web.Response:
        state = self.state
        gateway = self._own(request, caller)
        body = await read_json(request)
        conflict_first(body, state.sensors, "sensor")
        keys(body, "body", required=_SENSOR_REQUIRED, optional=_SENSOR_OPTIONAL)
        sensor_id = self._new_id(body, caller)
        category, kind, model, driver, name, device_id = (
            string(body, k, "body") for k in _SENSOR_REQUIRED[1:]
        )
        text_or_integer(body, "sequence", "body")
        if "network" in body and string(body, "network", "body") != MQTT_NETWORK:
            raise invalid(f"network must be {MQTT_NETWORK!r}, not {body['network']!r}")
        device = state.devices.get(device_id)
        if device is None or device["owner"] != caller.id:
            raise not_found(f"device {device_id} not found under gateway {caller.id}")
        expected = CATALOGUE.get((kind, model, driver))
        if expected is None:
            raise invalid(
                f"type {kind!r} with model {model!r} and driver {driver!r} is not in the device model"
            )
        if category != expected:
            raise invalid(f"type {kind!r} is of category {expected!r}, not {category!r}")
        self._may_create(caller)
        fields = {"name": name, "type": kind, "driverName": driver, "model": model, "category": category}
        record = self._record({**fields, "deviceId": device_id, "owner": caller.id}, gateway, sensor_id, body)
        state.sensors[sensor_id] = record
        log.info(
            "emulator.thingplus.sensor_registered",
            gateway=caller.id,
            device=device_id,
            sensor=sensor_id,
            type=kind,
            category=category,
        )
        return _json(dict(record), 201)

    def _new_id(self, body: dict[str, Any], caller: MqttGateway) -> str:
        """An id built from the model's templates: ``{gatewayId}-...``."""
        object_id = string(body, "reqId", "body")
        if not object_id.startswith(f"{caller.id}-") or len(object_id) <= len(caller.id) + 1:
            raise invalid(f"reqId {object_id!r} does not follow the idTemplate ({caller.id}-...)")
        return object_id

    def _record(self, fields: Record, gateway: Record, object_id: str, body: dict[str, Any]) -> Record:
        now = self.state.now_ms()
        record: Record = {**fields, "_site": gateway["_site"], "_service": "1", "mtime": now, "ctime": now}
        record["id"] = object_id
        record.update((k, body[k]) for k in sorted((_DEVICE_OPTIONAL | _SENSOR_OPTIONAL) & body.keys()))
        return record
