"""The inventory: typed, strict models (pydantic v2) and loading from YAML with located problems.

The schema is a contract with users: later versions add keys, never rename them. Unknown keys are
errors, because a typo in an edge box's inventory must not silently fall back to a default.
Every problem is reported at once as ``FILE:LINE:COL: path.to.key: what is wrong``.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from gatewayd.errors import ConfigError, ConfigProblem
from gatewayd.inventory.sensortypes import simulated_values, value_problem
from gatewayd.inventory.sources import (
    SOURCE_KEYS,
    CommandSource,
    FileSource,
    HttpSource,
    LoctubeBridge,
    ModbusSource,
    RcmsBridge,
    ReplayPattern,
    SimulateSource,
)
from gatewayd.inventory.types import (
    Duration,
    Listen,
    Name,
    Strict,
    Url,
    at_most,
    check_md5,
    parse_duration,
)
from gatewayd.inventory.yamlsource import DataPath, Located, format_path, load_yaml
from gatewayd.regularfile import load_ca_bundle
from gatewayd.secret import Secret

__all__ = ["Duration", "parse_duration"]

# --------------------------------------------------------------------------------------------------
# Sections


class GatewayConfig(Strict):
    name: Name
    model: Name = "52"
    #: Thing+ site id; absent means the account's first site.
    site: str | None = None


class HttpConfig(Strict):
    listen: Listen = "127.0.0.1:9108"


class CloudConfig(Strict):
    """What every cloud section has: where it is, how long a call may take, which CA to trust."""

    endpoint: Url
    #: PEM bundle to verify a private server's TLS certificate; the system store otherwise.
    ca_file: str | None = None
    timeout: Duration = 15.0


class ThingPlusConfig(CloudConfig):
    client_id: Name
    client_secret: Secret
    username: Name
    password: Secret | None = None
    password_md5: Annotated[Secret, AfterValidator(check_md5)] | None = None

    @model_validator(mode="after")
    def _one_password(self) -> ThingPlusConfig:
        if (self.password is None) == (self.password_md5 is None):
            raise ValueError("give exactly one of 'password' and 'password_md5'")
        return self

    def password_hash(self) -> Secret:
        """The md5 hex of the password: what the token request sends, never the password itself."""
        import hashlib

        if self.password_md5 is not None:
            return self.password_md5
        assert self.password is not None
        return Secret(hashlib.md5(self.password.reveal().encode("utf-8")).hexdigest())


class PolledCloudConfig(CloudConfig):
    poll_interval: Duration = 60.0
    devices: list[Name] = Field(default_factory=list)


#: The longest ``rcms.lookback``, and as far back as RCMS history is ever fetched (a day less than the
#: age at which Thing+ refuses a point: a day for the points to wait in the outbox).
MAX_RCMS_HISTORY_S = 4 * 86400.0
_WHY_LOOKBACK_LIMIT = "Thing+ refuses points about 5 days old, so older RCMS history is never fetched"
RcmsLookback = Annotated[Duration, AfterValidator(at_most(MAX_RCMS_HISTORY_S, "4d", _WHY_LOOKBACK_LIMIT))]


class RcmsConfig(PolledCloudConfig):
    client_id: Name
    client_secret: Secret
    #: How far back the first poll of a router looks (its history since then becomes points), so a
    #: fresh daemon shows a value at once; later polls go on from the newest record.
    lookback: RcmsLookback = 3600.0


class LoctubeConfig(PolledCloudConfig):
    client_id: Name
    secure_key: Secret
    sign: Literal["md5", "sha256"] = "md5"
    auth: Literal["signature", "token", "oauth2"] = "signature"
    #: Lifetime asked for an ``/api/v1/token`` token, in seconds (auth: token).
    token_expires: Annotated[int, Field(gt=0)] = 7200


class OutboxConfig(Strict):
    """Bounds of the durable outbox; past them the oldest points are dropped (and counted)."""

    max_points: Annotated[int, Field(gt=0)] = 5_000_000
    max_age: Duration = 30 * 86400.0
    #: Samples kept in memory while the outbox cannot be written (a full disk); None: sized from the
    #: sampling rate (gatewayd.runtime.diskguard.memory_points_for).
    memory_points: Optional[Annotated[int, Field(gt=0)]] = None  # noqa: UP045 - pydantic evaluates it on 3.9


class SensorConfig(Strict):
    name: Name
    #: A Thing+ sensor type (temperature, humidity, number, percent, ...), checked against the gateway model.
    type: Name
    interval: Duration = 60.0
    simulate: SimulateSource | None = None
    file: FileSource | None = None
    command: CommandSource | None = None
    http: HttpSource | None = None
    modbus: ModbusSource | None = None
    rcms: RcmsBridge | None = None
    loctube: LoctubeBridge | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _one_source(cls, data: Any, handler: ModelWrapValidatorHandler[SensorConfig]) -> SensorConfig:
        """Report a missing or doubled source together with the sensor's other problems, not instead."""
        problem = _source_problem(data) if isinstance(data, dict) else None
        try:
            sensor = handler(data)
        except ValidationError as exc:
            if problem is None:
                raise
            errors: list[Any] = [*exc.errors(), _value_error(problem, data)]
            raise ValidationError.from_exception_data(exc.title, errors) from None
        if problem is not None:
            raise ValueError(problem)
        return sensor

    @property
    def source_kind(self) -> str:
        return next(k for k in SOURCE_KEYS if getattr(self, k) is not None)

    @property
    def source(self) -> Any:
        return getattr(self, self.source_kind)


def _source_problem(data: dict[str, Any]) -> str | None:
    present = [k for k in SOURCE_KEYS if data.get(k) is not None]
    if not present:
        return f"has no source: give exactly one of {', '.join(SOURCE_KEYS)}"
    if len(present) > 1:
        return f"has several sources ({', '.join(present)}): give exactly one"
    return None


def _value_error(message: str, data: Any) -> Any:
    return {"type": "value_error", "loc": (), "input": data, "ctx": {"error": ValueError(message)}}


class DeviceConfig(Strict):
    name: Name
    sensors: list[SensorConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_sensor_names(self) -> DeviceConfig:
        _require_unique([s.name for s in self.sensors], "sensors", "sensor name")
        return self


class Inventory(Strict):
    gateway: GatewayConfig
    state_dir: Path = Path("/var/lib/gatewayd")
    http: HttpConfig | None = None
    thingplus: ThingPlusConfig
    rcms: RcmsConfig | None = None
    loctube: LoctubeConfig | None = None
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    devices: list[DeviceConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_device_names(self) -> Inventory:
        _require_unique([d.name for d in self.devices], "devices", "device name")
        return self

    def sensors(self) -> list[tuple[DeviceConfig, SensorConfig]]:
        """Every (device, sensor) pair in inventory order."""
        return [(d, s) for d in self.devices for s in d.sensors]

    def without_devices(self) -> Inventory:
        """Every section but ``devices``: what a running daemon keeps once its sensors run and are
        registered (at 10,000 sensors the device and sensor models are ~17 MB it no longer needs)."""
        return self.model_copy(update={"devices": []})

    def summary(self) -> dict[str, Any]:
        """What ``gatewayd check`` prints: counts and what is polled."""
        polled = [name for name in ("rcms", "loctube") if getattr(self, name) is not None]
        return {
            "gateway": self.gateway.name,
            "devices": len(self.devices),
            "sensors": sum(len(d.sensors) for d in self.devices),
            "sources": _count_by(s.source_kind for _, s in self.sensors()),
            "polled": polled,
            "thingplus": self.thingplus.endpoint,
            "state_dir": str(self.state_dir),
        }


class _DuplicateName(ValueError):
    """Carries which list entry repeats a name, so the message can point at that line."""

    def __init__(self, field: str, index: int, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.index = index


def fingerprint(value: Any) -> int:
    """A hash of a config value's whole content, secrets included (their repr and JSON say ``***``).

    Equal configs have equal fingerprints; a reload compares a sensor's new config with the
    fingerprint of the one it runs with, so the daemon need not keep every sensor's config model.
    """
    if isinstance(value, BaseModel):
        # Plain values go into the hash as they are (one call per model, not per field, and no
        # isinstance on pydantic's ABC metaclass): 1,000 sensors take a few milliseconds at start-up.
        return hash(
            (type(value), *[v if type(v) in _PLAIN else fingerprint(v) for v in value.__dict__.values()])
        )
    if isinstance(value, (list, tuple)):
        return hash((type(value), *[fingerprint(v) for v in value]))
    if isinstance(value, dict):
        return hash(frozenset((k, fingerprint(v)) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        return hash(frozenset(fingerprint(v) for v in value))
    return hash(value)


#: Leaf types hashed as they are (a Secret hashes its value).
_PLAIN = frozenset({str, int, float, bool, type(None), Secret})


def _require_unique(names: list[str], field: str, what: str) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise _DuplicateName(field, i, f"duplicate {what} {name!r}: names must be unique")
        seen[name] = i


def _count_by(items: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


# --------------------------------------------------------------------------------------------------
# Loading

#: The sections that talk to a cloud (each may name a ``ca_file``).
_CLOUD_SECTIONS = ("thingplus", "rcms", "loctube")


def load_inventory(path: str | Path, env: dict[str, str] | None = None) -> Inventory:
    """Read, expand and validate an inventory; raise ConfigError listing every problem found."""
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
    return parse_inventory(text, file, env=env, base_dir=Path(path).resolve().parent)


def parse_inventory(
    text: str, file: str = "<inventory>", env: dict[str, str] | None = None, base_dir: Path | None = None
) -> Inventory:
    """Validate inventory text; relative ``state_dir`` is taken relative to ``base_dir``."""
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
    problems.extend(_duplicate_names(located, file))
    _validate_devices_in_place(located.data)
    try:
        inventory = Inventory.model_validate(located.data)
    except ValidationError as exc:
        # A value whose ${...} could not be expanded already has its problem; don't pile a second on it.
        expanded_badly = {p.path for p in located.problems}
        problems.extend(p for p in _problems_from(exc, located, file) if p.path not in expanded_badly)
        inventory = None
    if problems:
        problems.sort(key=lambda p: (p.line or 0, p.column or 0))
        raise ConfigError(_unique_problems(problems))
    assert inventory is not None
    if base_dir is not None:
        inventory = _resolve_paths(inventory, base_dir)
    problems = _cross_checks(inventory, located, file)
    if problems:
        raise ConfigError(problems)
    return inventory


def _validate_devices_in_place(data: dict[str, Any]) -> None:
    """Replace each valid device mapping in ``data['devices']`` by its model, one device at a time.

    Why: a 10,000-sensor inventory is ~11 MB as a YAML tree and ~18 MB as models; validated in one
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

    for name in _CLOUD_SECTIONS:
        section = getattr(inventory, name)
        if section is not None and section.ca_file:
            try:
                load_ca_bundle(section.ca_file)
            except ValueError as exc:
                problem((name, "ca_file"), f"CA bundle {section.ca_file} {exc}")
    for i, device in enumerate(inventory.devices):
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


def _duplicate_names(located: Located, file: str) -> list[ConfigProblem]:
    """Repeated device names, and sensor names within a device, found even when other keys are wrong."""
    problems = []

    def check(items: Any, path: DataPath, field: str, what: str) -> None:
        if not isinstance(items, list):
            return
        names = [item.get("name") if isinstance(item, dict) else None for item in items]
        try:
            _require_unique([n for n in names if isinstance(n, str)], field, what)
        except _DuplicateName as dup:
            index = [i for i, n in enumerate(names) if isinstance(n, str)][dup.index]
            where = (*path, field, index, "name")
            line, col = located.position(where) or (None, None)
            problems.append(ConfigProblem(file, line, col, format_path(where), str(dup)))

    data = located.data
    check(data.get("devices"), (), "devices", "device name")
    for i, device in enumerate(data.get("devices") or []):
        if isinstance(device, dict):
            check(device.get("sensors"), ("devices", i), "sensors", "sensor name")
    return problems


def _unique_problems(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    seen: set[ConfigProblem] = set()
    out = []
    for p in problems:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def _problems_from(exc: ValidationError, located: Located, file: str) -> list[ConfigProblem]:
    problems = []
    for error in exc.errors(include_url=False):
        path = _data_path(error["loc"], located.data)
        message = _message(error, path, located.data)
        if isinstance(error.get("ctx", {}).get("error"), _DuplicateName):
            dup = error["ctx"]["error"]
            path = (*path, dup.field, dup.index, "name")
        line, col = located.position(path) or (None, None)
        problems.append(ConfigProblem(file, line, col, format_path(path), message))
    problems.sort(key=lambda p: (p.line or 0, p.column or 0))
    return problems


def _data_path(loc: tuple[str | int, ...], data: Any) -> DataPath:
    """pydantic's ``loc`` as a path in the data: drops union tags such as ``'sine'`` that are not keys."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict):
            if part in node:
                path.append(part)
                node = node[part]
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
    elif parent[0] == "devices" and len(parent) == 2:
        model = DeviceConfig
    elif parent[0] == "devices" and len(parent) == 4:
        model = SensorConfig
    else:
        model = None
    return sorted(model.model_fields) if model else []
