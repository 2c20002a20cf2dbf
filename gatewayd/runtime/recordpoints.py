"""Points made of polled records: each sensor whose source is record-driven gets a sink into the sampler.

Why through the sampler's buffer: the points then take the path every sample takes (the same batched
commits, the same memory bound and retries while the disk is full, the same outbox), only stamped with
the record's own time instead of the sampler's clock. A record-driven source (an RCMS bridge,
:mod:`gatewayd.sources.rcmsbridge`) has ``bind``/``unbind``; the sampler binds it when its sensor starts and
unbinds it when the sensor goes (a reload that changes it binds the new source instead).
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING, Any

from gatewayd.errors import SourceError
from gatewayd.outbox import Point
from gatewayd.sources import thingplus_value

if TYPE_CHECKING:
    from gatewayd.runtime.sampler import Sampler, SensorRuntime


class SensorSink:
    """Where one sensor's record points go: the sampler's buffer, counted as the sensor's reads."""

    __slots__ = ("refused", "sampler", "sensor")

    def __init__(self, sampler: Sampler, sensor: SensorRuntime) -> None:
        self.sampler = sampler
        self.sensor = sensor
        #: Record values the sensor's type does not take (a text for a numeric sensor): no point.
        self.refused = 0

    def point(self, time_ms: int, value: Any) -> None:
        sensor = self.sensor
        try:
            text = thingplus_value(value, sensor.numeric)
        except SourceError:
            self.refused += 1  # the status says so when it is the newest record (Sampler.judge)
            return
        self.sampler.buffer.add(Point(sensor.sensor_id, time_ms, text))
        if sensor.last_time_ms is None or time_ms >= sensor.last_time_ms:  # a window may come late
            sensor.last_value, sensor.last_time_ms = text, time_ms
        sensor.reads += 1
        self.sampler.stats.sampled += 1

    def refreshed(self) -> None:
        self.sampler.judge(self.sensor)

    def commit(self) -> Awaitable[None]:
        return self.sampler.buffer.flush()


class RecordBindings:
    """The record-driven sources the sampler has bound, by source."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler
        self._bound: dict[int, SensorRuntime] = {}

    def rebind(self, sensors: Iterable[SensorRuntime]) -> None:
        """Bind the sources of ``sensors`` not bound yet; unbind those whose sensor is gone."""
        # check_now is set for record-driven sources only: no attribute lookup that fails per sensor.
        current = {id(s.source): s for s in sensors if s.check_now is not None}
        for key in [k for k in self._bound if k not in current]:
            self._bound.pop(key).source.unbind()  # type: ignore[attr-defined]
        for key, sensor in current.items():
            if key not in self._bound:
                sensor.source.bind(SensorSink(self.sampler, sensor))  # type: ignore[attr-defined]
                self._bound[key] = sensor
