"""The bounds and the wall clock: what is dropped, and when provisional points get their times.

Why bounds: past ``max_points`` or ``max_age`` the oldest points are dropped and counted, so a box
offline for weeks keeps its newest data and a flash card does not fill up. Age is measured on a storage
clock that a wall-clock jump does not move, and points stamped before the wall clock was set are held
until it is, then re-stamped; both through :class:`~gatewayd.outbox.timekeeping.OutboxTime`.
"""

from __future__ import annotations

import sqlite3
import time

import structlog

from gatewayd.errors import StorageError
from gatewayd.outbox.store import OutboxStore

log = structlog.get_logger(__name__)

#: The log line of a drop, by the bound that made it.
_DROP_EVENTS = {
    "max_age": "outbox.max_age_dropped",
    "max_points": "outbox.max_points_dropped",
}


class Bounds(OutboxStore):
    """``max_age`` and ``max_points`` enforced, and provisional points re-stamped."""

    async def enforce_bounds(self) -> int:
        """Drop what is past max_age or max_points; returns how many points were dropped."""
        return await self._run(self._enforce_bounds_sync)

    def _enforce_bounds_sync(self) -> int:
        """Age on the storage clock (a wall-clock jump drops nothing), then the count.

        The age mark written first covers the points put since the last check, so none goes unmarked
        for longer than the check interval; a failure to write it leaves the points marked later
        (kept longer), never dropped early.
        """
        if self._db is None:  # not open yet (the disk was full at start-up): nothing to bound
            return 0
        dropped = 0
        try:
            self._time.tick(self._conn)
        except StorageError as exc:
            log.warning("outbox.age_mark_not_written", effect="written at the next check", error=str(exc))
        upto = self._time.aged_out_upto(self._conn, self.max_age_s)
        if upto is not None:
            dropped += self._freeing(self._drop_where, "id <= ?", (upto,), "max_age")
        if self.stats.pending > self.max_points:
            dropped += self._freeing(self._drop_sync, self.stats.pending - self.max_points)
        return dropped

    def _drop_sync(self, oldest_count: int) -> int:
        """Drop the ``oldest_count`` oldest points (the ``max_points`` bound)."""
        return self._drop_where(
            "id IN (SELECT id FROM points ORDER BY id LIMIT ?)", (oldest_count,), "max_points"
        )

    def _drop_where(self, where: str, params: tuple[int, ...], reason: str) -> int:
        """Delete the points ``where`` says, leased ones included (their ack then finds fewer points to
        delete and counts what it removed: see :meth:`_delete_chunk`), counted and logged by ``reason``."""
        db = self._conn
        counts = db.execute(
            f"SELECT sensor, time_ms < 0, COUNT(*) FROM points WHERE {where} GROUP BY sensor, time_ms < 0",
            params,
        ).fetchall()
        if not counts:
            return 0
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute(f"DELETE FROM points WHERE {where}", params)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise self._error("outbox trim failed", exc) from exc
        names = {num: sid for sid, num in self._sensor_nums.items()}
        total = 0
        for num, provisional, n in counts:
            total += n
            if provisional:
                self.stats.provisional -= n
                self.stats.pending -= n
            else:
                self._count_removed(names[num], n)
        self.stats.dropped += total
        self.stats.dropped_by_reason[reason] = self.stats.dropped_by_reason.get(reason, 0) + total
        self._log_drop(reason, total)
        return total

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

    @property
    def provisional(self) -> int:
        """Points held until the wall clock is set (see :mod:`gatewayd.wallclock`)."""
        return self.stats.provisional

    async def restamp(self) -> int:
        """Give the provisional points their wall-clock times, if the wall clock is set now (or
        dead-letter them, if they come from an earlier boot); returns how many were re-stamped."""
        return await self._run(self._restamp_sync)

    def _restamp_sync(self) -> int:
        try:
            resolved = self._time.resolve(self._conn)
        except sqlite3.Error as exc:  # a read outside its transaction (the writes raise StorageError)
            raise StorageError(f"outbox re-stamp failed: {exc}") from exc
        names = {num: sid for sid, num in self._sensor_nums.items()}
        by_sensor = self.stats.pending_by_sensor
        for num, n in resolved.restamped.items():
            by_sensor[names[num]] = by_sensor.get(names[num], 0) + n
            self._unmerged += n
        restamped = sum(resolved.restamped.values())
        dead = sum(resolved.dead_lettered.values())
        self.stats.provisional -= restamped + dead
        self.stats.pending -= dead
        self.stats.dead_lettered += dead
        return restamped
