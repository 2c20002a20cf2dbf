"""The base every part of the outbox builds on: its state, its one thread and connection, the index.

Why one thread: one SQLite connection is owned by one dedicated thread (``_run``), so the event loop
never blocks on disk and SQLite never sees two threads. The counters in :class:`OutboxStats` change on
that thread only, never on the loop thread, so no update is lost when calls overlap; the loop only reads
them.

Also here, because every verb needs them: ``_freeing`` (a write that has to get through a full disk,
with the disk space reserve), ``_error`` (a storage error told apart from damage), and the bulk index
merge (``_merge_sync``), which put, lease and opening each run.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import structlog

from gatewayd.errors import DiskFullError, StorageError
from gatewayd.outbox.diskreserve import RESERVE_BYTES, DiskReserve
from gatewayd.outbox.model import OutboxStats
from gatewayd.outbox.storagefaults import storage_error
from gatewayd.outbox.timekeeping import OutboxTime
from gatewayd.wallclock import boot_id

log = structlog.get_logger(__name__)

T = TypeVar("T")

_MERGE_CHUNK = 50_000  # rows indexed per transaction; also how many may wait unindexed before a put merges


class OutboxStore:
    """The outbox's state and the machinery its parts share (see :mod:`gatewayd.outbox`)."""

    def __init__(
        self,
        path: Path,
        *,
        max_points: int = 5_000_000,
        max_age_s: float = 30 * 86400.0,
        dead_letter_limit: int = 100_000,
        put_synchronous: str = "FULL",
        clock: Callable[[], float] = time.time,
        reserve_bytes: int = RESERVE_BYTES,
        mono: Callable[[], float] = time.monotonic,
        boot: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.max_points = max_points
        self.max_age_s = max_age_s
        self.dead_letter_limit = dead_letter_limit
        self.put_synchronous = put_synchronous
        self.clock = clock
        self._time = OutboxTime(wall=clock, mono=mono, boot=boot_id() if boot is None else boot)
        self.stats = OutboxStats()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._db: sqlite3.Connection | None = None
        self._closed = False
        self._reserve = DiskReserve(self.path.with_suffix(".reserve"), reserve_bytes)
        self._sensor_nums: dict[str, int] = {}
        self._leased: set[str] = set()
        self._merged_upto = 0  # every point with a higher id is not in points_by_sensor yet
        self._unmerged = 0  # points put since the last merge (an upper bound: drops are not subtracted)
        # per reason: monotonic time of the last drop line (-inf: log the first drop), drops since then
        self._last_drop_log: dict[str, float] = {}
        self._dropped_since_log: dict[str, int] = {}

    @property
    def is_open(self) -> bool:
        return self._db is not None

    @property
    def reserve_held(self) -> bool:
        return self._reserve.held

    async def regain_reserve(self) -> bool:
        """Take the disk space reserve back if the disk has room for it again; True when it is held."""
        return await self._run(functools.partial(self._reserve.take, now=True))

    async def write_aside(self, write: Callable[[], T], *, essential: bool = False) -> T:
        """Run ``write``, a small write of another file in the state directory (the registry), on the
        outbox's thread, which owns the disk space reserve. ``essential``: with the reserve, as acks
        have it (given back when the disk is full, then ``write`` tried again): a new sensor's id must
        be on disk before the sensor may sample."""
        if essential:
            return await self._run(self._freeing, write)
        return await self._run(write)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except RuntimeError as exc:
            if self._closed:  # the executor refuses work once the outbox is closed
                raise StorageError("outbox is closed") from exc
            raise

    def _error(self, what: str, exc: BaseException) -> StorageError:
        return storage_error(what, exc, self.path.parent)

    def _freeing(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a write that has to get through a full disk (an ack, a trim, the index, a checkpoint,
        opening): when it fails for lack of room, the reserve is given back and ``fn`` tried again."""
        try:
            result = fn(*args)
        except DiskFullError as exc:
            if not self._reserve.release(str(exc)):
                raise
            result = fn(*args)
        self._reserve.restart_wal(self._db)
        return result

    def _close_quietly(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StorageError("outbox is closed")
        return self._db

    def _rollback(self) -> None:
        try:
            self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def _count_removed(self, sensor_id: str, removed: int) -> None:
        # Counters change on the outbox thread only (here, _put_sync, _lease_sync), never on the loop
        # thread, so no update is lost when calls overlap; the loop only reads them.
        self.stats.pending -= removed
        left = self.stats.pending_by_sensor.get(sensor_id, 0) - removed
        if left > 0:
            self.stats.pending_by_sensor[sensor_id] = left
        else:
            self.stats.pending_by_sensor.pop(sensor_id, None)

    def _merge_sync(self) -> None:
        """Index the points put since the last merge (mark them ``merged``), in bounded transactions.

        Points are merged in id order, so the indexed ones are always the oldest: a lease reads only
        indexed points, after this has run, and so sees every point of its sensor.
        """
        db = self._conn
        top = db.execute("SELECT MAX(id) FROM points").fetchone()[0] or 0
        while self._merged_upto < top:
            upto = min(self._merged_upto + _MERGE_CHUNK, top)
            try:
                db.execute("BEGIN IMMEDIATE")
                db.execute(
                    "UPDATE points SET merged = 1 WHERE id > ? AND id <= ? AND merged = 0 AND time_ms >= 0",
                    (self._merged_upto, upto),
                )
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('merged_upto', ?)", (str(upto),))
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise self._error("outbox index update failed", exc) from exc
            self._merged_upto = upto
        self._unmerged = 0

    def _merge_or_not(self) -> bool:
        """Index what waits (see :meth:`_merge_sync`); False when the disk is too full even with the
        reserve. Leases then see only the indexed points, which are each sensor's oldest, so a backlog
        still drains and frees room; the rest is indexed at a later lease."""
        try:
            self._freeing(self._merge_sync)
        except DiskFullError as exc:
            log.warning(
                "outbox.index_update_failed",
                error=str(exc),
                disk_full=True,
                effect="retried at the next lease",
            )
            return False
        return True

    def _merge_when_due(self, added: int) -> None:
        """Count ``added`` points put unindexed; index them once ``_MERGE_CHUNK`` are waiting."""
        self._unmerged += added
        if self._unmerged >= _MERGE_CHUNK:
            try:
                self._merge_sync()
            except StorageError as exc:  # the points are committed: the next lease retries the merge
                log.warning("outbox.index_update_failed", effect="retried at the next lease", error=str(exc))
