"""The sensors controller: the set of sensors that sample, and how it changes on a reload.

Why here: the inventory says which sensors exist, but a sensor samples only once its id is on disk
(gatewayd.runtime.registrysaver), and a reload must keep the sensors it does not change (their source,
connection and counters) while it replaces the others. This module owns that set, its
:class:`~gatewayd.runtime.sampler.SensorRuntime` objects, and the closing of the sources it lets go of.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from gatewayd.inventory.config import Inventory, SensorConfig, fingerprint
from gatewayd.runtime.registry import Registry
from gatewayd.runtime.registrysaver import RegistrySaver
from gatewayd.runtime.sampler import ClockJumpGuard, SampleBuffer, Sampler, SensorRuntime
from gatewayd.runtime.snapshots import SensorRow, SensorsSnapshot, WaitingSensor
from gatewayd.runtime.supervisor import Supervisor
from gatewayd.sources import SourceContext, build_source
from gatewayd.sources.latest import LatestState
from gatewayd.wallclock import RestampOnClockSet, Stamper

if TYPE_CHECKING:
    import aiohttp

    from gatewayd.outbox import Outbox

#: Longest wait for the sources a reload let go of to close before the heap is settled anyway.
SETTLE_WAIT_S = 10.0
#: Longest wait at stop for reads in progress to end (their samples are kept).
STOP_READS_S = 5.0


def watch_wall_clock(
    supervisor: Supervisor,
    scheduler: AsyncIOScheduler,
    outbox: Outbox,
    *,
    wall: Callable[[], float] = time.time,
    mono: Callable[[], float] = time.monotonic,
) -> None:
    """The one watch of a process on the wall clock: re-anchors every job of ``scheduler`` when it
    jumps, and has ``outbox`` re-stamp provisional points once it is set."""
    guard = ClockJumpGuard(scheduler, wall=wall, mono=mono, on_check=RestampOnClockSet(outbox).check)
    supervisor.spawn(guard.run(), "clock guard")


class Sensors:
    """Which sensors sample: applied from an inventory (at start, at a reload), with their sources."""

    def __init__(
        self,
        supervisor: Supervisor,
        registry: Registry,
        saver: RegistrySaver,
        latest: LatestState,
        *,
        clock: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.supervisor = supervisor
        self.registry = registry
        self.saver = saver
        self.clock = clock
        self.mono = mono
        self.sources = SourceContext(clock=clock, latest=latest)
        self.sampler: Sampler | None = None
        self._closing: set[asyncio.Task[Any]] = set()

    def start(
        self,
        scheduler: AsyncIOScheduler,
        buffer: SampleBuffer,
        outbox: Outbox,
        *,
        job_prefix: str = "",
        clock_guard: bool = True,
    ) -> None:
        """Sampling into ``buffer`` on ``scheduler``, and (``clock_guard``) the watch on the wall clock.

        Many gateways on one scheduler (a fleet) each take a ``job_prefix`` and share one clock guard,
        which the process starts once (:func:`watch_wall_clock`).
        """
        self.sampler = Sampler(
            scheduler,
            buffer,
            clock=self.clock,
            stamp=Stamper(wall=self.clock, mono=self.mono),
            job_prefix=job_prefix,
        )
        if clock_guard:
            watch_wall_clock(self.supervisor, scheduler, outbox, wall=self.clock, mono=self.mono)
        self.supervisor.add(self)

    def use_session(self, session: aiohttp.ClientSession) -> None:
        """HTTP sources use the daemon's session from now on."""
        self.sources.session = session

    def set_poll_intervals(self, inventory: Inventory) -> None:
        """Bridged sensors judge staleness by their cloud's poll interval."""
        if inventory.rcms is not None:
            self.sources.rcms_poll_interval = inventory.rcms.poll_interval
        if inventory.loctube is not None:
            self.sources.loctube_poll_interval = inventory.loctube.poll_interval

    @property
    def running(self) -> list[SensorRuntime]:
        return self.sampler.sensors if self.sampler is not None else []

    # ------------------------------------------------------------------ the set

    async def apply(self, inventory: Inventory, *, at_start: bool = False) -> None:
        """(Re)build the running set; unchanged sensors keep their source and state. A sensor starts
        once its id is on disk; until then it waits (see gatewayd.runtime.registrysaver)."""
        assert self.sampler is not None
        self.registry.add_ids([(d.name, s.name) for d, s in inventory.sensors()])
        if self.registry.unsaved_ids:
            await self.saver.save(at_start=at_start)
        old = {(r.device, r.name): r for r in self.sampler.sensors}
        runtimes = []
        waiting = []
        for device, sensor in inventory.sensors():
            if not self.registry.sensor_saved(device.name, sensor.name):
                waiting.append(WaitingSensor(device.name, sensor.name, sensor.type))
                continue
            previous = old.get((device.name, sensor.name))
            config_fingerprint = fingerprint(sensor)
            if previous is not None and previous.config_fingerprint == config_fingerprint:
                runtimes.append(previous)
                continue
            runtimes.append(self._runtime(device.name, sensor, config_fingerprint))
        kept = {id(r) for r in runtimes}
        for runtime in old.values():
            if id(runtime) not in kept:
                self._close_later(runtime)
        self.sampler.set_sensors(runtimes)
        self.saver.set_waiting(waiting, {r.key for r in runtimes})

    def unregistered(self) -> bool:
        """Whether some running sensor is not registered on Thing+ (yet)."""
        return any(not self.registry.sensor_registered(r.device, r.name) for r in self.running)

    def triples(self) -> list[tuple[str, str, str]]:
        """(device, name, type) of each running sensor: what registration needs of it."""
        return [(r.device, r.name, r.type) for r in self.running]

    def statuses(self) -> Any:
        """(sensor id, status) of each running sensor, lazily (10,000 of them)."""
        return ((s.sensor_id, s.status) for s in self.running)

    async def closed(self, timeout_s: float = SETTLE_WAIT_S) -> None:
        """Until the sources let go of are closed (bounded)."""
        closing = [t for t in self._closing if not t.done()]
        if closing:
            await asyncio.wait(closing, timeout=timeout_s)

    def closing(self) -> int:
        """Sources let go of and still closing."""
        return sum(1 for t in self._closing if not t.done())

    def _runtime(self, device: str, sensor: SensorConfig, config_fingerprint: int) -> SensorRuntime:
        return SensorRuntime(
            device=device,
            name=sensor.name,
            type=sensor.type,
            sensor_id=self.registry.sensor_id(device, sensor.name),
            interval=sensor.interval,
            source=build_source(sensor, self.sources),
            config_fingerprint=config_fingerprint,
        )

    def _close_later(self, runtime: SensorRuntime) -> None:
        task = self.supervisor.spawn(runtime.source.close(), f"close {runtime.key}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # ------------------------------------------------------------------ the two-phase stop

    async def stop_intake(self) -> None:
        """Sampling stops; reads in progress get a moment to end, so their samples are kept."""
        if self.sampler is not None:
            await self.sampler.stop(grace_s=min(STOP_READS_S, self.supervisor.grace_s))

    async def drain(self, deadline: float) -> None:
        """Nothing to deliver: samples are in the outbox."""

    async def close(self) -> None:
        for runtime in self.running:
            with contextlib.suppress(Exception):
                await runtime.source.close()
        await self.sources.close()

    # ------------------------------------------------------------------ what operators see

    def snapshot(self, *, detail: bool = False) -> SensorsSnapshot:
        stats = self.sampler.stats if self.sampler is not None else None
        rows: tuple[SensorRow, ...] = ()
        if detail:
            rows = tuple(
                SensorRow(
                    s.device,
                    s.name,
                    s.sensor_id,
                    s.type,
                    s.status,
                    s.reads,
                    s.failures,
                    s.last_error,
                    s.last_value,
                    s.last_time_ms,
                )
                for s in self.running
            )
        return SensorsSnapshot(
            count=len(self.running),
            sampled=stats.sampled if stats else 0,
            read_errors=stats.read_errors if stats else 0,
            rows=rows,
            waiting=tuple(self.saver.waiting),
            waiting_reason=self.saver.reason(),
            waiting_problem=self.saver.problem(),
            registry=MappingProxyType(self.saver.as_json()),
        )
