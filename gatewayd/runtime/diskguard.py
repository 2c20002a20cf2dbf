"""Sampling through a full disk: samples wait in bounded memory and the outbox is retried until it works.

Why the daemon does not stop: a full disk passes (logs are rotated, uploads drain the outbox, someone
cleans up), while a daemon that exits on it is restarted by systemd into the same full disk, over and
over, sampling nothing. So when the outbox cannot be opened at start-up for lack of room, or a commit
fails, sampling goes on into :class:`~gatewayd.runtime.sampler.SampleBuffer`, whose bound
(``outbox.memory_points``) drops the oldest samples past it, counted; uploads and acks go on (the
outbox gives them its disk space reserve, see :mod:`gatewayd.outbox.diskreserve`), which frees room.

The outbox is tried again (opened, or the memory committed) when the first of these comes:

- the backoff since the last failure ran out (1 s, doubling up to 1 min);
- points left the outbox since the failure (acks, trims, dead letters): their pages can take new ones;
- the disk has room again for the reserve, which is checked every second.

Meanwhile the loop wakes every flush interval only: the buffer's "full" signal, which says a commit is
due, would wake it at every sample for a retry that is not due. Other small writes that wait for room
(the registry's, :mod:`gatewayd.runtime.registrysaver`) follow this rhythm: after each pass the guard calls its
``followers``, which see :attr:`DiskGuard.recoveries` to learn that the disk takes writes again.

Never silently: the first failure is logged with its cause, then a line a minute with the counts while
it lasts; ``/healthz`` says 503 with the reason, ``/metrics`` counts the drops, and the recovery is
logged. At stop, what is still in memory gets one last commit; what cannot be written is logged as
dropped, with the count.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from gatewayd.errors import DiskFullError, StorageError
from gatewayd.inventory.config import Inventory
from gatewayd.outbox import Outbox
from gatewayd.runtime.retryepisode import RETRY_MAX_S, RETRY_S, RetryEpisode
from gatewayd.runtime.sampler import COMMIT_CHUNK, SampleBuffer

log = structlog.get_logger(__name__)

#: How often the disk is checked for room to take the reserve back.
ROOM_CHECK_S = 1.0
#: Least time between two log lines about samples waiting in memory.
REPORT_EVERY_S = 60.0
#: Smallest commit tried when a larger one finds the disk full (see :meth:`DiskGuard._flush`).
MIN_COMMIT = 100

#: Default ``outbox.memory_points``: this many seconds of the inventory's sampling, within the bounds.
MEMORY_SECONDS = 600
MEMORY_POINTS_MIN = 10_000
MEMORY_POINTS_MAX = 1_000_000


def memory_points_for(inventory: Inventory) -> int:
    """``outbox.memory_points``, or when unset: 10 minutes of every sensor sampling at its interval,
    at least 10,000 and at most 1,000,000 points (about 170 bytes of memory each: bench/README.md,
    History)."""
    if inventory.outbox.memory_points is not None:
        return inventory.outbox.memory_points
    per_second = sum(1.0 / sensor.interval for _, sensor in inventory.sensors())
    return max(MEMORY_POINTS_MIN, min(MEMORY_POINTS_MAX, math.ceil(per_second * MEMORY_SECONDS)))


class DiskGuard:
    """Runs the flushes of ``buffer`` into ``outbox``, and keeps sampling alive when they cannot be done."""

    def __init__(
        self,
        outbox: Outbox,
        buffer: SampleBuffer,
        *,
        mono: Callable[[], float] = time.monotonic,
        retry_s: float = RETRY_S,
        retry_max_s: float = RETRY_MAX_S,
    ) -> None:
        self.outbox = outbox
        self.buffer = buffer
        self.mono = mono
        #: False from a failed open or commit until a commit succeeds again.
        self.writable = False
        #: The failures of the outbox's writes, while they last.
        self.episode = RetryEpisode(mono, retry_s=retry_s, retry_max_s=retry_max_s)
        #: Samples in memory that the stop could not write.
        self.dropped_at_stop = 0
        #: Times writing worked again after failing: a moment when the disk had room.
        self.recoveries = 0
        #: Called after each pass of :meth:`run`: other writes that wait for room retry on its rhythm.
        self.followers: list[Callable[[], Awaitable[None]]] = []
        self._next_room_check = 0.0
        self._removed_at_failure = 0
        self._last_report = float("-inf")
        self._dropped_reported = 0

    # ------------------------------------------------------------------ life cycle

    async def open(self) -> None:
        """Open the outbox at start-up. A full disk is waited out (sampling starts anyway, into memory);
        any other storage error is raised: the daemon cannot run on that state directory."""
        try:
            await self.outbox.open_db()
        except DiskFullError as exc:
            self._failed(exc)
            return
        self.writable = True

    async def run(self) -> None:
        """Flush the buffer every ``flush_s`` (or when it fills, while writes work) for ever, then give
        the followers their turn; cancel to stop."""
        while True:
            await self.buffer.wait(early=self.writable)
            await self.commit()
            for follower in self.followers:
                await follower()

    async def commit(self) -> None:
        """Commit what waits in memory, unless the outbox is failing and no retry is due yet (or there
        is nothing to try it with: only a commit that worked says the disk takes writes again)."""
        if not self.writable:
            self._report()
            if (self.outbox.is_open and not self.buffer) or not await self._retry_due():
                return
        try:
            if not self.outbox.is_open:
                await self.outbox.open_db()
            await self._flush()
        except StorageError as exc:
            self._failed(exc)
            return
        if not self.writable:
            self._recovered()

    async def final_commit(self) -> None:
        """At stop: one last commit of what waits in memory (opening the outbox if it never opened);
        what cannot be written is dropped, and said so with the count."""
        try:
            if not self.outbox.is_open:
                await self.outbox.open_db()
            await self._flush()
        except StorageError as exc:
            lost = self.buffer.discard()
            self.dropped_at_stop += lost
            log.error(
                "outbox.memory_dropped_at_stop",
                dropped=lost,
                dropped_before=self.buffer.dropped,
                error=str(exc),
            )

    async def _flush(self) -> None:
        """Commit what waits in memory, in smaller commits when a larger one finds the disk full.

        Why: a commit is all or nothing, and on a full disk the pages that acks freed may hold fewer
        points than one commit of :data:`~gatewayd.runtime.sampler.COMMIT_CHUNK`; tried only at that size, the
        samples would stay in memory, past its bound dropped, while the outbox had room for many of them.
        """
        chunk = COMMIT_CHUNK
        while True:
            try:
                await self.buffer.flush(chunk)
                return
            except DiskFullError:
                if chunk <= MIN_COMMIT:
                    raise
                chunk = max(MIN_COMMIT, chunk // 8)

    # ------------------------------------------------------------------ what operators see

    def problem(self) -> str | None:
        """Why the daemon is unhealthy on the storage side, or None when the outbox takes writes."""
        if self.writable:
            return None
        cause = "disk full" if self.episode.disk_full else self.episode.error
        return (
            f"outbox not writable ({cause}): {len(self.buffer)} points waiting in memory, "
            f"{self.buffer.dropped} dropped"
        )

    def dropped(self) -> dict[str, int]:
        """Samples dropped before reaching the outbox, by reason."""
        return {"memory_full": self.buffer.dropped, "shutdown": self.dropped_at_stop}

    def as_json(self) -> dict[str, Any]:
        """The storage side of ``/status``."""
        return {
            "writable": self.writable,
            "error": self.episode.error,
            "disk_full": self.episode.disk_full,
            "not_writable_for_s": self.episode.for_s(),
            "reserve_held": self.outbox.reserve_held,
            "memory_points": len(self.buffer),
            "memory_limit": self.buffer.limit,
            "dropped": self.dropped(),
        }

    # ------------------------------------------------------------------ internals

    async def _retry_due(self) -> bool:
        now = self.mono()
        if self.episode.due():
            return True
        if self.outbox.is_open and self._removed() != self._removed_at_failure:
            return True  # points left the outbox: their pages can take the waiting ones
        if now >= self._next_room_check and not self.outbox.reserve_held:
            self._next_room_check = now + ROOM_CHECK_S
            try:
                return await self.outbox.regain_reserve()
            except StorageError:
                return False
        return False

    def _removed(self) -> int:
        stats = self.outbox.stats
        return stats.acked + stats.dead_lettered + stats.dropped

    def _failed(self, exc: StorageError) -> None:
        first, delay = self.episode.failed(exc)
        self._removed_at_failure = self._removed()
        self.writable = False
        if first:
            self._last_report = self.mono()
            log.error(
                "outbox.not_writable",
                effect="sampling goes on into memory (the oldest dropped past outbox.memory_points), the outbox is retried",
                error=self.episode.error,
                disk_full=self.episode.disk_full,
                in_memory=len(self.buffer),
                memory_points=self.buffer.limit,
                retry_in_s=delay,
            )

    def _report(self) -> None:
        """A line a minute at most while samples wait in memory, with the counts."""
        now = self.mono()
        if now - self._last_report < REPORT_EVERY_S:
            return
        self._last_report = now
        dropped = self.buffer.dropped
        log.warning(
            "outbox.still_not_writable",
            error=self.episode.error,
            in_memory=len(self.buffer),
            memory_points=self.buffer.limit,
            dropped=dropped - self._dropped_reported,
            dropped_total=dropped,
            failures=self.episode.failures,
        )
        self._dropped_reported = dropped

    def _recovered(self) -> None:
        log.info(
            "outbox.writable_again",
            effect="the samples kept in memory are committed",
            not_writable_for_s=self.episode.for_s(1),
            dropped_total=self.buffer.dropped,
            reserve_held=self.outbox.reserve_held,
        )
        self.writable = True
        self.episode.ended()
        self._last_report = float("-inf")
        self.recoveries += 1
