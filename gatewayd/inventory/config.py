"""The inventory loaded: read, ``${...}`` expanded, validated, paths resolved and cross-checked.

Every problem is reported at once as ``FILE:LINE:COL: path.to.key: what is wrong`` (see
:mod:`gatewayd.inventory.problems`). The models are in :mod:`gatewayd.inventory.models`; they are
re-exported here, where the rest of gatewayd imports them from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gatewayd.errors import ConfigError, ConfigProblem
from gatewayd.inventory.actuators import ActuatorConfig, CommandsConfig
from gatewayd.inventory.fingerprint import fingerprint
from gatewayd.inventory.fleet import expand, template_seed
from gatewayd.inventory.fleetmqtt import template_problems
from gatewayd.inventory.models import (
    MAX_RCMS_HISTORY_S,
    CloudConfig,
    DeviceConfig,
    GatewayConfig,
    HttpConfig,
    Inventory,
    LoctubeConfig,
    MqttConfig,
    OutboxConfig,
    PolledCloudConfig,
    RcmsConfig,
    SensorConfig,
    ThingPlusConfig,
)
from gatewayd.inventory.problems import duplicate_names, problems_from, unique_problems
from gatewayd.inventory.sensortypes import simulated_values, value_problem
from gatewayd.inventory.sources import ReplayPattern
from gatewayd.inventory.types import Duration, parse_duration
from gatewayd.inventory.yamlsource import DataPath, Located, format_path, load_yaml
from gatewayd.regularfile import load_ca_bundle

__all__ = [
    "MAX_RCMS_HISTORY_S",
    "ActuatorConfig",
    "CloudConfig",
    "CommandsConfig",
    "DeviceConfig",
    "Duration",
    "GatewayConfig",
    "HttpConfig",
    "Inventory",
    "LoctubeConfig",
    "MqttConfig",
    "OutboxConfig",
    "PolledCloudConfig",
    "RcmsConfig",
    "SensorConfig",
    "ThingPlusConfig",
    "fingerprint",
    "load_inventory",
    "parse_duration",
    "parse_inventory",
]

#: The sections that talk to a cloud (each may name a ``ca_file``).
_CLOUD_SECTIONS = ("thingplus", "rcms", "loctube")


def load_inventory(
    path: str | Path, env: dict[str, str] | None = None, *, fleet_gateway: tuple[int, int] = (0, 0)
) -> Inventory:
    """Read, expand and validate an inventory; raise ConfigError listing every problem found.

    A fleet inventory (``fleet:``) is a template: ``fleet_gateway`` = (index, shard) says which of its
    gateways to make (gatewayd.inventory.fleet)."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(file, None, None, "", "file does not exist")]) from None
    except IsADirectoryError:
        raise ConfigError([ConfigProblem(file, None, None, "", "is a directory, not a file")]) from None
    except OSError as exc:
        raise ConfigError([ConfigProblem(file, None, None, "", f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigProblem(file, None, None, "", "is not UTF-8 text")]) from None
    return parse_inventory(
        text, file, env=env, base_dir=Path(path).resolve().parent, fleet_gateway=fleet_gateway
    )


def parse_inventory(
    text: str,
    file: str = "<inventory>",
    env: dict[str, str] | None = None,
    base_dir: Path | None = None,
    *,
    fleet_gateway: tuple[int, int] = (0, 0),
) -> Inventory:
    """Validate inventory text; relative ``state_dir`` is taken relative to ``base_dir``; of a fleet
    template, gateway ``fleet_gateway`` = (index, shard)."""
    located = load_yaml(text, file, env, positions=False)  # positions are found again only if needed
    problems = list(located.problems)
    if any(p.message.startswith("YAML") for p in problems):
        raise ConfigError(problems)
    if located.data is None:
        raise ConfigError(
            [*problems, ConfigProblem(file, None, None, "", "is empty: an inventory is needed")]
        )
    if not isinstance(located.data, dict):
        line, col = located.position(()) or (None, None)
        raise ConfigError(
            [
                *problems,
                ConfigProblem(file, line, col, "", "must be a mapping of sections (gateway, thingplus, ...)"),
            ]
        )
    template: list[tuple[DataPath, str]] = []
    if "fleet" in located.data:
        template = template_problems(located.data)  # as written: before the placeholders are filled
        index, shard = fleet_gateway
        located.data = expand(located.data, index, shard, template_seed(located.data))
    problems.extend(duplicate_names(located, file))
    _validate_devices_in_place(located.data)
    try:
        inventory = Inventory.model_validate(located.data)
    except ValidationError as exc:
        # A value whose ${...} could not be expanded already has its problem; don't pile a second on it.
        expanded_badly = {p.path for p in located.problems}
        problems.extend(p for p in problems_from(exc, located, file) if p.path not in expanded_badly)
        inventory = None
    if problems:
        problems.sort(key=lambda p: (p.line or 0, p.column or 0))
        raise ConfigError(unique_problems(problems))
    assert inventory is not None
    if base_dir is not None:
        inventory = _resolve_paths(inventory, base_dir)
    problems = _cross_checks(inventory, located, file)
    for path, message in template:
        line, col = located.position(path) or (None, None)
        problems.append(ConfigProblem(file, line, col, format_path(path), message))
    if problems:
        raise ConfigError(problems)
    return inventory


def _validate_devices_in_place(data: dict[str, Any]) -> None:
    """Replace each valid device mapping in ``data['devices']`` by its model, one device at a time.

    Why: a big inventory takes tens of MB as a YAML tree and again as models; validated in one
    go, both are alive at the peak (and the process keeps that peak as its size). Device by device,
    each device's tree is freed as its model is made. A device that does not validate stays a
    mapping, and the whole-inventory validation that follows reports its problems, located as ever
    (a device model passes through that validation as it is).
    """
    devices = data.get("devices")
    if not isinstance(devices, list):
        return
    for i, item in enumerate(devices):
        if isinstance(item, dict):
            try:
                devices[i] = DeviceConfig.model_validate(item)
            except ValidationError:
                pass


def _resolve_paths(inventory: Inventory, base_dir: Path) -> Inventory:
    """Relative ``state_dir``, ``ca_file`` and replay files are relative to the inventory file, not the
    cwd (``check`` and ``run`` may be started from different directories)."""
    if not inventory.state_dir.is_absolute():
        inventory = inventory.model_copy(update={"state_dir": base_dir / inventory.state_dir})
    for name in _CLOUD_SECTIONS:
        section = getattr(inventory, name)
        if section is not None and section.ca_file and not Path(section.ca_file).is_absolute():
            section = section.model_copy(update={"ca_file": str(base_dir / section.ca_file)})
            inventory = inventory.model_copy(update={name: section})
    mqtt = inventory.thingplus.mqtt
    if mqtt is not None and mqtt.ca_file and not Path(mqtt.ca_file).is_absolute():
        mqtt = mqtt.model_copy(update={"ca_file": str(base_dir / mqtt.ca_file)})
        thingplus = inventory.thingplus.model_copy(update={"mqtt": mqtt})
        inventory = inventory.model_copy(update={"thingplus": thingplus})
    devices = []
    for device in inventory.devices:
        sensors = []
        for sensor in device.sensors:
            pattern = sensor.simulate
            if isinstance(pattern, ReplayPattern) and not Path(pattern.file).is_absolute():
                pattern = pattern.model_copy(update={"file": str(base_dir / pattern.file)})
                sensor = sensor.model_copy(update={"simulate": pattern})
            sensors.append(sensor)
        devices.append(device.model_copy(update={"sensors": sensors}))
    return inventory.model_copy(update={"devices": devices})


def _cross_checks(inventory: Inventory, located: Located, file: str) -> list[ConfigProblem]:
    """What one section says about another: bridges need their router/device polled; files must exist
    (and a ``ca_file`` load as PEM certificates, as the clients will load it); a simulation's fixed values
    must suit the sensor's type."""
    problems = []

    def problem(path: DataPath, message: str) -> None:
        line, col = located.position(path) or (None, None)
        problems.append(ConfigProblem(file, line, col, format_path(path), message))

    ca_files: list[tuple[DataPath, str | None]] = [
        ((name, "ca_file"), getattr(inventory, name).ca_file)
        for name in _CLOUD_SECTIONS
        if getattr(inventory, name) is not None
    ]
    if inventory.thingplus.mqtt is not None:
        ca_files.append((("thingplus", "mqtt", "ca_file"), inventory.thingplus.mqtt.ca_file))
    for path, ca_file in ca_files:
        if ca_file:
            try:
                load_ca_bundle(ca_file)
            except ValueError as exc:
                problem(path, f"CA bundle {ca_file} {exc}")
    transport = inventory.thingplus.transport
    if inventory.fleet is not None and inventory.thingplus.commands.allow:
        problem(
            ("thingplus", "commands", "allow"),
            "a fleet's gateways are simulated: an allowed poweroff/reboot/swUpdate would act on the machine "
            "running the shard (remove 'allow')",
        )
    if inventory.fleet is not None:
        for name in ("rcms", "loctube"):
            if getattr(inventory, name) is not None:
                problem(
                    (name,),
                    f"a fleet simulates Thing+ gateways: '{name}' is not polled by a fleet (remove it or 'fleet')",
                )
    for i, device in enumerate(inventory.devices):
        if device.actuators and transport != "mqtt":
            problem(
                ("devices", i, "actuators"),
                f"actuators need thingplus.transport: mqtt (Thing+ cannot link actuators over "
                f"{transport}): set it, or remove the actuators",
            )
        for j, sensor in enumerate(device.sensors):
            at: DataPath = ("devices", i, "sensors", j)
            if sensor.rcms is not None:
                if inventory.rcms is None:
                    problem((*at, "rcms"), "bridges an RCMS router, but the inventory has no 'rcms' section")
                elif sensor.rcms.sn not in inventory.rcms.devices:
                    problem(
                        (*at, "rcms", "sn"),
                        f"router {sensor.rcms.sn!r} is not in rcms.devices, so it is never polled",
                    )
            if sensor.loctube is not None:
                if inventory.loctube is None:
                    problem(
                        (*at, "loctube"),
                        "bridges a loctube device, but the inventory has no 'loctube' section",
                    )
                elif sensor.loctube.device not in inventory.loctube.devices:
                    problem(
                        (*at, "loctube", "device"),
                        f"device {sensor.loctube.device!r} is not in loctube.devices, so it is never polled",
                    )
            if isinstance(sensor.simulate, ReplayPattern) and not Path(sensor.simulate.file).is_file():
                problem((*at, "simulate", "file"), f"replay file {sensor.simulate.file} does not exist")
            for where, value in simulated_values(sensor.simulate):
                message = value_problem(sensor.type, value)
                if message is not None:
                    problem((*at, "simulate", *where), message)
    return problems
