"""Saving the registry through a full disk: a new sensor waits for its id to be on disk, marks wait too.

Why a new sensor waits: a point is keyed by its sensor's id from the moment it is read. Were the id only
in memory when the point reached the outbox, a crash would leave the point under an id nobody knows (the
next start makes another id for that sensor) and it would never be delivered. So a sensor whose new id
cannot be saved (the disk is full at a first start, or when a reload adds it) is not started: the other
sensors run on, the daemon says which sensors wait and why (the log, ``/status``, ``/healthz``, systemd's
``STATUS=``) and starts them by itself once the save succeeds. A first start on a full disk thus runs (no
exit 1, no restart loop), samples nothing it could not key durably, and registers the gateway only once
its id is saved (an object registered under an id this box could forget would stay on Thing+ for good).

Why registration marks never stop anything: a lost mark costs one 409 "already exists" at the next
registration. A save of marks that fails is logged once while it lasts (warning) and done again later.

A failed save is tried again on the disk guard's rhythm (the saver is one of the guard's followers, see
:mod:`gatewayd.runtime.diskguard`): after 1 s doubling up to 1 min, and at once when the outbox takes writes again
or the disk space reserve could be taken back (the disk has room). A save that holds new ids is an
essential write: it gets the outbox's disk space reserve as acks do (:meth:`Outbox.write_aside`), so
when the disk fills while the daemon runs, a sensor a reload adds still starts at once.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import structlog

from gatewayd.errors import DiskFullError, StorageError
from gatewayd.outbox import Outbox
from gatewayd.runtime.diskguard import DiskGuard
from gatewayd.runtime.registry import Registry, Snapshot
from gatewayd.runtime.retryepisode import RETRY_MAX_S, RETRY_S, RetryEpisode
from gatewayd.runtime.snapshots import WaitingSensor

log = structlog.get_logger(__name__)


class RegistrySaver:
    """Saves ``registry`` on the outbox's thread, retries what a full disk refused, and knows which
    sensors wait for their ids; ``on_ids_saved`` starts them once their ids are saved."""

    def __init__(
        self,
        registry: Registry,
        outbox: Outbox,
        guard: DiskGuard,
        *,
        on_ids_saved: Callable[[], Awaitable[None]] | None = None,
        mono: Callable[[], float] = time.monotonic,
        retry_s: float = RETRY_S,
        retry_max_s: float = RETRY_MAX_S,
    ) -> None:
        self.registry = registry
        self.outbox = outbox
        self.guard = guard
        self.on_ids_saved = on_ids_saved
        self.mono = mono
        #: Sensors not started for want of their ids on disk (set by the daemon as it applies sensors).
        self.waiting: list[WaitingSensor] = []
        #: The failures of the saves, while they last.
        self.episode = RetryEpisode(mono, retry_s=retry_s, retry_max_s=retry_max_s)
        self._recoveries_at_failure = 0
        self._reserve_at_failure = True
        self._lock = asyncio.Lock()  # one save at a time: each writes all that is not on disk
        self._saved = asyncio.Event()
        guard.followers.append(self.retry)

    async def save(self, *, at_start: bool = False) -> bool:
        """Save all the registry holds that is not on disk yet (new ids, marks); True when it is saved.

        A failure is logged (once while failures last) and tried again later (:meth:`retry`). At
        start-up an error other than a full disk is raised: the state directory cannot be used.
        """
        async with self._lock:
            if self.registry.dirty:
                snapshot = self.registry.snapshot()
                write = functools.partial(self.registry.write, snapshot)
                try:
                    await self.outbox.write_aside(write, essential=bool(snapshot.new_ids))
                except StorageError as exc:
                    if at_start and not isinstance(exc, DiskFullError):
                        raise
                    self._failed(exc, snapshot)
                    return False
                self.registry.written(snapshot)
            self._succeeded()
            return True

    async def retry(self) -> None:
        """The saver's turn after each pass of the disk guard: a failed save is tried again when due,
        and sensors that waited start once their ids are saved."""
        if self.episode.failures and (not self.registry.dirty or self._due()):
            await self.save()
        if self.waiting and not self.registry.unsaved_ids and self.on_ids_saved is not None:
            await self.on_ids_saved()

    async def gateway_saved(self) -> None:
        """Until the gateway's id is on disk: registering it before could make a second gateway."""
        while not self.registry.gateway_saved():
            self._saved.clear()
            await self._saved.wait()

    def set_waiting(self, waiting: list[WaitingSensor], running: Collection[str]) -> None:
        """The sensors the daemon did not start for want of their ids on disk, and the keys of those
        it runs: sensors that begin or end waiting are logged."""
        before = {w.key for w in self.waiting}
        started = sorted(before.intersection(running))
        if started:
            log.info("registry.sensors_started", sensors=started)
        new = [w.key for w in waiting if w.key not in before]
        if new:
            log.error(
                "registry.sensors_waiting",
                effect="their new ids cannot be saved; the other sensors run on, and these start once their ids "
                "are saved (retried from 1 s doubling to 1 min, at once when the disk has room)",
                sensors=new,
                error=self.episode.error,
                disk_full=self.episode.disk_full,
            )
        self.waiting = waiting

    # ------------------------------------------------------------------ what operators see

    def reason(self, count: int = 1) -> str:
        """Why ``count`` waiting sensors wait, as ``/status``, ``/healthz`` and ``STATUS=`` say it."""
        ids = "its id" if count == 1 else "their ids"
        if self.episode.disk_full:
            return f"waiting for disk space to save {ids}"
        error = self.episode.error
        return f"waiting to save {ids}" + (f" ({error})" if error else "")

    def problem(self) -> str | None:
        """The sensors waiting in one line, or None when none waits."""
        count = len(self.waiting)
        if not count:
            return None
        return f"{count} sensor{'s' if count > 1 else ''} {self.reason(count)}"

    def as_json(self) -> dict[str, Any]:
        """The registry's part of ``/status``."""
        return {
            "saved": not self.registry.dirty,
            "error": self.episode.error,
            "disk_full": self.episode.disk_full,
            "not_saved_for_s": self.episode.for_s(),
            "waiting_sensors": [w.key for w in self.waiting],
        }

    # ------------------------------------------------------------------ internals

    def _due(self) -> bool:
        if self.episode.due():
            return True
        if self.guard.recoveries != self._recoveries_at_failure:
            return True  # the outbox takes writes again: the disk had room
        return self.outbox.reserve_held and not self._reserve_at_failure  # room for the reserve again

    def _failed(self, exc: StorageError, snapshot: Snapshot) -> None:
        first, delay = self.episode.failed(exc)
        self._recoveries_at_failure = self.guard.recoveries
        self._reserve_at_failure = self.outbox.reserve_held
        if not first:
            return
        if snapshot.new_ids:
            event, effect = "registry.not_saved", "what its new ids are for waits, and the save is retried"
        else:
            event, effect = (
                "registry.marks_not_saved",
                "the daemon runs on and saves them later (a lost mark only costs a 409 'already exists' at "
                "the next registration)",
            )
        episode = self.episode
        log.warning(
            event,
            effect=effect,
            error=episode.error,
            disk_full=episode.disk_full,
            new_ids=len(snapshot.new_ids),
            retry_in_s=delay,
        )

    def _succeeded(self) -> None:
        if self.episode.failing:
            log.info(
                "registry.saved_again",
                failures=self.episode.failures,
                not_saved_for_s=self.episode.for_s(1),
            )
        self.episode.ended()
        self._saved.set()
