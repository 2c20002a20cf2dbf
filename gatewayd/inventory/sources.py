"""Inventory models of sensor sources: each sensor carries exactly one of these keys.

``simulate`` (patterns), ``file``, ``command``, ``http``, ``modbus`` (TCP or RTU), and the ``rcms`` /
``loctube`` bridges that turn a field of the latest polled cloud state into a sensor. The keys are a
contract: more may be added, none renamed. ``scale``/``offset`` apply as value x scale + offset.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal, Optional, TypeVar, Union

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gatewayd.inventory.types import Duration, Name, Strict


def _check_regex(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"is not a valid regular expression: {exc}") from None
    return value


Regex = Annotated[Optional[str], AfterValidator(_check_regex)]
Scalar = Union[float, int, bool, str]


def _check_http_url(value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL with a host (got {value!r})")
    return value


# ---------------------------------------------------------------------------------------------- simulate


def _check_sim_value(value: Any) -> Scalar:
    """One clear message instead of one per member of the union; numbers must be finite."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number (got {value!r})")
        return value
    got = {type(None): "null", list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)
    raise ValueError(f"must be a number, a string or a boolean (got {got})")


#: A simulated value: a number, a text (a state) or a boolean (sent to Thing+ as '1'/'0').
SimValue = Annotated[Scalar, PlainValidator(_check_sim_value)]


class Spike(Strict):
    """Outliers: with ``probability`` per read, the value jumps by ``size`` (up or down)."""

    probability: Annotated[float, Field(ge=0, le=1)]
    size: Annotated[float, Field(gt=0)]


class _Pattern(Strict):
    # NaN or infinite numbers would make every read of the sensor fail; refuse them up front.
    model_config = ConfigDict(allow_inf_nan=False)

    seed: int | None = None
    #: Probability (0..1) that a read fails, to exercise 'err' statuses and alarms.
    dropout: Annotated[float, Field(ge=0, le=1)] = 0.0
    #: Standard deviation of gaussian noise added to numeric values.
    noise: Annotated[float, Field(ge=0)] = 0.0
    #: Round numeric values to this many decimals.
    decimals: Annotated[int, Field(ge=0, le=12)] | None = None
    spike: Spike | None = None


class _Ranged(_Pattern):
    min: float = 0.0
    max: float = 1.0

    @field_validator("max")
    @classmethod
    def _ordered(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("min")
        if low is not None and low > value:
            raise ValueError(f"must not be less than min ({low:g}), got {value:g}")
        return value


class ConstantPattern(_Pattern):
    pattern: Literal["constant"]
    value: SimValue = 0.0


class SinePattern(_Ranged):
    pattern: Literal["sine"]
    period: Duration = 3600.0
    #: Fraction of a period, 0..1, by which the wave is shifted.
    phase: float = 0.0


class SawtoothPattern(_Ranged):
    pattern: Literal["sawtooth"]
    period: Duration = 3600.0
    phase: float = 0.0


class RandomWalkPattern(_Ranged):
    pattern: Literal["random_walk"]
    max: float = 100.0
    #: Largest change between two reads; default 1% of the range.
    step: Annotated[float, Field(gt=0)] | None = None
    #: The first value; default the middle of the range.
    start: float | None = None

    @field_validator("start")
    @classmethod
    def _inside(cls, value: float | None, info: ValidationInfo) -> float | None:
        low, high = info.data.get("min"), info.data.get("max")
        if value is not None and low is not None and high is not None and not low <= value <= high:
            raise ValueError(f"must be between min ({low:g}) and max ({high:g}), got {value:g}")
        return value


class UniformPattern(_Ranged):
    pattern: Literal["uniform"]


class GaussianPattern(_Pattern):
    pattern: Literal["gaussian"]
    mean: float = 0.0
    stddev: Annotated[float, Field(gt=0)] = 1.0
    #: [low, high]: values outside are clamped.
    clamp: tuple[float, float] | None = None

    @field_validator("clamp")
    @classmethod
    def _clamp_ordered(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and value[0] > value[1]:
            raise ValueError(f"low ({value[0]:g}) must not be greater than high ({value[1]:g})")
        return value


class StepPattern(_Pattern):
    """Each of ``values`` in turn, each held for ``hold``, then from the start again (wall-clock aligned)."""

    pattern: Literal["step"]
    values: Annotated[list[SimValue], Field(min_length=1)]
    hold: Duration = 60.0


class ChoicePattern(_Pattern):
    """A random pick among ``values`` (states, booleans), optionally weighted."""

    pattern: Literal["choice"]
    values: Annotated[list[SimValue], Field(min_length=1)]
    #: One weight (>= 0) per value; default all equal.
    weights: list[Annotated[float, Field(ge=0)]] | None = None

    @field_validator("weights")
    @classmethod
    def _weights_fit(cls, value: list[float] | None, info: ValidationInfo) -> list[float] | None:
        if value is None:
            return None
        values = info.data.get("values")
        if values is not None and len(value) != len(values):
            raise ValueError(
                f"has {len(value)} entries but values has {len(values)}: give one weight per value"
            )
        if sum(value) <= 0:
            raise ValueError("must not all be zero")
        return value


class ReplayPattern(_Pattern):
    """Values from a CSV with a header ``time,value`` (unix s or ms) or ``offset_s,value``.

    Played back by the time elapsed since the sensor's first read, with the recording's spacing; the last
    row lasts as long as the gap before it. Then, with ``loop``, from the start again; without, reads fail.
    A single data row is a constant.
    """

    pattern: Literal["replay"]
    #: Path of the CSV; a relative path is relative to the inventory file.
    file: Name
    loop: bool = True


#: Every simulation pattern; ``pattern`` tells them apart.
SimulatePattern = Union[
    ConstantPattern,
    SinePattern,
    SawtoothPattern,
    RandomWalkPattern,
    UniformPattern,
    GaussianPattern,
    StepPattern,
    ChoicePattern,
    ReplayPattern,
]
SimulateSource = Annotated[SimulatePattern, Field(discriminator="pattern")]


# ---------------------------------------------------------------------------------------------- real sources


class _Scaled(Strict):
    scale: float = 1.0
    offset: float = 0.0


M = TypeVar("M", bound=Strict)


def _not_both(model: M, first: str, second: str) -> M:
    """``model`` unless it gives both of two keys that pick the value in different ways."""
    if getattr(model, first) is not None and getattr(model, second) is not None:
        raise ValueError(f"give '{first}' or '{second}', not both")
    return model


class FileSource(_Scaled):
    """A number read from a file each interval (sysfs, /proc)."""

    path: Name
    #: Pick the value with this regex (its first group, else the whole match).
    regex: Regex = None
    #: Or pick the N-th (0-based) whitespace-separated field, e.g. 0 of /proc/loadavg.
    field: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _one_picker(self) -> FileSource:
        return _not_both(self, "regex", "field")


class CommandSource(_Scaled):
    """A command run each interval (argv list, no shell); stdout parsed as a number, by regex or JSON path."""

    argv: Annotated[list[Name], Field(min_length=1)]
    timeout: Duration = 10.0
    regex: Regex = None
    #: Dotted path into stdout parsed as JSON, e.g. ``sensors.0.temp``.
    json_path: str | None = None

    @model_validator(mode="after")
    def _one_picker(self) -> CommandSource:
        return _not_both(self, "regex", "json_path")


class HttpSource(_Scaled):
    """A JSON document fetched each interval; ``path`` picks the value (``data.temp``)."""

    url: Annotated[str, AfterValidator(_check_http_url)]
    path: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: Duration = 10.0


class ModbusConnection(Strict):
    """Where a Modbus device is: TCP (``host``) or RTU (``serial``), its ``unit``, and how long a request
    may take. Shared by sensors (:class:`ModbusSource`) and actuators (gatewayd.inventory.actuators)."""

    host: str | None = None
    port: Annotated[int, Field(ge=1, le=65535)] = 502
    serial: str | None = None
    baudrate: Annotated[int, Field(gt=0)] = 9600
    parity: Literal["N", "E", "O"] = "N"
    bytesize: Literal[7, 8] = 8
    stopbits: Literal[1, 2] = 1
    unit: Annotated[int, Field(ge=0, le=255)] = 1
    timeout: Duration = 3.0

    @model_validator(mode="after")
    def _one_endpoint(self) -> ModbusConnection:
        if (self.host is None) == (self.serial is None):
            raise ValueError("give exactly one of 'host' (Modbus TCP) and 'serial' (Modbus RTU)")
        return self

    @property
    def endpoint(self) -> str:
        """Sensors and actuators with the same endpoint share one connection."""
        if self.host is not None:
            return f"tcp://{self.host}:{self.port}"
        return f"rtu://{self.serial}?{self.baudrate}{self.parity}{self.bytesize}{self.stopbits}"


class ModbusSource(_Scaled, ModbusConnection):
    """Registers or bits of a Modbus TCP (``host``) or RTU (``serial``) device; ``address`` 0-based."""

    function: Literal["holding", "input", "coil", "discrete"] = "holding"
    address: Annotated[int, Field(ge=0, le=65535)]
    count: Annotated[int, Field(ge=1, le=125)] | None = None
    data_type: Literal["int16", "uint16", "int32", "uint32", "float32", "bool"] | None = None
    word_order: Literal["big", "little"] = "big"
    byte_order: Literal["big", "little"] = "big"

    @model_validator(mode="after")
    def _consistent(self) -> ModbusSource:
        bits = self.function in ("coil", "discrete")
        if bits and self.data_type not in (None, "bool"):
            raise ValueError(f"function {self.function!r} reads bits: data_type must be 'bool'")
        if not bits and self.data_type == "bool":
            raise ValueError(f"function {self.function!r} reads registers: data_type 'bool' is for coils")
        words = self.words
        if self.address + (self.count or words) > 65536:
            raise ValueError(f"address {self.address} + count runs past the last Modbus address (65535)")
        if self.count is not None and not bits and self.count < words:
            raise ValueError(f"count {self.count} is too small for {self.effective_type} ({words} registers)")
        return self

    @property
    def effective_type(self) -> str:
        if self.data_type is not None:
            return self.data_type
        return "bool" if self.function in ("coil", "discrete") else "uint16"

    @property
    def words(self) -> int:
        """Registers the data type spans (1 for bits and 16-bit types)."""
        return 2 if self.effective_type in ("int32", "uint32", "float32") else 1


class RcmsBridge(Strict):
    """A field of every RCMS status record of router ``sn``, e.g. ``cellular.rssi``: one point per record,
    stamped with the record's own time (gatewayd.sources.rcmsbridge)."""

    sn: Name
    field: Name
    #: The sensor is 'err' when its newest record is older than this (from the record's time); default
    #: three of the router's reporting intervals as its records show them, and at least three poll intervals.
    max_age: Optional[Duration] = None  # noqa: UP045 - pydantic evaluates it on 3.9


class LoctubeBridge(Strict):
    """A field of the latest loctube detail of ``device``, e.g. ``state.value``."""

    device: Name
    field: Name


#: The source keys a sensor may carry; exactly one per sensor.
SOURCE_KEYS: tuple[str, ...] = ("simulate", "file", "command", "http", "modbus", "rcms", "loctube")
