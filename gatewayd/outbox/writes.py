"""The store's side of the five verbs: rows appended, leases read, ranges deleted, dead letters moved.

Why it looks as it does: a put appends rows and nothing else; leases read the per-sensor index,
brought up to date in bulk (:meth:`~gatewayd.outbox.store.StoreBase._merge_sync`). Every statement is
built to cover many rows or sensors at once (see :mod:`gatewayd.outbox.schema`): the sqlite3 module
lets go of the GIL at every statement step, and each time it takes the GIL back from a busy event loop
it may wait a switch interval, so the fewer steps a call takes the less it waits.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence

import structlog

from gatewayd.errors import DiskFullError
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
from gatewayd.outbox.store import StoreBase

log = structlog.get_logger(__name__)


class Writes(StoreBase):
    """Points in, leases out, and each lease's points deleted or moved to the dead letters."""

    def put(self, points: Sequence[Point]) -> int:
        """Store points in one transaction, durable (committed) when this returns; how many of them
        are provisional (stamped before the wall clock was set)."""
        return self._put(points) if points else 0

    def _put(
        self, points: Sequence[Point], also: Callable[[sqlite3.Connection], object] | None = None
    ) -> int:
        """``also`` runs in the same transaction, before the commit (see :meth:`requeue`)."""
        db = self._conn
        # Sensors seen for the first time get their numbers in the same transaction as their points
        # (one multi-row insert, not a commit each).
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
        self._merge_when_due(len(points))
        return provisional

    def _number_new_sensors(self, points: Sequence[Point]) -> dict[str, int]:
        """Numbers for the sensors of ``points`` not stored yet (kept in memory only once committed)."""
        known = self._sensor_nums
        new = [sid for sid in dict.fromkeys(p.sensor_id for p in points) if sid not in known]
        first = max(known.values(), default=0) + 1 if new else 0
        return {sid: first + i for i, sid in enumerate(new)}

    def lease(self, sensor_ids: Sequence[str], limit: int) -> tuple[list[Lease], bool]:
        """The oldest ``limit`` points of each sensor, read in one statement per chunk of sensors; and
        whether every point put so far was indexed, so that a sensor without a lease has none pending.

        Why one statement: sqlite3 lets go of the GIL at every step (every row), and with the event loop
        busy each step waits for it. Here SQLite gathers the chunk into one JSON text (one step), already
        split per sensor into ids, times and values: no object per row, which matters when a backlog
        drains many sensors' full batches a pass.
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
            if batch is not None:
                ids, times, values = batch
                leases.append(Lease(sensor_id, ids[0], ids[-1], times, values, ids))
        return leases, indexed

    def _delete_ranges(self, leases: Sequence[Lease]) -> int:
        """Delete each lease's id range of its sensor's points in one statement; how many went.

        ``merged = 1`` lets SQLite use the partial index; it excludes nothing: a lease reads only merged
        points, and points put later get higher ids (AUTOINCREMENT), so none falls inside a range.
        """
        params = [
            v for lease in leases for v in (self._sensor_nums[lease.sensor_id], lease.first_id, lease.last_id)
        ]
        return self._conn.execute(delete_sql(len(leases)), params).rowcount

    def delete(self, leases: Sequence[Lease]) -> list[int]:
        """Delete the acknowledged leases' points in one transaction (with the reserve: an ack frees
        room); how many each lost (fewer than its length when a bound dropped some meanwhile)."""
        return self._freeing(self._delete, leases)

    def _delete(self, leases: Sequence[Lease]) -> list[int]:
        """One statement per chunk of leases (each statement is a GIL hand-over, see the module).

        A range never holds more than its lease's points, so when the statements removed as many as
        were leased each lease lost exactly its own. Fewer means a trim took some of them meanwhile:
        the transaction is undone and run lease by lease, so each sensor's pending count stays right.
        """
        db = self._conn
        chunks = list(chunked(leases, SENSORS_PER_LEASE_QUERY))
        try:
            db.execute("BEGIN IMMEDIATE")
            if all(self._delete_ranges(chunk) == sum(map(len, chunk)) for chunk in chunks):
                removed = [len(lease) for lease in leases]
            else:
                db.execute("ROLLBACK")
                db.execute("BEGIN IMMEDIATE")
                removed = [self._delete_ranges([lease]) for lease in leases]
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise self._error("outbox ack failed", exc) from exc
        return removed

    def dead_letter(self, lease: Lease, reason: str) -> int:
        """Move the lease's points to the dead letters with ``reason``, keeping the newest
        ``dead_letter_limit``; how many moved (with the reserve: it frees room in the points table)."""
        return self._freeing(self._dead_letter, lease, reason)

    def _dead_letter(self, lease: Lease, reason: str) -> int:
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
        # The caller says why at warning level, once per refused batch (a search may dead-letter hundreds
        # of single points of one batch).
        log.debug("outbox.points_dead_lettered", sensor=lease.sensor_id, points=removed, reason=reason[:200])
        return removed
