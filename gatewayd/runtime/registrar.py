"""Registration on Thing+: site, gateway model, then the gateway, its devices and sensors, once each.

Why a separate step that may take hours: an edge box often boots before its uplink. Sampling does not
wait for this; the daemon retries :func:`register` with backoff until it succeeds, then starts reporting
and sends the backlog. Ids come from :class:`gatewayd.runtime.registry.Registry`, and only ids already on disk
are registered (an object registered under an id this box could still forget, in a crash before the
save, would stay on Thing+ for good), so a 409 CONFLICT simply means the object is already there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from gatewayd.clouds.thingplus import ThingPlusClient, report_interval_ms
from gatewayd.errors import ConfigError, ConfigProblem, PermanentError, StorageError
from gatewayd.inventory.config import Inventory
from gatewayd.runtime.concurrency import bounded_map
from gatewayd.runtime.registry import Registry

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SensorSpec:
    """What the gateway model says a sensor of one type is registered as."""

    type: str
    driver_name: str
    model: str
    category: str


@dataclass(frozen=True)
class GatewayModel:
    id: str
    device_model: str
    sensors: dict[str, SensorSpec]

    @classmethod
    def parse(cls, model_id: str, data: dict[str, Any]) -> GatewayModel:
        device_models = data.get("deviceModels") or []
        if not device_models or not isinstance(device_models[0], dict):
            raise PermanentError(
                f"gateway model {model_id} lists no device model",
                cloud="thingplus",
                operation="gateway_model",
            )
        sensors: dict[str, SensorSpec] = {}
        for device_model in device_models:
            for s in device_model.get("sensors") or []:
                if isinstance(s, dict) and s.get("type") and s.get("category", "sensor") == "sensor":
                    sensors.setdefault(
                        str(s["type"]),
                        SensorSpec(
                            str(s["type"]),
                            str(s.get("driverName", "")),
                            str(s.get("model", "")),
                            str(s.get("category", "sensor")),
                        ),
                    )
        return cls(id=model_id, device_model=str(device_models[0].get("id")), sensors=sensors)


@dataclass(frozen=True)
class Registered:
    gateway_id: str
    site_id: str
    model: GatewayModel
    report_interval_ms: int | None
    created: int  # objects created on this run (0 on a restart with everything registered)


def check_types(inventory: Inventory, model: GatewayModel, source: str = "inventory") -> None:
    """Every inventory sensor type must exist in the gateway model; a ConfigError names each that doesn't."""
    problems = []
    for d_index, device in enumerate(inventory.devices):
        for s_index, sensor in enumerate(device.sensors):
            if sensor.type not in model.sensors:
                problems.append(
                    ConfigProblem(
                        source,
                        None,
                        None,
                        f"devices[{d_index}].sensors[{s_index}].type",
                        f"sensor '{device.name}/{sensor.name}' has type {sensor.type!r}, which gateway model "
                        f"{model.id} does not offer (it has: {', '.join(sorted(model.sensors))})",
                    )
                )
    if problems:
        raise ConfigError(problems)


#: A sensor to register: (device name, sensor name, sensor type).
SensorTriple = tuple[str, str, str]


async def register(
    client: ThingPlusClient,
    registry: Registry,
    inventory: Inventory,
    *,
    concurrency: int = 16,
    source: str = "inventory",
    sensors: Sequence[SensorTriple] | None = None,
) -> Registered:
    """Register whatever is not registered yet; idempotent, safe to call again after any failure.

    ``sensors`` replaces the inventory's devices when the caller no longer holds them (a running
    daemon keeps only its runtimes; see :meth:`Inventory.without_devices`). Devices and sensors whose
    ids are not saved yet are left for a later call; the gateway's must be saved (StorageError if not:
    the daemon waits for it, see :meth:`gatewayd.runtime.registrysaver.RegistrySaver.gateway_saved`). The marks
    made are left for the caller to save.
    """
    if not registry.gateway_saved():
        raise StorageError("the gateway's id is not saved yet: registering it could make a second gateway")
    site_id = inventory.gateway.site
    if site_id is None:
        sites = await client.sites()
        if not sites:
            raise PermanentError("the account has no site", cloud="thingplus", operation="sites")
        site_id = str(sites[0]["id"])
    model = GatewayModel.parse(inventory.gateway.model, await client.gateway_model(inventory.gateway.model))
    if sensors is None:
        check_types(inventory, model, source)
        sensors = [(d.name, s.name, s.type) for d, s in inventory.sensors()]
        devices = [d.name for d in inventory.devices]
    else:
        _check_triples(sensors, model, source)
        devices = list(dict.fromkeys(device for device, _, _ in sensors))
    sensors = [
        (device, name, type_) for device, name, type_ in sensors if registry.sensor_saved(device, name)
    ]
    devices = [device for device in devices if registry.device_saved(device)]
    gateway_id = registry.gateway_id()
    created = await _register_objects(
        client, registry, inventory, model, site_id, devices, sensors, concurrency
    )
    record = await client.gateway(gateway_id)
    return Registered(
        gateway_id=gateway_id,
        site_id=site_id,
        model=model,
        report_interval_ms=report_interval_ms(record),
        created=created,
    )


def _check_triples(sensors: Sequence[SensorTriple], model: GatewayModel, source: str) -> None:
    """:func:`check_types` for sensors known by name and type only (the model may have changed)."""
    problems = [
        ConfigProblem(
            source,
            None,
            None,
            "",
            f"sensor '{device}/{name}' has type {type_!r}, which gateway model {model.id} does not offer",
        )
        for device, name, type_ in sensors
        if type_ not in model.sensors
    ]
    if problems:
        raise ConfigError(problems)


async def _register_objects(
    client: ThingPlusClient,
    registry: Registry,
    inventory: Inventory,
    model: GatewayModel,
    site_id: str,
    devices: Sequence[str],
    sensors: Sequence[SensorTriple],
    concurrency: int,
) -> int:
    gateway_id = registry.gateway_id()
    created = 0
    if not registry.gateway_registered():
        result = await client.register_gateway(
            gateway_id, name=inventory.gateway.name, site_id=site_id, model=inventory.gateway.model
        )
        registry.mark_gateway_registered()
        created += result.created
        log.info(
            "registration.gateway_registered" if result.created else "registration.gateway_known",
            gateway_id=gateway_id,
            site=site_id,
        )

    for device in devices:
        if not registry.device_registered(device):
            result = await client.register_device(
                gateway_id, registry.device_id(device), name=device, model=model.device_model
            )
            registry.mark_device_registered(device)
            created += result.created
            log.info(
                "registration.device_registered" if result.created else "registration.device_known",
                device=device,
                device_id=registry.device_id(device),
            )

    async def one(todo: tuple[str, str, str]) -> int:
        device, name, type_ = todo
        spec = model.sensors[type_]
        result = await client.register_sensor(
            gateway_id,
            registry.sensor_id(device, name),
            device_id=registry.device_id(device),
            name=name,
            type=type_,
            driver_name=spec.driver_name,
            model=spec.model,
            category=spec.category,
        )
        registry.mark_sensor_registered(device, name)
        return int(result.created)

    todo: Sequence[SensorTriple] = [
        (device, name, type_)
        for device, name, type_ in sensors
        if not registry.sensor_registered(device, name)
    ]
    if todo:
        results = await bounded_map(one, todo, concurrency)
        created += sum(results)
        log.info("registration.sensors_registered", count=len(todo), created=sum(results))
    return created
