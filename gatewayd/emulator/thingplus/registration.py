"""Registration as the emulated Thing+ answers it: sites, the gateway model, gateways, devices, sensors.

``GET /v2/sites``, ``GET /v2/gatewayModels/{id}`` (only ``52``, the Open API Gateway),
``POST /v2/registerGateway``, ``GET /v2/gateways[/{id}]``, ``POST|GET /v2/gateways/{owner}/devices[/{id}]``,
``POST|GET /v2/gateways/{owner}/sensors[/{id}]``.

The order of checks is the real platform's: a ``reqId`` that exists is 409 CONFLICT before anything else
in the body is looked at. The optional keys are those the platform's own records carry (the gateway
model's sensor entries, a device's address, the gateway's reportInterval and autoCreateDiscoverable);
any other key is 400 SCHEMA_VALIDATE.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from aiohttp import web

from gatewayd.emulator.thingplus.checks import (
    conflict_first,
    keys,
    report_interval,
    req_id,
    string,
    text_or_integer,
    yes_no,
)
from gatewayd.emulator.thingplus.model import (
    DEVICE_MODEL_ID,
    DRIVER_NAME,
    GATEWAY_MODEL_ID,
    MAX_DEVICES,
    SENSOR_MODELS,
    gateway_model,
)
from gatewayd.emulator.thingplus.owners import ByOwner
from gatewayd.emulator.thingplus.state import Record, ThingPlusState
from gatewayd.emulator.thingplus.wire import invalid, not_found, ok, read_json

log = structlog.get_logger(__name__)

_GATEWAY_OPTIONAL = frozenset({"reportInterval", "autoCreateDiscoverable"})
#: Optional keys kept in the gateway record as given (reportInterval is kept as the platform's text).
_GATEWAY_KEPT = frozenset({"autoCreateDiscoverable"})
_DEVICE_OPTIONAL = frozenset({"address"})
_SENSOR_OPTIONAL = frozenset({"network", "sequence", "virtual"})
_SENSOR_FIELDS = ("reqId", "name", "type", "driverName", "model", "category", "deviceId")


class Registration:
    """The registration handlers of one emulated Thing+."""

    def __init__(self, state: ThingPlusState) -> None:
        self.state = state

    # -- sites and models -------------------------------------------------------------------------

    async def sites(self, request: web.Request) -> web.StreamResponse:
        site_id, created = self.state.site_id, str(self.state.created_ms)
        site = {
            "billing": f"site:{site_id}",
            "code": "iot-service",
            "ctime": created,
            "_service": "1",
            "billingReserve": f"site:{site_id}:reserve",
            "billingLimit": f"site:{site_id}:limit",
            "name": "default",
            "id": site_id,
            "billingMeter": f"site:{site_id}:meter",
            "mtime": created,
            "billingCurrent": f"site:{site_id}:current",
        }
        return ok([site])

    async def gateway_model(self, request: web.Request) -> web.StreamResponse:
        model_id = request.match_info["id"]
        if model_id != GATEWAY_MODEL_ID:
            raise not_found(f"gateway model {model_id} not found")
        return ok(gateway_model(self.state.report_interval_ms, self.state.created_ms))

    # -- gateways ---------------------------------------------------------------------------------

    async def register_gateway(self, request: web.Request) -> web.StreamResponse:
        state = self.state
        body = await read_json(request)
        conflict_first(body, state.gateways, "gateway")
        keys(body, "body", required=("reqId", "params"))
        gateway_id = req_id(body["reqId"])
        params = body["params"]
        keys(params, "params", required=("siteId", "model", "name"), optional=_GATEWAY_OPTIONAL)
        site = string(params, "siteId", "params")
        model = string(params, "model", "params")
        name = string(params, "name", "params")
        interval = state.report_interval_ms
        if "reportInterval" in params:
            interval = report_interval(params["reportInterval"], "params.reportInterval")
        yes_no(params, "autoCreateDiscoverable", "params")
        if site != state.site_id:
            raise not_found(f"site {site} not found")
        if model != GATEWAY_MODEL_ID:
            raise not_found(f"gateway model {model} not found")
        fields = {
            "name": name,
            "model": model,
            "_site": site,
            "_service": "1",
            "reportInterval": str(interval),
        }
        gateway = self._record(fields, gateway_id, params, _GATEWAY_KEPT, tree=True)
        return _created(state.gateways, gateway, "gateway", gateway=gateway_id, name=name)

    async def list_gateways(self, request: web.Request) -> web.StreamResponse:
        return ok([dict(g) for g in self.state.gateways.values()])

    async def get_gateway(self, request: web.Request) -> web.StreamResponse:
        return ok(dict(self.state.gateway(request.match_info["id"])))

    # -- devices ----------------------------------------------------------------------------------

    async def register_device(self, request: web.Request) -> web.StreamResponse:
        state = self.state
        owner = request.match_info["owner"]
        body = await read_json(request)
        conflict_first(body, state.devices, "device")
        keys(body, "body", required=("reqId", "name", "model"), optional=_DEVICE_OPTIONAL)
        device_id = req_id(body["reqId"])
        name = string(body, "name", "body")
        model = string(body, "model", "body")
        text_or_integer(body, "address", "body")
        gateway = state.gateway(owner)
        if model != DEVICE_MODEL_ID:
            raise invalid(f"device model {model!r} is not a device model of gateway model {gateway['model']}")
        if state.devices.count_of(owner) >= MAX_DEVICES:
            raise invalid(f"gateway {owner} already has the most devices its model allows ({MAX_DEVICES})")
        fields = {"name": name, "model": model, "owner": owner, "_site": gateway["_site"], "_service": "1"}
        device = self._record(fields, device_id, body, _DEVICE_OPTIONAL)
        return _created(state.devices, device, "device", gateway=owner, device=device_id, name=name)

    async def list_devices(self, request: web.Request) -> web.StreamResponse:
        return self._list(self.state.devices, request)

    async def get_device(self, request: web.Request) -> web.StreamResponse:
        return self._get(self.state.devices, "device", request)

    # -- sensors ----------------------------------------------------------------------------------

    async def register_sensor(self, request: web.Request) -> web.StreamResponse:
        state = self.state
        owner = request.match_info["owner"]
        body = await read_json(request)
        conflict_first(body, state.sensors, "sensor")
        keys(body, "body", required=_SENSOR_FIELDS, optional=_SENSOR_OPTIONAL)
        sensor_id = req_id(body["reqId"])
        name, kind, driver, model, category, device_id = (
            string(body, key, "body") for key in _SENSOR_FIELDS[1:]
        )
        if "network" in body:
            string(body, "network", "body")
        text_or_integer(body, "sequence", "body")
        yes_no(body, "virtual", "body")
        state.gateway(owner)
        device = state.devices.get(device_id)
        if device is None:
            raise not_found(f"device {device_id} not found")
        if device["owner"] != owner:
            raise invalid(f"device {device_id} belongs to another gateway, not {owner}")
        if category != "sensor":
            raise invalid(
                f"category must be 'sensor' (actuators are not supported over HTTPS), not {category!r}"
            )
        expected = SENSOR_MODELS.get(kind)
        if expected is None:
            raise invalid(f"sensor type {kind!r} is not in device model {device['model']}")
        if driver != DRIVER_NAME or model != expected:
            raise invalid(
                f"sensor type {kind!r} needs driverName {DRIVER_NAME!r} and model {expected!r}, "
                f"not {driver!r} and {model!r}"
            )
        fields = {"name": name, "type": kind, "driverName": driver, "model": model, "category": category}
        sensor = self._record(
            {**fields, "deviceId": device_id, "owner": owner}, sensor_id, body, _SENSOR_OPTIONAL
        )
        fields = {"gateway": owner, "device": device_id, "sensor": sensor_id, "type": kind}
        return _created(state.sensors, sensor, "sensor", **fields)

    async def list_sensors(self, request: web.Request) -> web.StreamResponse:
        return self._list(self.state.sensors, request)

    async def get_sensor(self, request: web.Request) -> web.StreamResponse:
        return self._get(self.state.sensors, "sensor", request)

    # -- shared ------------------------------------------------------------------------------------

    def _record(
        self,
        fields: Record,
        object_id: str,
        given: Mapping[str, Any],
        kept: frozenset[str],
        *,
        tree: bool = False,
    ) -> Record:
        """A new object as the platform writes it: ``fields``, its times and id, then the optional keys
        of ``kept`` the request gave."""
        now = self.state.now_ms()
        record: Record = {**fields, "mtime": now, "ctime": now}
        if tree:
            record["tree"] = object_id
        record["id"] = object_id
        record.update((key, given[key]) for key in sorted(kept & given.keys()))
        return record

    def _list(self, store: ByOwner, request: web.Request) -> web.Response:
        return ok(self.state.children(store, request.match_info["owner"]))

    def _get(self, store: Mapping[str, Record], what: str, request: web.Request) -> web.Response:
        info = request.match_info
        return ok(dict(self.state.owned(store, what, info["owner"], info["id"])))


#: The event logged when an object of each kind is registered (names written out, so they can be found).
_REGISTERED = {
    "gateway": "emulator.thingplus.gateway_registered",
    "device": "emulator.thingplus.device_registered",
    "sensor": "emulator.thingplus.sensor_registered",
}


def _created(store: dict[str, Record], record: Record, kind: str, **fields: Any) -> web.Response:
    """Keep a registered object of ``kind`` under its id, log it, and answer 201 with the record."""
    store[record["id"]] = record
    log.info(_REGISTERED[kind], **fields)
    return ok(dict(record), 201)
