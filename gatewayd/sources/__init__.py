"""Sensor sources: where a sensor's values come from. One module per kind, one small protocol.

A source is an object with ``async read() -> Value`` that raises :class:`gatewayd.errors.SourceError`
when a read fails, and ``async close()``. :func:`build_source` makes the one an inventory sensor names.
:func:`thingplus_value` turns what a source read into what Thing+ accepts (a string, or an object).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Union

from gatewayd.errors import SourceError
from gatewayd.inventory.config import SensorConfig
from gatewayd.inventory.sensortypes import value_problem
from gatewayd.sources.bridge import CloudBridge
from gatewayd.sources.latest import LatestState

if TYPE_CHECKING:
    import aiohttp

#: What a source may return; Thing+ gets it as a string (or an object).
Value = Union[float, int, bool, str, dict[str, Any]]


class Source(Protocol):
    async def read(self) -> Value: ...

    async def close(self) -> None: ...


class InstantSource(Source, Protocol):
    """A source whose read is a computation or a memory lookup (simulation, bridges).

    The sampler calls ``read_now`` inline for these: no task, no timeout timer per read, which is what
    lets one process sample 10,000 simulated sensors a second.
    """

    def read_now(self) -> Value: ...


@dataclass
class SourceContext:
    """What sources may need from the daemon; shared resources are made on first use and closed once."""

    clock: Callable[[], float]
    #: The latest RCMS / loctube records, filled by the pollers.
    latest: LatestState = field(default_factory=LatestState)
    #: The daemon's HTTP session (http sources); one is made on demand when absent.
    session: aiohttp.ClientSession | None = None
    rcms_poll_interval: float = 60.0
    loctube_poll_interval: float = 60.0
    _modbus: Any = None
    _own_session: aiohttp.ClientSession | None = None

    def http_session(self) -> aiohttp.ClientSession:
        if self.session is not None:
            return self.session
        if self._own_session is None:
            import aiohttp

            self._own_session = aiohttp.ClientSession()
        return self._own_session

    def modbus_pool(self) -> Any:
        """One connection per Modbus endpoint, shared by its sensors."""
        if self._modbus is None:
            from gatewayd.sources.modbuslink import ModbusPool

            self._modbus = ModbusPool()
        return self._modbus

    async def close(self) -> None:
        if self._modbus is not None:
            await self._modbus.close()
            self._modbus = None
        if self._own_session is not None:
            await self._own_session.close()
            self._own_session = None


def build_source(sensor: SensorConfig, context: SourceContext) -> Source:
    """The source object for ``sensor``'s one source key."""
    if sensor.simulate is not None:
        from gatewayd.sources.simulate import Simulation

        return Simulation(sensor.simulate, clock=context.clock, monotonic=time.monotonic)
    if sensor.file is not None:
        from gatewayd.sources.file import FileReader

        return FileReader(sensor.file)
    if sensor.command is not None:
        from gatewayd.sources.command import CommandReader

        return CommandReader(sensor.command)
    if sensor.http is not None:
        from gatewayd.sources.http import HttpReader

        return HttpReader(sensor.http, context.http_session)
    if sensor.modbus is not None:
        from gatewayd.sources.modbus import ModbusReader

        return ModbusReader(sensor.modbus, context.modbus_pool())
    if sensor.rcms is not None:
        from gatewayd.sources.rcmsbridge import RcmsRecordBridge

        return RcmsRecordBridge(
            sensor.rcms.sn,
            sensor.rcms.field,
            latest=context.latest,
            poll_interval_s=context.rcms_poll_interval,
            max_age_s=sensor.rcms.max_age,
            clock=context.clock,
        )
    if sensor.loctube is not None:
        return CloudBridge(
            "loctube",
            sensor.loctube.device,
            sensor.loctube.field,
            latest=context.latest,
            poll_interval_s=context.loctube_poll_interval,
            clock=context.clock,
        )
    raise SourceError(f"sensor {sensor.name!r} has no source")  # config validation forbids it


def thingplus_value(value: Value, numeric: str | None = None) -> str | dict[str, Any]:
    """Thing+ takes strings (numbers as strings) or objects; booleans are sent as '1'/'0'.

    ``numeric``: the sensor's type when it is a numeric one (:mod:`gatewayd.inventory.sensortypes`, decided once
    per sensor): a text that is not a number, or an object, is then a failed read. Numbers, which nearly
    every read gives, are never checked.
    """
    if type(value) is float:  # first: what nearly every sensor reads
        if not math.isfinite(value):
            raise SourceError(f"not a finite number: {value!r}")
        text = f"{value:.6f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):  # a float subclass
        return thingplus_value(float(value))
    if isinstance(value, (str, dict)):
        if numeric is not None:
            problem = value_problem(numeric, value)
            if problem is not None:
                raise SourceError(problem)
        return value
    raise SourceError(f"unsupported value type {type(value).__name__}")
