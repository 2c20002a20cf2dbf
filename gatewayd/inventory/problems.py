"""pydantic's validation errors, and repeated names, as problems located in the inventory file.

Every problem is reported at once as ``FILE:LINE:COL: path.to.key: what is wrong``, worded for the person
who wrote the YAML (an unknown key gets a "did you mean"), never in pydantic's own terms.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from gatewayd.errors import ConfigProblem
from gatewayd.inventory.actuators import ActuatorConfig, CommandsConfig
from gatewayd.inventory.models import (
    DeviceConfig,
    DuplicateName,
    GatewayConfig,
    HttpConfig,
    Inventory,
    LoctubeConfig,
    OutboxConfig,
    RcmsConfig,
    SensorConfig,
    ThingPlusConfig,
    require_unique,
)
from gatewayd.inventory.mqtt import MqttConfig
from gatewayd.inventory.yamlsource import DataPath, Located, format_path


def duplicate_names(located: Located, file: str) -> list[ConfigProblem]:
    """Repeated device names, and sensor and actuator names within a device, found even when other keys are wrong."""
    problems = []

    def check(items: Any, path: DataPath, field: str, what: str) -> None:
        if not isinstance(items, list):
            return
        names = [item.get("name") if isinstance(item, dict) else None for item in items]
        try:
            require_unique([n for n in names if isinstance(n, str)], field, what)
        except DuplicateName as dup:
            index = [i for i, n in enumerate(names) if isinstance(n, str)][dup.index]
            where = (*path, field, index, "name")
            line, col = located.position(where) or (None, None)
            problems.append(ConfigProblem(file, line, col, format_path(where), str(dup)))

    data = located.data
    check(data.get("devices"), (), "devices", "device name")
    for i, device in enumerate(data.get("devices") or []):
        if isinstance(device, dict):
            check(device.get("sensors"), ("devices", i), "sensors", "sensor name")
            check(device.get("actuators"), ("devices", i), "actuators", "actuator name")
    return problems


def unique_problems(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    seen: set[ConfigProblem] = set()
    out = []
    for p in problems:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def problems_from(exc: ValidationError, located: Located, file: str) -> list[ConfigProblem]:
    problems = []
    for error in exc.errors(include_url=False):
        path = _data_path(error["loc"], located.data, missing=error["type"] == "missing")
        message = _message(error, path, located.data)
        if isinstance(error.get("ctx", {}).get("error"), DuplicateName):
            dup = error["ctx"]["error"]
            path = (*path, dup.field, dup.index, "name")
        line, col = located.position(path) or (None, None)
        problems.append(ConfigProblem(file, line, col, format_path(path), message))
    problems.sort(key=lambda p: (p.line or 0, p.column or 0))
    return problems


def _data_path(loc: tuple[str | int, ...], data: Any, *, missing: bool = False) -> DataPath:
    """pydantic's ``loc`` as a path in the data: drops union tags such as ``'sine'`` that are not keys.

    The last part of a ``missing`` error's loc is always the key (``thingplus.mqtt`` is missing even
    though ``transport: mqtt`` makes 'mqtt' one of the section's values)."""
    path: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        if isinstance(node, dict):
            if part in node:
                path.append(part)
                node = node[part]
            elif (missing and i == len(loc) - 1) and part.__class__ is str:
                path.append(part)
                node = None
            elif part in node.values() or part.__class__ is not str or "[" in str(part):
                # a discriminated union's tag (the value of 'pattern'), or a function-validator label
                continue
            else:
                path.append(part)
                node = None
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif node is None:
            path.append(part)
        # else: a label pydantic adds for a union member or validator; not a place in the data
    return tuple(path)


def _message(error: ErrorDetails, path: DataPath, data: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        expected = _allowed_keys(path)
        hint = ""
        if expected:
            close = difflib.get_close_matches(str(path[-1]), expected, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; expected one of: {', '.join(expected)}"
        return f"unknown key{hint}"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        ctx = error.get("ctx", {})
        return f"unknown value {ctx.get('tag')!r}: expected one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        ctx = error.get("ctx", {})
        return f"needs the key '{ctx.get('discriminator', 'pattern').strip(chr(39))}'"
    message = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    if kind == "literal_error":
        message = f"unknown value {error.get('input')!r}: " + message[0].lower() + message[1:]
    return message[0].lower() + message[1:] if message else kind


_SECTION_MODELS: dict[str, type[BaseModel]] = {
    "gateway": GatewayConfig,
    "http": HttpConfig,
    "thingplus": ThingPlusConfig,
    "rcms": RcmsConfig,
    "loctube": LoctubeConfig,
    "outbox": OutboxConfig,
}


def _allowed_keys(path: DataPath) -> list[str]:
    """The keys a model at ``path[:-1]`` accepts, for 'did you mean' hints."""
    parent = path[:-1]
    model: type[BaseModel] | None
    if not parent:
        model = Inventory
    elif len(parent) == 1 and isinstance(parent[0], str):
        model = _SECTION_MODELS.get(parent[0])
    elif parent == ("thingplus", "mqtt"):
        model = MqttConfig
    elif parent[0] == "devices" and len(parent) == 2:
        model = DeviceConfig
    elif parent[0] == "devices" and len(parent) == 4:
        model = ActuatorConfig if parent[2] == "actuators" else SensorConfig
    elif parent == ("thingplus", "commands"):
        model = CommandsConfig
    else:
        model = None
    return sorted(field.alias or name for name, field in model.model_fields.items()) if model else []
