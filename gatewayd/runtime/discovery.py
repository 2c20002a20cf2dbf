"""Registration by discovery (Thing+ MQTT transport): the second strategy beside gatewayd.runtime.registrar.

Why it differs from the HTTPS registration: an embedded gateway is created in the portal (with its API key),
not by gatewayd; the cloud says which gateway model it is, which device model and sensor drivers that
model has, and what their ids look like (id templates). Discovery reads those (three kinds of GET), then
registers each device, sensor and actuator not registered yet (POST; 409 = it exists) under an id made
from the templates (gatewayd.runtime.discoveryids). The ids and the "registered" marks are kept in the
registry beside the local ids the outbox keys points by: a restart registers nothing, and the points
sampled before discovery (the uplink is down at boot) keep their local key and go out under the Thing+ id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from gatewayd.clouds.discovery import DiscoveryClient
from gatewayd.errors import ConfigError, ConfigProblem, PermanentError, StorageError
from gatewayd.inventory.config import Inventory
from gatewayd.runtime.concurrency import bounded_map
from gatewayd.runtime.discoveryids import TemplateError, fill, free_id, sequences
from gatewayd.runtime.registrar import GatewayModel, Registered, SensorSpec, SensorTriple, check_types
from gatewayd.runtime.registry import Registry

log = structlog.get_logger(__name__)

#: What a driver's template is when the cloud gives none (the spec's typical template).
DEFAULT_SENSOR_TEMPLATE = "{gatewayId}-{deviceAddress}-{type}-{sequence}"
DEFAULT_DEVICE_TEMPLATE = "{gatewayId}-{deviceAddress}"


@dataclass(frozen=True)
class DiscoveredModel:
    """What the cloud says of this gateway: its model, the device model used and what it offers."""

    gateway_model: GatewayModel
    device_template: str
    #: Thing+'s sensor entries (network, driverName, model, type, category) by type, per category.
    sensors: dict[str, dict[str, str]]
    actuators: dict[str, dict[str, str]]

    @classmethod
    def parse(cls, model_id: str, data: dict[str, Any]) -> DiscoveredModel:
        """The first discoverable device model of the gateway model (the first one, if none says so)."""
        device_models = [m for m in data.get("deviceModels") or [] if isinstance(m, dict)]
        if not device_models:
            raise PermanentError(
                f"gateway model {model_id} lists no device model", cloud="thingplus", operation="discovery"
            )
        chosen = next((m for m in device_models if m.get("discoverable") == "y"), device_models[0])
        sensors: dict[str, dict[str, str]] = {}
        actuators: dict[str, dict[str, str]] = {}
        for entry in chosen.get("sensors") or []:
            if isinstance(entry, dict) and entry.get("type"):
                spec = {k: str(entry.get(k) or "") for k in ("network", "driverName", "model", "type")}
                spec["category"] = "actuator" if entry.get("category") == "actuator" else "sensor"
                (actuators if spec["category"] == "actuator" else sensors).setdefault(spec["type"], spec)
        model = GatewayModel(
            id=model_id,
            device_model=str(chosen.get("id")),
            sensors={
                t: SensorSpec(t, s["driverName"], s["model"], s["category"]) for t, s in sensors.items()
            },
        )
        return cls(model, str(chosen.get("idTemplate") or DEFAULT_DEVICE_TEMPLATE), sensors, actuators)


#: An actuator to register: (device name, actuator name, actuator type).
ActuatorTriple = tuple[str, str, str]


async def discover(
    client: DiscoveryClient,
    registry: Registry,
    inventory: Inventory,
    *,
    report_interval_ms: int,
    source: str = "inventory",
    sensors: Sequence[SensorTriple] | None = None,
    concurrency: int = 16,
) -> Registered:
    """Register whatever is not registered yet; idempotent, safe to call again after any failure.

    Like :func:`gatewayd.runtime.registrar.register`: only objects whose local ids are saved are
    registered, ``sensors`` stands for the inventory's when the caller no longer holds them, and the
    marks made are left for the caller to save. ConfigError when an inventory type is not in the model.
    """
    if not registry.gateway_saved():
        raise StorageError("the gateway's id is not saved yet")
    record = await client.gateway()
    model_id = record.get("model")
    if not isinstance(model_id, (str, int)) or isinstance(model_id, bool) or model_id == "":
        raise PermanentError(
            "the gateway record names no model", cloud="thingplus", operation="discovery_gateway"
        )
    found = DiscoveredModel.parse(str(model_id), await client.gateway_model(str(model_id)))
    actuators: list[ActuatorTriple] = []
    if sensors is None:
        check_types(inventory, found.gateway_model, source)
        sensors = [(d.name, s.name, s.type) for d, s in inventory.sensors()]
        actuators = [(d.name, a.name, a.type) for d in inventory.devices for a in d.actuators]
        _check_actuators(actuators, found, source)
    sensors = [t for t in sensors if registry.sensor_saved(t[0], t[1])]
    devices = list(dict.fromkeys([d for d, _, _ in sensors] + [d for d, _, _ in actuators]))
    devices = [d for d in devices if registry.device_saved(d)]
    actuators = [t for t in actuators if t[0] in devices]
    created = await _Registering(client, registry, found).run(devices, sensors, actuators, concurrency)
    return Registered(
        gateway_id=client.gateway_id,
        site_id="",
        model=found.gateway_model,
        report_interval_ms=report_interval_ms,
        created=created,
    )


def _check_actuators(actuators: Sequence[ActuatorTriple], found: DiscoveredModel, source: str) -> None:
    offered = ", ".join(sorted(found.actuators)) or "none"
    problems = [
        ConfigProblem(
            source,
            None,
            None,
            "",
            f"actuator '{device}/{name}' has type {type_!r}, which gateway model "
            f"{found.gateway_model.id} does not offer (actuator types: {offered})",
        )
        for device, name, type_ in actuators
        if type_ not in found.actuators
    ]
    if problems:
        raise ConfigError(problems)


class _Registering:
    """One discovery round's registrations, with the drivers' templates read once each."""

    def __init__(self, client: DiscoveryClient, registry: Registry, found: DiscoveredModel) -> None:
        self.client = client
        self.registry = registry
        self.found = found
        self.templates: dict[str, str] = {}
        self.created = 0

    async def run(
        self,
        devices: Sequence[str],
        sensors: Sequence[SensorTriple],
        actuators: Sequence[ActuatorTriple],
        concurrency: int,
    ) -> int:
        for device in devices:
            await self._device(device)
        # Sequences count a device's sensors and actuators of one type together, in inventory order.
        todo: list[tuple[str, str, str, int | None, bool]] = []
        for device in devices:
            mine = [(n, t, False) for d, n, t in sensors if d == device]
            mine += [(n, t, True) for d, n, t in actuators if d == device]
            for (name, type_, is_actuator), seq in zip(mine, sequences([t for _, t, _ in mine])):
                todo.append((device, name, type_, seq, is_actuator))
        for device, name, type_, seq, is_actuator in todo:  # ids first, one at a time: they must differ
            if not is_actuator and self.registry.cloud_id(device, name) is None:
                made = await self._new_id(device, type_, seq, self.found.sensors[type_])
                self.registry.set_cloud_id(made, device, name)
            elif is_actuator and self.registry.actuator_id(device, name) is None:
                made = await self._new_id(device, type_, seq, self.found.actuators[type_])
                self.registry.set_actuator(device, name, made, registered=False)
        pending = [t for t in todo if not self._registered(t[0], t[1], t[4])]
        results = await bounded_map(self._sensor, pending, concurrency)
        if pending:
            log.info("discovery.sensors_registered", count=len(pending), created=sum(results))
        return self.created + sum(results)

    async def _device(self, device: str) -> None:
        cloud_id = self.registry.cloud_id(device)
        if cloud_id is None:
            cloud_id = self._fill(self.found.device_template, device)
            self.registry.set_cloud_id(cloud_id, device)
        if self.registry.device_registered(device):
            return
        result = await self.client.register_device(
            cloud_id, name=device, model=self.found.gateway_model.device_model
        )
        self.registry.mark_device_registered(device)
        self.created += result.created
        log.info(
            "discovery.device_registered" if result.created else "discovery.device_known",
            device=device,
            device_id=cloud_id,
        )

    async def _new_id(self, device: str, type_: str, seq: int | None, spec: dict[str, str]) -> str:
        driver = spec["driverName"]
        if driver not in self.templates:
            record = await self.client.sensor_driver(driver) if driver else {}
            self.templates[driver] = str(record.get("idTemplate") or DEFAULT_SENSOR_TEMPLATE)
        try:
            return free_id(
                self.templates[driver],
                gateway_id=self.client.gateway_id,
                device_address=device,
                type=type_,
                sequence=seq,
                taken=self.registry.taken_cloud_ids(),
            )
        except TemplateError as exc:
            raise PermanentError(str(exc), cloud="thingplus", operation="discovery_sensor_driver") from None

    def _fill(self, template: str, device: str) -> str:
        try:
            return fill(template, gateway_id=self.client.gateway_id, device_address=device)
        except TemplateError as exc:
            raise PermanentError(str(exc), cloud="thingplus", operation="discovery_gateway_model") from None

    def _registered(self, device: str, name: str, is_actuator: bool) -> bool:
        if is_actuator:
            return self.registry.actuator_registered(device, name)
        return self.registry.sensor_registered(device, name)

    async def _sensor(self, todo: tuple[str, str, str, int | None, bool]) -> int:
        device, name, type_, _, is_actuator = todo
        device_id = self.registry.cloud_id(device)
        assert device_id is not None  # made by _device above
        if is_actuator:
            cloud_id = self.registry.actuator_id(device, name)
            spec = self.found.actuators[type_]
        else:
            cloud_id = self.registry.cloud_id(device, name)
            spec = self.found.sensors[type_]
        assert cloud_id is not None  # made by run() before any registration
        result = await self.client.register_sensor(cloud_id, device_id=device_id, name=name, spec=spec)
        if is_actuator:
            self.registry.set_actuator(device, name, cloud_id, registered=True)
        else:
            self.registry.mark_sensor_registered(device, name)
        return int(result.created)
