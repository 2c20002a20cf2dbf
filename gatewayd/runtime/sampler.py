"""Sampling: read each sensor on its own interval and hand every sample to the durable outbox.

Why jobs are grouped by interval: one APScheduler job per sensor costs a timer and a lock per sensor; at
10,000 sensors the scheduler itself would be the load. One job per distinct interval fires, and starts a
read for each of its sensors whose previous read has finished (a slow source skips a beat; it never
overlaps itself and never delays the others).

Why samples pass through :class:`SampleBuffer`: committing each sample alone would mean one fsync per
sample, which wears flash and caps throughput; the buffer commits everything read in the last fraction
of a second in one transaction. A sample is stamped with the wall clock when it is read (provisionally,
from the monotonic clock, while the wall clock is not set: :mod:`gatewayd.wallclock`); scheduling uses
the event loop's monotonic clock, and :class:`ClockJumpGuard` re-anchors the scheduler when NTP moves
the wall clock (and has the outbox re-stamp the provisional points once it is set).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from gatewayd.compat import slotted_dataclass
from gatewayd.errors import GatewaydError, StorageError
from gatewayd.inventory.sensortypes import numeric_type
from gatewayd.outbox import Outbox, Point
from gatewayd.runtime.boundedqueue import BoundedQueue
from gatewayd.runtime.recordpoints import RecordBindings
from gatewayd.runtime.triggers import JumpSafeIntervalTrigger
from gatewayd.sources import Source, Value, thingplus_value
from gatewayd.wallclock import Stamper

log = structlog.get_logger(__name__)

SAMPLE_JOB_PREFIX = "sample:"


@slotted_dataclass(eq=False)
class SensorRuntime:
    """One inventory sensor while the daemon runs: its ids, its source and how its reads are going.

    Slotted: there are 10,000 of these in a big simulation, and a ``__dict__`` each is ~1 MB more."""

    device: str
    name: str
    type: str
    sensor_id: str
    interval: float
    source: Source
    #: :func:`gatewayd.inventory.config.fingerprint` of the sensor's config: a reload keeps the runtime if equal.
    config_fingerprint: int = 0
    ok: bool | None = None  # None until the first read
    last_error: str | None = None
    #: The newest sample (the value Thing+ gets) and its stamp: references kept, nothing copied.
    last_value: str | dict[str, Any] | None = None
    last_time_ms: int | None = None
    reads: int = 0
    failures: int = 0
    in_flight: bool = False
    #: The source's synchronous read, for sources that never wait (see InstantSource); else None.
    read_now: Callable[[], Value] | None = field(default=None, init=False, repr=False)
    #: ``type`` when it carries only numbers (a text read is then a failed read), else None.
    numeric: str | None = field(default=None, init=False, repr=False)
    #: For a source whose points come from records (gatewayd.runtime.recordpoints): its newest value,
    #: checked on the interval for the status, never sampled. Else None.
    check_now: Callable[[], Value] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.read_now = getattr(self.source, "read_now", None)
        self.check_now = getattr(self.source, "check_now", None)
        self.numeric = self.type if numeric_type(self.type) else None

    @property
    def key(self) -> str:
        return f"{self.device}/{self.name}"

    @property
    def status(self) -> str:
        """What the sensor's Thing+ status says: 'err' when its latest read failed."""
        return "err" if self.ok is False else "on"


#: Most points per commit when a flush has more (the memory a full disk left behind): bounded
#: transactions, and the memory they held is freed as each one commits.
COMMIT_CHUNK = 10_000


class SampleBuffer:
    """Samples read but not yet committed; flushed to the outbox every ``flush_s`` or at ``max_points``.

    At most ``limit`` samples wait: while the outbox cannot be written (a full disk) the oldest past that
    are dropped and counted in ``dropped`` (see :mod:`gatewayd.runtime.boundedqueue` and
    :mod:`gatewayd.runtime.diskguard`, which runs the flushes).
    """

    def __init__(
        self, outbox: Outbox, *, flush_s: float = 0.25, max_points: int = 5000, limit: int = 1_000_000
    ) -> None:
        self.outbox = outbox
        self.flush_s = flush_s
        self.max_points = max_points
        self._points: BoundedQueue[Point] = BoundedQueue(limit)
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self.committed = 0

    def add(self, point: Point) -> None:
        self._points.append(point)
        if len(self._points) >= self.max_points:
            self._wake.set()

    def __len__(self) -> int:
        return len(self._points)

    @property
    def limit(self) -> int:
        return self._points.limit

    @property
    def dropped(self) -> int:
        """Samples dropped, oldest first, because more than ``limit`` waited."""
        return self._points.dropped

    def discard(self) -> int:
        """Forget every waiting sample (the daemon stops and cannot write them); how many there were."""
        return self._points.clear()

    async def wait(self, *, early: bool = True) -> None:
        """Until the next flush is due: ``flush_s`` passed, or (``early``) ``max_points`` are waiting."""
        if not early:
            await asyncio.sleep(self.flush_s)
            return
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=self.flush_s)
        except asyncio.TimeoutError:  # the builtin is not this one before Python 3.11
            pass
        self._wake.clear()

    async def flush(self, chunk: int = COMMIT_CHUNK) -> None:
        """Commit what is buffered, ``chunk`` points at most per commit. On a storage error the points
        not committed stay buffered for the next try.

        Cancelling the caller (the flusher task, at shutdown) does not abandon a commit under way: it is
        waited for (holding the lock) before the cancellation goes on, so its points are neither lost nor
        committed behind the back of a final flush and drain.
        """
        async with self._lock:
            for _ in range(-(-len(self._points) // chunk)):  # what waits now, not what comes
                if not self._points:
                    return
                points = self._points.take(chunk)
                put = asyncio.ensure_future(self.outbox.put(points))
                try:
                    await asyncio.shield(put)
                except asyncio.CancelledError:
                    await asyncio.wait({put})
                    if put.exception() is None:
                        self.committed += len(points)
                    else:
                        self._points.put_back(points)
                    raise
                except StorageError:
                    self._points.put_back(points)
                    raise
                self.committed += len(points)


@dataclass
class SamplerStats:
    sampled: int = 0
    read_errors: int = 0
    skipped_busy: int = 0
    #: Ticks of an interval run twice in one millisecond (overdue ticks run back to back after a stall).
    skipped_same_time: int = 0
    by_interval: dict[float, int] = field(default_factory=dict)


class Sampler:
    """Owns the sampling jobs; ``set_sensors`` (re)builds them, ``stop`` ends them and waits for reads."""

    def __init__(
        self,
        scheduler: AsyncIOScheduler,
        buffer: SampleBuffer,
        *,
        clock: Callable[[], float] = time.time,
        read_timeout_cap: float = 30.0,
        stamp: Callable[[], int] | None = None,
        job_prefix: str = "",
    ) -> None:
        self.scheduler = scheduler
        #: Tells this sampler's jobs from those of other samplers on the same scheduler (a fleet's gateways).
        self.job_prefix = job_prefix
        self.buffer = buffer
        self.clock = clock
        #: A sample's time (unix ms, or a provisional stamp while the wall clock is not set).
        self.stamp = stamp if stamp is not None else Stamper(wall=clock)
        self.read_timeout_cap = read_timeout_cap
        self.stats = SamplerStats()
        self.sensors: list[SensorRuntime] = []
        self._groups: dict[float, list[SensorRuntime]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = False
        self._last_stamp: dict[float, int] = {}  # interval -> the stamp of its latest tick
        self._records = RecordBindings(self)

    def set_sensors(self, sensors: Iterable[SensorRuntime]) -> None:
        """Replace the sensor set; jobs of intervals no longer used are removed, new ones added."""
        self.sensors = list(sensors)
        self._records.rebind(self.sensors)
        groups: dict[float, list[SensorRuntime]] = {}
        for sensor in self.sensors:
            groups.setdefault(sensor.interval, []).append(sensor)
        for interval in set(self._groups) - set(groups):
            self.scheduler.remove_job(self._job_id(interval))
        for interval in set(groups) - set(self._groups):
            self.scheduler.add_job(
                self._tick,
                JumpSafeIntervalTrigger(seconds=interval),
                args=[interval],
                id=self._job_id(interval),
                name=f"sample every {interval:g}s",
                coalesce=True,
                max_instances=1,
                misfire_grace_time=max(1, int(interval)),
                next_run_time=datetime.now(timezone.utc),
            )
        self._groups = groups
        self.stats.by_interval = {k: len(v) for k, v in groups.items()}

    async def _tick(self, interval: float) -> None:
        if self._stopped:
            return
        now_ms = self.stamp()
        if now_ms == self._last_stamp.get(interval):
            # A second read within the same millisecond would carry the same time, and Thing+ keeps
            # one value per time: the later one would silently replace the earlier.
            self.stats.skipped_same_time += 1
            return
        self._last_stamp[interval] = now_ms
        for sensor in self._groups.get(interval, ()):
            read_now = sensor.read_now
            if read_now is not None:
                self._read_inline(sensor, read_now, now_ms)
                continue
            if sensor.check_now is not None:
                self.judge(sensor)
                continue
            if sensor.in_flight:
                self.stats.skipped_busy += 1
                continue
            sensor.in_flight = True
            task = asyncio.create_task(self._read(sensor), name=f"read {sensor.key}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _read_inline(self, sensor: SensorRuntime, read_now: Callable[[], Value], now_ms: int) -> None:
        try:
            value = thingplus_value(read_now(), sensor.numeric)
        except Exception as exc:  # a source bug must not stop sampling of this or other sensors
            self._failed(sensor, _reason(exc))
            return
        self._accepted(sensor, value, now_ms)

    async def _read(self, sensor: SensorRuntime) -> None:
        try:
            timeout = min(self.read_timeout_cap, max(sensor.interval, 1.0))
            try:
                value = thingplus_value(
                    await asyncio.wait_for(sensor.source.read(), timeout=timeout), sensor.numeric
                )
            except asyncio.TimeoutError:
                self._failed(sensor, f"read timed out after {timeout:g}s")
                return
            except Exception as exc:  # a source bug must not stop sampling of this or other sensors
                self._failed(sensor, _reason(exc))
                return
            self._accepted(sensor, value, self.stamp())
        finally:
            sensor.in_flight = False

    def _accepted(self, sensor: SensorRuntime, value: str | dict[str, Any], now_ms: int) -> None:
        self.buffer.add(Point(sensor.sensor_id, now_ms, value))
        sensor.last_value, sensor.last_time_ms = value, now_ms
        sensor.reads += 1
        self.stats.sampled += 1
        self._healthy(sensor)

    def judge(self, sensor: SensorRuntime) -> None:
        """The status of a sensor whose points come from records: what its newest record says."""
        assert sensor.check_now is not None
        try:
            thingplus_value(sensor.check_now(), sensor.numeric)
        except Exception as exc:  # a source bug must not stop sampling of this or other sensors
            self._failed(sensor, _reason(exc))
            return
        self._healthy(sensor)

    def _healthy(self, sensor: SensorRuntime) -> None:
        if sensor.ok is not True:
            if sensor.ok is False:
                log.info("sensor.read_recovered", sensor=sensor.key)
            sensor.ok = True
            sensor.last_error = None

    def _failed(self, sensor: SensorRuntime, reason: str) -> None:
        sensor.failures += 1
        self.stats.read_errors += 1
        # Logged once per change of state, not at every interval.
        if sensor.ok is not False or sensor.last_error != reason:
            log.warning("sensor.read_failed", sensor=sensor.key, error=reason)
        sensor.ok = False
        sensor.last_error = reason

    def _job_id(self, interval: float) -> str:
        return f"{self.job_prefix}{SAMPLE_JOB_PREFIX}{interval:g}"

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop firing, then wait (bounded) for reads in progress so their samples are kept."""
        self._stopped = True
        for interval in list(self._groups):
            try:
                self.scheduler.remove_job(self._job_id(interval))
            except Exception:
                pass
        self._groups = {}
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace_s)


def _reason(exc: Exception) -> str:
    """Our own errors say what went wrong; anything else is a source bug, named by its type."""
    return str(exc) if isinstance(exc, GatewaydError) else f"{type(exc).__name__}: {exc}"


class ClockJumpGuard:
    """Re-anchors interval jobs when the wall clock jumps (NTP after boot, a manual date change).

    APScheduler 3 keeps next run times in wall-clock datetimes: a backwards jump of an hour would pause
    every job for an hour. This watches wall time against the monotonic clock and, past ``tolerance_s``,
    moves every job's next run to now so the intervals continue from the new wall time. ``on_check`` is
    called with both readings at every check (the outbox's re-stamping waits on the clock being set).
    """

    def __init__(
        self,
        scheduler: AsyncIOScheduler,
        *,
        tolerance_s: float = 2.0,
        period_s: float = 1.0,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        on_check: Callable[[float, float], Awaitable[None]] | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.on_check = on_check
        self.tolerance_s = tolerance_s
        self.period_s = period_s
        self.wall = wall
        self.mono = mono
        self.jumps = 0

    @staticmethod
    def jumped(wall_delta: float, mono_delta: float, tolerance_s: float) -> bool:
        """Pure check: did the wall clock move differently from the monotonic clock by more than the tolerance?"""
        return abs(wall_delta - mono_delta) > tolerance_s

    async def run(self) -> None:
        last_wall, last_mono = self.wall(), self.mono()
        while True:
            await asyncio.sleep(self.period_s)
            wall, mono = self.wall(), self.mono()
            if self.jumped(wall - last_wall, mono - last_mono, self.tolerance_s):
                self.jumps += 1
                skew = (wall - last_wall) - (mono - last_mono)
                log.warning("wallclock.jumped", effect="schedules re-anchored", jump_s=round(skew, 3))
                self.reanchor()
            last_wall, last_mono = wall, mono
            if self.on_check is not None:
                await self.on_check(wall, mono)

    def reanchor(self) -> None:
        now = datetime.now(timezone.utc)
        for job in self.scheduler.get_jobs():
            trigger = job.trigger
            if isinstance(trigger, IntervalTrigger):
                self.scheduler.reschedule_job(
                    job.id, trigger=JumpSafeIntervalTrigger(seconds=trigger.interval.total_seconds())
                )
                self.scheduler.modify_job(job.id, next_run_time=now + timedelta(milliseconds=10))
        self.scheduler.wakeup()
