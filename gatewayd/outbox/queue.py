"""The outbox as the daemon sees it: the rules on the event loop, the store on a thread of its own.

Each verb is the same three steps: the rules say what may happen (which sensors to lease, how many
points a bound drops), the store does it on its thread (so the loop never blocks on disk and SQLite
never sees two threads), and the rules count what the store reports it did, back on the loop. The
counters therefore change on one thread only, in the order the store's results come back, with no
lock and nothing assumed about when the interpreter switches threads. What the store did is counted
as soon as its result is back, even when the caller was cancelled meanwhile (:meth:`Outbox._counted`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import structlog

from gatewayd.errors import StorageError
from gatewayd.outbox.model import Lease, OutboxStats, Point
from gatewayd.outbox.rules import QueueRules
from gatewayd.outbox.sqlitestore import SqliteStore
from gatewayd.outbox.storage import Opened, OutboxStorage, Removed, Requeued

log = structlog.get_logger(__name__)

T = TypeVar("T")
R = TypeVar("R")
OutboxT = TypeVar("OutboxT", bound="Outbox")

#: The log line of a drop, by the bound that made it.
_DROP_EVENTS = {
    "max_age": "outbox.max_age_dropped",
    "max_points": "outbox.max_points_dropped",
}


class Outbox:
    """Durable queue of points. Open with :meth:`open`; the store's work runs on the outbox's thread."""

    def __init__(
        self,
        path: Path,
        *,
        max_points: int = 5_000_000,
        max_age_s: float = 30 * 86400.0,
        store: OutboxStorage | None = None,
        **store_options: Any,
    ) -> None:
        """``store_options`` go to :class:`~gatewayd.outbox.sqlitestore.SqliteStore` (dead_letter_limit,
        put_synchronous, clock, reserve_bytes, mono, boot) unless a ``store`` is given."""
        self.path = Path(path)
        self.max_age_s = max_age_s
        if store is not None and store_options:
            raise TypeError(
                f"options for the SQLite store given with a store of its own: {sorted(store_options)}"
            )
        self.store: OutboxStorage = store if store is not None else SqliteStore(self.path, **store_options)
        self.rules = QueueRules(max_points)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._closed = False
        # per reason: monotonic time of the last drop line (-inf: log the first drop), drops since then
        self._last_drop_log: dict[str, float] = {}
        self._dropped_since_log: dict[str, int] = {}

    @property
    def stats(self) -> OutboxStats:
        return self.rules.stats

    @property
    def max_points(self) -> int:
        return self.rules.max_points

    @property
    def leased(self) -> frozenset[str]:
        """Sensors with a lease out."""
        return self.rules.leased

    @property
    def is_open(self) -> bool:
        return self.store.is_open

    @property
    def reserve_held(self) -> bool:
        return self.store.reserve_held

    @property
    def provisional(self) -> int:
        """Points held until the wall clock is set (see :mod:`gatewayd.wallclock`)."""
        return self.stats.provisional

    # -- opening and closing ----------------------------------------------------------------------------

    @classmethod
    async def open(cls: type[OutboxT], path: Path, **kw: Any) -> OutboxT:
        outbox = cls(path, **kw)
        try:
            await outbox.open_db()
        except BaseException:
            await outbox.close()
            raise
        return outbox

    async def open_db(self) -> None:
        """Open the database; may be called again after it failed (the daemon retries while the disk
        is full). Raises StorageError (DiskFullError for a full disk); never moves a sound file aside."""
        await self._counted(self._opened, self.store.open)

    def _opened(self, opened: Opened | None) -> None:
        if opened is not None:  # None: open already
            self.stats.recovered_corrupt += opened.recovered_corrupt
            self.rules.opened(opened.pending_by_sensor, opened.provisional, opened.dead_lettered)

    async def close(self) -> None:
        if self.store.is_open:
            await self._run(self.store.close)
        self._executor.shutdown(wait=True)
        self._closed = True

    async def __aenter__(self: OutboxT) -> OutboxT:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the five verbs (see gatewayd.outbox.rules) -----------------------------------------------------

    async def put(self, points: Sequence[Point]) -> None:
        """Store points in one transaction; durable (committed) when this returns."""
        if points:
            excess = await self._counted(functools.partial(self.rules.put, points), self.store.put, points)
            await self._trim(excess)

    async def lease(self, sensor_id: str, limit: int) -> Lease | None:
        """The sensor's oldest pending points (at most ``limit``), or None when it has none or is leased."""
        leases = await self.lease_many([sensor_id], limit)
        return leases[0] if leases else None

    async def lease_many(self, sensor_ids: Iterable[str], limit: int) -> list[Lease]:
        """One lease per listed sensor that has pending points and no lease out; one trip to the disk."""
        wanted = self.rules.lease(sensor_ids)
        if not wanted:
            return []
        leases: list[Lease] = []
        complete = False
        try:
            leases, complete = await self._run(self.store.lease, wanted, limit)
        finally:
            self.rules.leases_read(wanted, leases, complete=complete)
        return leases

    def sensors_with_pending(self) -> list[str]:
        """Sensors that have points waiting and no lease out (cheap: from the counts in memory)."""
        return self.rules.sensors_with_pending()

    async def ack(self, lease: Lease) -> None:
        """The cloud took the batch: delete it."""
        await self.ack_many([lease])

    async def ack_many(self, leases: Sequence[Lease]) -> None:
        """Delete several acknowledged batches in one transaction."""
        if not leases:
            return
        try:
            await self._counted(functools.partial(self.rules.ack, leases), self.store.delete, leases)
        except BaseException:
            self.rules.unlease(leases)
            raise

    async def release(self, lease: Lease, *, unlease: bool = True) -> None:
        """The send failed in a way worth retrying: the points stay pending, oldest first as before.

        ``unlease=False`` for a part of a lease whose other parts are still being settled."""
        self.rules.release(lease, unlease=unlease)

    async def dead_letter(self, lease: Lease, reason: str, *, unlease: bool = True) -> None:
        """The cloud refused the batch for good: keep it aside with the reason, never resend it.

        ``unlease=False`` for a part of a lease whose other parts are still being settled: the sensor
        stays leased until the last of them (see :meth:`Lease.part`)."""
        count = functools.partial(self.rules.dead_letter, lease, unlease=unlease)
        try:
            await self._counted(count, self.store.dead_letter, lease, reason)
        except BaseException:
            if unlease:
                self.rules.unlease([lease])
            raise

    # -- bounds and the wall clock ----------------------------------------------------------------------

    async def enforce_bounds(self) -> int:
        """Drop what is past max_age or max_points; returns how many points were dropped."""
        if not self.store.is_open:  # not open yet (the disk was full at start-up): nothing to bound
            return 0
        dropped = await self._counted(self._dropped("max_age"), self.store.drop_aged, self.max_age_s)
        excess = self.rules.excess()
        if excess:
            dropped += await self._counted(self._dropped("max_points"), self.store.drop_oldest, excess)
        return dropped

    async def restamp(self) -> int:
        """Give the provisional points their wall-clock times, if the wall clock is set now (or
        dead-letter them, if they come from an earlier boot); returns how many were re-stamped."""
        return await self._counted(self._restamped, self.store.restamp)

    def _restamped(self, removed: Removed) -> int:
        return self.rules.restamped(removed.by_sensor, removed.provisional)

    async def _trim(self, excess: int) -> None:
        """Just past ``max_points`` (a put), drop the oldest at once."""
        if excess:
            try:
                await self._counted(self._dropped("max_points"), self.store.drop_oldest, excess)
            except StorageError as exc:  # the points are committed: raising would get them put twice
                log.warning("outbox.trim_failed", effect="retried at the next bound check", error=str(exc))

    def _dropped(self, reason: str) -> Callable[[Removed], int]:
        """How a drop by the bound ``reason`` is counted (and logged)."""

        def count(removed: Removed) -> int:
            total = self.rules.dropped(removed.by_sensor, removed.provisional, reason)
            if total:
                self._log_drop(reason, total)
            return total

        return count

    def _log_drop(self, reason: str, dropped: int) -> None:
        """One line a minute per bound, saying which bound dropped the points."""
        since = self._dropped_since_log[reason] = self._dropped_since_log.get(reason, 0) + dropped
        now = time.monotonic()
        if now - self._last_drop_log.get(reason, float("-inf")) < 60.0:
            return
        log.warning(
            _DROP_EVENTS[reason],
            reason=reason,
            dropped=since,
            dropped_total=self.stats.dropped_by_reason[reason],
            max_points=self.max_points,
            max_age_s=self.max_age_s,
        )
        self._last_drop_log[reason] = now
        self._dropped_since_log[reason] = 0

    # -- inspection, dead letters sent again, the disk space reserve ----------------------------------

    async def requeue_dead_letters(self, reason: str | None = None) -> int:
        """Dead letters (all, or those whose reason contains ``reason``) back to pending, taken out of
        the dead-letter table in the same transaction; how many. For ``gatewayd outbox requeue`` once
        the cause is fixed, with no daemon running on this outbox (it holds the state directory's lock).
        """
        requeued, excess = await self._counted(self._requeued, self.store.requeue, reason)
        await self._trim(excess)
        return requeued

    def _requeued(self, requeued: Requeued) -> tuple[int, int]:
        """How many came back, and how many of the oldest points that puts past ``max_points``."""
        if not requeued.points:
            return 0, 0
        return len(requeued.points), self.rules.put(requeued.points, requeued.provisional)

    async def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        return await self._run(self.store.dead_letters, limit)

    async def all_points(self, sensor_ids: Iterable[str] | None = None) -> list[Point]:
        """Every pending point (tests and diagnostics; not for the hot path)."""
        return await self._run(self.store.points, sensor_ids)

    async def checkpoint(self) -> None:
        """Fold the WAL into the database file (as closing does), e.g. to measure the file's size."""
        await self._run(self.store.checkpoint)

    async def regain_reserve(self) -> bool:
        """Take the disk space reserve back if the disk has room for it again; True when it is held."""
        return await self._run(self.store.take_reserve)

    async def write_aside(self, write: Callable[[], T], *, essential: bool = False) -> T:
        """Run ``write``, a small write of another file in the state directory (the registry), on the
        outbox's thread, which owns the disk space reserve. ``essential``: with the reserve, as acks
        have it: a new sensor's id must be on disk before the sensor may sample."""
        return await self._run(functools.partial(self.store.write_aside, write, essential))

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the outbox's thread (reads, and writes the rules need not hear of)."""
        return await self._counted(_same, fn, *args)

    async def _counted(self, count: Callable[[R], T], fn: Callable[..., R], *args: Any) -> T:
        """``fn(*args)`` on the outbox's thread, then ``count(result)`` on the loop's; its value returned.

        ``count`` runs as soon as the store is done, in the order the store finished, whether or not
        the caller still waits: a caller cancelled mid-ack must not leave deleted points counted as
        pending. An error of ``fn`` is raised to the caller and counts nothing.
        """
        loop = asyncio.get_running_loop()
        try:
            work = self._executor.submit(fn, *args)
        except RuntimeError as exc:
            if self._closed:  # the executor refuses work once the outbox is closed
                raise StorageError("outbox is closed") from exc
            raise
        outcome: asyncio.Future[T] = loop.create_future()

        def settle(done: concurrent.futures.Future[R]) -> None:  # on the loop's thread
            try:
                value = count(done.result())
            except BaseException as exc:  # the caller gets it as is
                if not outcome.done():
                    outcome.set_exception(exc)
                return
            if not outcome.done():
                outcome.set_result(value)

        def back_to_loop(done: concurrent.futures.Future[R]) -> None:  # on the outbox's thread
            try:
                loop.call_soon_threadsafe(settle, done)
            except RuntimeError:  # the loop is closed: nobody is left to count for
                pass

        work.add_done_callback(back_to_loop)
        return await outcome


def _same(value: T) -> T:
    return value
