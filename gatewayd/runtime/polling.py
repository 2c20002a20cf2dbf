"""The polling controller: the RCMS and loctube pollers built from the inventory, and their jobs.

Why a controller: a reload that changes the ``rcms`` or ``loctube`` section replaces the pollers (new
credentials, devices, interval) while the rest runs on; the pollers themselves
(gatewayd.runtime.pollers) only know how to poll their cloud once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from gatewayd.clouds.http import RequestObserver
from gatewayd.inventory.config import Inventory
from gatewayd.runtime.snapshots import EMPTY, PollingSnapshot
from gatewayd.runtime.supervisor import Supervisor
from gatewayd.runtime.triggers import JumpSafeIntervalTrigger
from gatewayd.sources.latest import LatestState, PollStats

if TYPE_CHECKING:
    import aiohttp

    from gatewayd.runtime.pollers import RcmsPoller

JOBS = ("poll:rcms", "poll:loctube")


class Polling:
    """Builds the pollers of an inventory and schedules them; :meth:`apply` again on a reload."""

    def __init__(
        self,
        supervisor: Supervisor,
        scheduler: AsyncIOScheduler,
        session: aiohttp.ClientSession,
        latest: LatestState,
        state_dir: Path,
        *,
        observer: RequestObserver | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.supervisor = supervisor
        self.scheduler = scheduler
        self.session = session
        self.latest = latest
        self.stats = PollStats()
        self.state_dir = state_dir
        self.observer = observer
        self.clock = clock
        #: The RCMS poller a reload replaces hands its marks on (see RcmsPoller).
        self._rcms_poller: RcmsPoller | None = None
        supervisor.add(self)

    def apply(self, inventory: Inventory) -> None:
        """The pollers of ``inventory``, polling at once and then every poll interval."""
        from gatewayd.clouds.loctube import LoctubeClient
        from gatewayd.clouds.rcms import RcmsClient
        from gatewayd.runtime.pollers import LoctubePoller, RcmsPoller

        self._remove_jobs()
        if inventory.rcms is not None and inventory.rcms.devices:
            rcms = RcmsPoller(
                RcmsClient(self.session, inventory.rcms, observer=self.observer),
                list(inventory.rcms.devices),
                inventory.rcms.poll_interval,
                self.latest,
                self.stats,
                self.state_dir,
                lookback_s=inventory.rcms.lookback,
                clock=self.clock,
                previous=self._rcms_poller,
            )
            self._rcms_poller = rcms
            self._add_job("poll:rcms", rcms.poll, inventory.rcms.poll_interval)
        if inventory.loctube is not None and inventory.loctube.devices:
            loctube = LoctubePoller(
                LoctubeClient(self.session, inventory.loctube, observer=self.observer),
                list(inventory.loctube.devices),
                self.latest,
                self.stats,
                clock=self.clock,
            )
            self._add_job("poll:loctube", loctube.poll, inventory.loctube.poll_interval)

    def _remove_jobs(self) -> None:
        for job_id in JOBS:
            if self.scheduler.get_job(job_id):
                self.scheduler.remove_job(job_id)

    def _until_stop(self, job: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """``job`` for the scheduler: when the stop cancels it half-way, it just ends (no error logged)."""

        async def run() -> None:
            try:
                await job()
            except asyncio.CancelledError:
                if not self.supervisor.stopping:
                    raise

        return run

    def _add_job(self, job_id: str, poll: Callable[[], Awaitable[None]], interval_s: float) -> None:
        self.scheduler.add_job(
            self._until_stop(poll),
            JumpSafeIntervalTrigger(seconds=interval_s),
            id=job_id,
            coalesce=True,
            max_instances=1,
            next_run_time=datetime.now(timezone.utc),
        )

    # ------------------------------------------------------------------ the two-phase stop

    async def stop_intake(self) -> None:
        """No more polls."""
        self._remove_jobs()

    async def drain(self, deadline: float) -> None:
        """Nothing to deliver: polled records only feed bridged sensors."""

    async def close(self) -> None:
        """The clients use the daemon's session, which closes with the supervisor's stack."""

    # ------------------------------------------------------------------ what operators see

    def snapshot(self, *, detail: bool = False) -> PollingSnapshot:
        return PollingSnapshot(
            polls=MappingProxyType(dict(self.stats.polls)),
            latest=MappingProxyType(self.latest.as_json(self.clock())) if detail else EMPTY,
        )
