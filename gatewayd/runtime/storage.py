"""The storage controller: the outbox, the samples waiting in memory for it, and the guard that keeps
sampling alive through a full disk (gatewayd.runtime.diskguard).

Why a controller of its own: the outbox opens before anything samples and closes after everything has
stopped, and at stop the samples read last must be committed before the grace period for delivery
begins; the other controllers only use the outbox, they never open, bound or close it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from gatewayd.inventory.config import Inventory
from gatewayd.outbox import Outbox
from gatewayd.runtime.diskguard import DiskGuard, memory_points_for
from gatewayd.runtime.sampler import SampleBuffer
from gatewayd.runtime.snapshots import StorageSnapshot
from gatewayd.runtime.supervisor import Supervisor
from gatewayd.runtime.triggers import JumpSafeIntervalTrigger

#: How often the outbox's bounds (max_points, max_age) are enforced.
BOUNDS_EVERY_S = 60
BOUNDS_JOB = "outbox-bounds"


class Storage:
    """Opens the outbox (through a full disk), runs the commits, and commits the last samples at stop."""

    def __init__(
        self,
        inventory: Inventory,
        state_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.outbox = Outbox(
            state_dir / "outbox.db",
            max_points=inventory.outbox.max_points,
            max_age_s=inventory.outbox.max_age,
            clock=clock,
            mono=mono,
        )
        self.buffer = SampleBuffer(self.outbox, limit=memory_points_for(inventory))
        self.disk_guard = DiskGuard(self.outbox, self.buffer, mono=mono)
        self._scheduler: AsyncIOScheduler | None = None
        self._guard: asyncio.Task[Any] | None = None

    async def open(self, supervisor: Supervisor) -> None:
        """Open the outbox (a full disk is waited out); it closes when the supervisor's stack does."""
        supervisor.stack.push_async_callback(self.outbox.close)
        await self.disk_guard.open()

    def start(self, supervisor: Supervisor, scheduler: AsyncIOScheduler) -> None:
        """Commits of what is sampled, and the bounds enforced every minute."""
        self._scheduler = scheduler
        scheduler.add_job(
            self.outbox.enforce_bounds,
            JumpSafeIntervalTrigger(seconds=BOUNDS_EVERY_S),
            id=BOUNDS_JOB,
            coalesce=True,
            max_instances=1,
        )
        self._guard = supervisor.spawn(self.disk_guard.run(), "sample buffer")
        supervisor.add(self)

    # ------------------------------------------------------------------ the two-phase stop

    async def stop_intake(self) -> None:
        """The commits end with one last commit of what was sampled (dropped, counted, if it fails)."""
        if self._scheduler is not None and self._scheduler.get_job(BOUNDS_JOB):
            self._scheduler.remove_job(BOUNDS_JOB)
        if self._guard is not None:
            self._guard.cancel()
            await asyncio.gather(self._guard, return_exceptions=True)
        await self.disk_guard.final_commit()

    async def drain(self, deadline: float) -> None:
        """Nothing to deliver: the reporting controller sends what the outbox holds."""

    async def close(self) -> None:
        """The outbox closes with the supervisor's stack, after every part is done with it."""

    # ------------------------------------------------------------------ what operators see

    def snapshot(self) -> StorageSnapshot:
        stats = self.outbox.stats
        dropped = {"memory_full": 0, "max_points": 0, "max_age": 0}
        dropped.update(stats.dropped_by_reason)
        dropped.update(self.disk_guard.dropped())
        return StorageSnapshot(
            pending=stats.pending,
            dead_lettered=stats.dead_lettered,
            dropped=stats.dropped,
            dropped_by_reason=MappingProxyType(dropped),
            memory_points=len(self.buffer),
            writable=self.disk_guard.writable,
            problem=self.disk_guard.problem(),
            detail=MappingProxyType(self.disk_guard.as_json()),
        )
