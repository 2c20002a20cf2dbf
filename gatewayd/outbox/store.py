"""The base every part of the SQLite store builds on: its connection, the full-disk retry, the index.

Why here: every write needs ``_freeing`` (a write that has to get through a full disk, with the disk
space reserve) and ``_error`` (a storage error told apart from damage), and put, lease and opening each
run the bulk index merge (``_merge_sync``). The store keeps no counters: it reports what each call did
and :class:`~gatewayd.outbox.rules.QueueRules` counts, on the event loop's thread.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import structlog

from gatewayd.errors import DiskFullError, StorageError
from gatewayd.outbox.diskreserve import RESERVE_BYTES, DiskReserve
from gatewayd.outbox.storagefaults import storage_error
from gatewayd.outbox.timekeeping import OutboxTime
from gatewayd.wallclock import boot_id

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: Rows indexed per transaction; also how many may wait unindexed before a put merges. Bulk, because
#: indexing on every put dirtied one index page per sensor per commit; bounded, so a backlog's merge
#: does not hold one transaction (and its WAL) for millions of rows.
_MERGE_CHUNK = 50_000


class StoreBase:
    """The SQLite store's connection and the machinery its parts share (see :mod:`gatewayd.outbox`).

    Owned by one thread (the outbox's): SQLite never sees two, and nothing here is locked."""

    def __init__(
        self,
        path: Path,
        *,
        dead_letter_limit: int = 100_000,
        put_synchronous: str = "FULL",
        clock: Callable[[], float] = time.time,
        reserve_bytes: int = RESERVE_BYTES,
        mono: Callable[[], float] = time.monotonic,
        boot: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.dead_letter_limit = dead_letter_limit
        self.put_synchronous = put_synchronous
        self.clock = clock
        self._time = OutboxTime(wall=clock, mono=mono, boot=boot_id() if boot is None else boot)
        self._db: sqlite3.Connection | None = None
        self._reserve = DiskReserve(self.path.with_suffix(".reserve"), reserve_bytes)
        self._sensor_nums: dict[str, int] = {}
        self._merged_upto = 0  # every point with a higher id is not in points_by_sensor yet
        # Points put since the last merge (an upper bound: drops are not subtracted); 0 only once a merge
        # has covered every point, so a lease with nothing new to index skips even asking.
        self._unmerged = 1

    @property
    def is_open(self) -> bool:
        return self._db is not None

    @property
    def reserve_held(self) -> bool:
        return self._reserve.held

    def take_reserve(self) -> bool:
        """Take the disk space reserve back if the disk has room for it again; True when it is held."""
        return self._reserve.take(now=True)

    def write_aside(self, write: Callable[[], T], essential: bool) -> T:
        """Run ``write``, a small write of another file in the state directory (the registry): on this
        thread, which owns the disk space reserve. ``essential``: with the reserve, as acks have it."""
        return self._freeing(write) if essential else write()

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

    def _names(self) -> dict[int, str]:
        """Sensor ids by their number in the store."""
        return {num: sid for sid, num in self._sensor_nums.items()}

    def _rollback(self) -> None:
        try:
            self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def _merge_sync(self) -> None:
        """Index the points put since the last merge (mark them ``merged``), in bounded transactions.

        Points are merged in id order, so the indexed ones are always the oldest: a lease reads only
        indexed points, after this has run, and so sees every point of its sensor.
        """
        if not self._unmerged:  # nothing put since the last merge: not even a query
            return
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
