"""The queue's verbs: put, lease, ack, release, dead-letter.

Life of a point: ``put`` (committed when it returns) -> ``lease`` (oldest first, one lease per sensor at a
time, held in memory only) -> ``ack`` (deleted) | ``release`` (back to pending) | ``dead_letter`` (moved
to the dead-letter table with the reason, bounded). Leases are not persisted: after a crash or restart
every leased point is pending again, so a batch that was in flight may be sent twice, nothing else.

A put appends rows and nothing else; leases read the per-sensor index, brought up to date in bulk
(:meth:`~gatewayd.outbox.store.OutboxStore._merge_sync`). A put past ``max_points`` trims at once,
which is why the queue is built on :class:`~gatewayd.outbox.bounds.Bounds`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence

import structlog

from gatewayd.compat import zip_strict
from gatewayd.errors import DiskFullError, StorageError
from gatewayd.outbox.bounds import Bounds
from gatewayd.outbox.model import Lease, Point
from gatewayd.outbox.schema import (
    SENSORS_PER_LEASE_QUERY,
    chunked,
    delete_sql,
    encode_value,
    in_id_order,
    insert_rows,
    lease_sql,
)

log = structlog.get_logger(__name__)


class Queue(Bounds):
    """Points in, leases out, and each lease settled: acked, released or dead-lettered."""

    async def put(self, points: Sequence[Point]) -> None:
        """Store points in one transaction; durable (committed) when this returns."""
        if points:
            await self._run(self._put_sync, points)

    def _put_sync(
        self, points: Sequence[Point], also: Callable[[sqlite3.Connection], object] | None = None
    ) -> None:
        """``also`` runs in the same transaction, before the commit (see :meth:`requeue_dead_letters`)."""
        db = self._conn
        # Sensors seen for the first time get their numbers in the same transaction as their points
        # (one multi-row insert, not a commit each: a start with thousands of new sensors would wait on as
        # many commits).
        new_nums = self._number_new_sensors(points)
        nums = {**self._sensor_nums, **new_nums} if new_nums else self._sensor_nums
        rows = [(nums[p.sensor_id], p.time_ms, encode_value(p.value)) for p in points]
        page_limit = self._reserve.hold_size(db)  # while the disk is full: fill freed pages, add none
        provisional = sum(1 for p in points if p.time_ms < 0)  # stamped before the wall clock was set
        try:
            # Accepted data must survive a power cut: this commit syncs the WAL. Acks and trims stay at
            # NORMAL (a lost ack only means one batch is sent twice), which spares the flash.
            db.execute(f"PRAGMA synchronous={self.put_synchronous}")
            db.execute("BEGIN IMMEDIATE")
            insert_rows(db, "sensors (num, sensor_id)", [(num, sid) for sid, num in new_nums.items()])
            insert_rows(db, "points (sensor, time_ms, value)", rows)
            if provisional:
                last_id = db.execute("SELECT last_insert_rowid()").fetchone()[0]
                self._time.note_provisional(db, last_id - len(rows) + 1)
            if also is not None:
                also(db)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            error = self._error("outbox write failed", exc)
            if isinstance(error, DiskFullError):  # the samples wait in memory; acks get the room
                self._reserve.release(str(error))
                self._reserve.restart_wal(db)
            raise error from exc
        finally:
            db.execute("PRAGMA synchronous=NORMAL")
            if page_limit is not None:
                db.execute(f"PRAGMA max_page_count = {page_limit}")
        self._reserve.restart_wal(db)
        self._sensor_nums.update(new_nums)
        self.stats.put += len(points)
        self.stats.pending += len(points)
        self.stats.provisional += provisional
        by_sensor = self.stats.pending_by_sensor
        for p in points if not provisional else [p for p in points if p.time_ms >= 0]:
            by_sensor[p.sensor_id] = by_sensor.get(p.sensor_id, 0) + 1
        if self.stats.pending > self.max_points:
            try:
                self._drop_sync(self.stats.pending - self.max_points)
            except StorageError as exc:  # the points are committed: raising would get them put twice
                log.warning("outbox.trim_failed", effect="retried at the next bound check", error=str(exc))
        self._merge_when_due(len(points))

    def _number_new_sensors(self, points: Sequence[Point]) -> dict[str, int]:
        """Numbers for the sensors of ``points`` not stored yet (kept in memory only once committed)."""
        known = self._sensor_nums
        new = [sid for sid in dict.fromkeys(p.sensor_id for p in points) if sid not in known]
        first = max(known.values(), default=0) + 1 if new else 0
        return {sid: first + i for i, sid in enumerate(new)}

    async def lease(self, sensor_id: str, limit: int) -> Lease | None:
        """The sensor's oldest pending points (at most ``limit``), or None when it has none or is leased."""
        leases = await self.lease_many([sensor_id], limit)
        return leases[0] if leases else None

    async def lease_many(self, sensor_ids: Iterable[str], limit: int) -> list[Lease]:
        """One lease per listed sensor that has pending points and no lease out; one trip to the disk."""
        wanted = [
            s
            for s in dict.fromkeys(sensor_ids)
            if s not in self._leased and self.stats.pending_by_sensor.get(s, 0) > 0
        ]
        if not wanted:
            return []
        self._leased.update(wanted)
        leases: list[Lease] = []
        try:
            leases = await self._run(self._lease_sync, wanted, limit)
        finally:
            self._leased.difference_update(set(wanted) - {lease.sensor_id for lease in leases})
        return leases

    def _lease_sync(self, sensor_ids: list[str], limit: int) -> list[Lease]:
        """The oldest ``limit`` points of each sensor, read in one statement per chunk of sensors.

        Why one statement: sqlite3 lets go of the GIL at every step (every row), and with the event loop
        busy each step waits for it, so reading sensor by sensor costs a wait per row (bench/README.md,
        History). Here SQLite gathers the chunk into one JSON text (one step), already
        split per sensor into ids, times and values: no object per row, which matters when a backlog
        drains 64 x 500 points a pass.
        """
        indexed = self._merge_or_not()
        nums = self._sensor_nums
        wanted = [(sensor_id, nums[sensor_id]) for sensor_id in sensor_ids if sensor_id in nums]
        found: dict[int, tuple[list[int], list[int], list[str]]] = {}
        for chunk in chunked(wanted, SENSORS_PER_LEASE_QUERY):
            params = [v for _, num in chunk for v in (num, limit)]
            (text,) = self._conn.execute(lease_sql(len(chunk)), params).fetchone()
            for num, ids, times, values in json.loads(text):
                if num is not None:  # None: a sensor with nothing to lease
                    found[num] = in_id_order(ids, times, values)
        leases = []
        for sensor_id, num in wanted:
            batch = found.get(num)
            if batch is None:
                if indexed:  # else its points may all be waiting for the index
                    self.stats.pending_by_sensor.pop(sensor_id, None)
                continue
            ids, times, values = batch
            leases.append(Lease(sensor_id, ids[0], ids[-1], times, values, ids))
        return leases

    def sensors_with_pending(self) -> list[str]:
        """Sensors that have points waiting and no lease out (cheap: from in-memory counts)."""
        counts = self.stats.pending_by_sensor.copy()  # atomic snapshot: the outbox thread may be writing
        return [s for s, n in counts.items() if n > 0 and s not in self._leased]

    async def ack(self, lease: Lease) -> None:
        """The cloud took the batch: delete it."""
        await self.ack_many([lease])

    async def ack_many(self, leases: Sequence[Lease]) -> None:
        """Delete several acknowledged batches in one transaction."""
        if not leases:
            return
        try:
            await self._run(self._freeing, self._delete_sync, leases)
        finally:
            self._leased.difference_update(lease.sensor_id for lease in leases)

    async def release(self, lease: Lease, *, unlease: bool = True) -> None:
        """The send failed in a way worth retrying: the points stay pending, oldest first as before.

        ``unlease=False`` for a part of a lease whose other parts are still being settled (as for
        :meth:`dead_letter`)."""
        if unlease:
            self._leased.discard(lease.sensor_id)
        self.stats.released += len(lease)

    async def dead_letter(self, lease: Lease, reason: str, *, unlease: bool = True) -> None:
        """The cloud refused the batch for good: keep it aside with the reason, never resend it.

        ``unlease=False`` for a part of a lease whose other parts are still being settled: the sensor
        stays leased until the last of them (see :meth:`Lease.part`).
        """
        try:
            await self._run(self._freeing, self._dead_letter_sync, lease, reason)
        finally:
            if unlease:
                self._leased.discard(lease.sensor_id)

    def _delete_ranges(self, leases: Sequence[Lease]) -> int:
        """Delete each lease's id range of its sensor's points in one statement; how many went.

        ``merged = 1`` lets SQLite use the partial index; it excludes nothing: a lease reads only merged
        points, and points put later get higher ids (AUTOINCREMENT), so none falls inside a range.
        """
        params = [
            v for lease in leases for v in (self._sensor_nums[lease.sensor_id], lease.first_id, lease.last_id)
        ]
        return self._conn.execute(delete_sql(len(leases)), params).rowcount

    def _delete_chunk(self, leases: Sequence[Lease]) -> list[int]:
        """Delete the leases' points, one statement for all (one GIL hand-over, not one per lease).

        A range never holds more than its lease's points, so when the statement removed as many as were
        leased each lease lost exactly its own. Fewer means a trim took some of them meanwhile: the
        statement is undone and run lease by lease, so each sensor's pending count stays right.
        """
        db = self._conn
        db.execute("SAVEPOINT ack_chunk")
        if self._delete_ranges(leases) == sum(len(lease) for lease in leases):
            db.execute("RELEASE ack_chunk")
            return [len(lease) for lease in leases]
        db.execute("ROLLBACK TO ack_chunk")
        db.execute("RELEASE ack_chunk")
        return [self._delete_ranges([lease]) for lease in leases]

    def _delete_sync(self, leases: Sequence[Lease]) -> list[int]:
        db = self._conn
        try:
            db.execute("BEGIN IMMEDIATE")
            removed = [
                n for chunk in chunked(leases, SENSORS_PER_LEASE_QUERY) for n in self._delete_chunk(chunk)
            ]
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise self._error("outbox ack failed", exc) from exc
        for lease, n in zip_strict(leases, removed):
            self.stats.acked += n
            self._count_removed(lease.sensor_id, n)
        return removed

    def _dead_letter_sync(self, lease: Lease, reason: str) -> int:
        db = self._conn
        now_ms = int(self.clock() * 1000)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT INTO dead_letters (sensor_id, time_ms, value, reason, dead_at_ms) "
                "SELECT ?, time_ms, value, ?, ? FROM points WHERE sensor = ? AND merged = 1 AND id BETWEEN ? AND ?",
                (
                    lease.sensor_id,
                    reason[:500],
                    now_ms,
                    self._sensor_nums[lease.sensor_id],
                    lease.first_id,
                    lease.last_id,
                ),
            )
            removed = self._delete_ranges([lease])
            db.execute(
                "DELETE FROM dead_letters WHERE id <= (SELECT MAX(id) FROM dead_letters) - ?",
                (self.dead_letter_limit,),
            )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise self._error("outbox dead-letter failed", exc) from exc
        self.stats.dead_lettered += removed
        self._count_removed(lease.sensor_id, removed)
        # The caller says why at warning level, once per refused batch (a search may dead-letter hundreds
        # of single points of one batch).
        log.debug("outbox.points_dead_lettered", sensor=lease.sensor_id, points=removed, reason=reason[:200])
        return removed
