"""The inventory: typed, strict models (pydantic v2) and loading from YAML with located problems.

The schema is a contract with users: later versions add keys, never rename them. Unknown keys are
errors, because a typo in an edge box's inventory must not silently fall back to a default.
Every problem is reported at once as ``FILE:LINE:COL: path.to.key: what is wrong``.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from gatewayd.errors import ConfigError, ConfigProblem
from gatewayd.secret import Secret
from gatewayd.yamlsource import DataPath, Located, format_path, load_yaml

# --------------------------------------------------------------------------------------------------
# Scalar types


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Seconds from a number (seconds) or a string like ``500ms``, ``10s``, ``5m``, ``1h``, ``2d``."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 10, '500ms', '10s', '5m' or '1h', not a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(
                f"cannot parse duration {value!r}: use a number of seconds or '500ms', '10s', '5m', '1h', '1d'"
            )
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError("must be a duration such as 10, '500ms', '10s', '5m' or '1h'")
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise ValueError("must be a finite duration")
    if seconds <= 0:
        raise ValueError(f"must be greater than zero (got {value!r})")
    return seconds


#: Seconds, written as a number or with a unit; always > 0.
Duration = Annotated[float, BeforeValidator(parse_duration)]


def _check_url(value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL with a host (got {value!r})")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"has an invalid port: {value!r}") from exc
    if parts.query or parts.fragment:
        raise ValueError(f"must not carry a query or fragment (got {value!r})")
    return value.rstrip("/")


Url = Annotated[str, AfterValidator(_check_url)]


def _check_listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"must be HOST:PORT with a port from 1 to 65535 (got {value!r})")
    return value


Listen = Annotated[str, AfterValidator(_check_listen)]


def _check_nonblank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


Name = Annotated[str, AfterValidator(_check_nonblank)]


def _check_md5(value: Secret) -> Secret:
    if not re.fullmatch(r"[0-9a-fA-F]{32}", value.reveal()):
        raise ValueError("must be the 32 hex digits of an md5 digest")
    return Secret(value.reveal().lower())


class Strict(BaseModel):
    """Base of every inventory model: unknown keys are errors, values are not silently coerced to str."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


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
    password_md5: Annotated[Secret, AfterValidator(_check_md5)] | None = None

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


class RcmsConfig(PolledCloudConfig):
    client_id: Name
    client_secret: Secret


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


# --------------------------------------------------------------------------------------------------
# Sensor sources: each sensor has exactly one of these keys.


class _Pattern(Strict):
    seed: int | None = None
    #: Probability (0..1) that a read fails, to exercise 'err' statuses and alarms.
    dropout: Annotated[float, Field(ge=0, le=1)] = 0.0


class ConstantPattern(_Pattern):
    pattern: Literal["constant"]
    value: float | str | bool = 0.0


class SinePattern(_Pattern):
    pattern: Literal["sine"]
    min: float = 0.0
    max: float = 1.0
    period: Duration = 3600.0
    #: Fraction of a period, 0..1, by which the wave is shifted.
    phase: float = 0.0

    @model_validator(mode="after")
    def _ordered(self) -> SinePattern:
        if self.min > self.max:
            raise ValueError(f"min ({self.min:g}) must not be greater than max ({self.max:g})")
        return self


class RandomWalkPattern(_Pattern):
    pattern: Literal["random_walk"]
    min: float = 0.0
    max: float = 100.0
    #: Largest change between two reads; default 1% of the range.
    step: Annotated[float, Field(gt=0)] | None = None
    start: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> RandomWalkPattern:
        if self.min > self.max:
            raise ValueError(f"min ({self.min:g}) must not be greater than max ({self.max:g})")
        return self


class UniformPattern(_Pattern):
    pattern: Literal["uniform"]
    min: float = 0.0
    max: float = 1.0

    @model_validator(mode="after")
    def _ordered(self) -> UniformPattern:
        if self.min > self.max:
            raise ValueError(f"min ({self.min:g}) must not be greater than max ({self.max:g})")
        return self


SimulateSource = Annotated[
    ConstantPattern | SinePattern | RandomWalkPattern | UniformPattern,
    Field(discriminator="pattern"),
]

#: The source keys a sensor may carry; exactly one per sensor.
SOURCE_KEYS: tuple[str, ...] = ("simulate",)


class SensorConfig(Strict):
    name: Name
    #: A Thing+ sensor type (temperature, humidity, number, percent, ...), checked against the gateway model.
    type: Name
    interval: Duration = 60.0
    simulate: SimulateSource | None = None

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
    located = load_yaml(text, file, env)
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
    if base_dir is not None and not inventory.state_dir.is_absolute():
        inventory = inventory.model_copy(update={"state_dir": base_dir / inventory.state_dir})
    return inventory


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
