"""A small stand-in for Thing+'s embedded-gateway discovery REST (API-key headers), for daemon tests.

Only what discovery calls: the gateway record, its gateway model, sensor drivers' id templates, and the
device/sensor registrations (409 when the id exists). It records what was registered and every request,
so a test can say "registered once" and "a restart registered nothing".
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiohttp import web

MODEL = "mqtt-gw-model"
#: The device model's sensors and actuators: type -> (driverName, category).
OFFERED = {
    "temperature": ("tempDriver", "sensor"),
    "humidity": ("humDriver", "sensor"),
    "percent": ("pctDriver", "sensor"),
    "number": ("numDriver", "sensor"),
    "powerSwitch": ("switchDriver", "actuator"),
}


class DiscoveryRest:
    """The REST side of the gateways ``keys`` (gateway id -> API key)."""

    def __init__(self, keys: dict[str, str]) -> None:
        self.keys = keys
        self.devices: dict[str, dict[str, Any]] = {}
        self.sensors: dict[str, dict[str, Any]] = {}
        self.requests: Counter[str] = Counter()
        self.refused = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        gw = request.headers.get("username", "")
        if self.keys.get(gw) is None or self.keys[gw] != request.headers.get("apikey"):
            self.refused += 1
            return web.json_response({"message": "Unauthorized"}, status=401)
        path = request.path
        self.requests[f"{request.method} {path.split('/')[1]}"] += 1
        if request.method == "GET" and path == f"/gateways/{gw}":
            return web.json_response({"id": gw, "model": MODEL, "autoCreateDiscoverable": "y"})
        if request.method == "GET" and path == f"/gatewayModels/{MODEL}":
            sensors = [
                {"network": "daliworks", "driverName": d, "model": f"{t}Model", "type": t, "category": c}
                for t, (d, c) in OFFERED.items()
            ]
            device_model = {"id": "dm1", "idTemplate": "{gatewayId}-{deviceAddress}", "discoverable": "y"}
            return web.json_response({"id": MODEL, "deviceModels": [{**device_model, "sensors": sensors}]})
        if request.method == "GET" and path == "/sensorDrivers/":
            driver = request.query.get("filter[id]", "")
            template = "{gatewayId}-{deviceAddress}-{type}-{sequence}"
            return web.json_response([{"id": driver, "idTemplate": template}])
        if request.method == "POST" and path in (f"/gateways/{gw}/devices", f"/gateways/{gw}/sensors"):
            body = await request.json()
            table = self.devices if path.endswith("devices") else self.sensors
            if body["reqId"] in table:
                return web.json_response({"message": "Conflict"}, status=409)
            table[body["reqId"]] = body
            return web.json_response(body, status=201)
        return web.json_response({"message": "Not Found"}, status=404)
