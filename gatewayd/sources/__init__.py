"""Sensor sources: where a sensor's values come from. One module per kind, one small protocol.

A source is an object with ``async read() -> Value`` that raises :class:`gatewayd.errors.SourceError`
when a read fails, and ``async close()``. :func:`build_source` makes the one an inventory sensor names.
:func:`thingplus_value` turns what a source read into what Thing+ accepts (a string, or an object).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gatewayd.config import SensorConfig
from gatewayd.errors import SourceError
from gatewayd.pollers import LatestState

#: What a source may return; Thing+ gets it as a string (or an object).
Value = float | int | bool | str | dict[str, Any]


class Source(Protocol):
    async def read(self) -> Value: ...

    async def close(self) -> None: ...


@dataclass
class SourceContext:
    """What sources may need from the daemon: the wall clock, and the latest polled cloud state."""

    clock: Callable[[], float]
    #: The latest RCMS / loctube records, filled by the pollers.
    latest: LatestState = field(default_factory=LatestState)


def build_source(sensor: SensorConfig, context: SourceContext) -> Source:
    """The source object for ``sensor``'s one source key."""
    kind = sensor.source_kind
    if kind == "simulate":
        from gatewayd.sources.simulate import Simulation

        return Simulation(sensor.simulate, clock=context.clock)  # type: ignore[arg-type]
    raise SourceError(f"no source of kind {kind!r}")  # pragma: no cover - config validation forbids it


def thingplus_value(value: Value) -> str | dict[str, Any]:
    """Thing+ takes strings (numbers as strings) or objects; booleans are sent as '1'/'0'."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SourceError(f"not a finite number: {value!r}")
        text = f"{value:.6f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    if isinstance(value, str | dict):
        return value
    raise SourceError(f"unsupported value type {type(value).__name__}")
