"""The store's side of the bounds and the wall clock: points dropped, provisional points re-stamped.

Why here and not in the rules: which points are past ``max_age`` is known only to the store, which
measures age on a storage clock that a wall-clock jump does not move, and re-stamps points put before
the wall clock was set (both through :class:`~gatewayd.outbox.timekeeping.OutboxTime`). Each call
reports what it removed, per sensor, for :class:`~gatewayd.outbox.rules.QueueRules` to count.
"""

from __future__ import annotations

import sqlite3

import structlog

from gatewayd.errors import StorageError
from gatewayd.outbox.storage import Removed
from gatewayd.outbox.store import StoreBase

log = structlog.get_logger(__name__)


class Trims(StoreBase):
    """``max_age`` and ``max_points`` applied to the disk, and provisional points re-stamped."""

    def drop_aged(self, max_age_s: float) -> Removed:
        """Age on the storage clock (a wall-clock jump drops nothing).

        The age mark written first covers the points put since the last check, so none goes unmarked
        for longer than the check interval; a failure to write it leaves the points marked later
        (kept longer), never dropped early.
        """
        if self._db is None:  # not open yet (the disk was full at start-up): nothing to bound
            return Removed({})
        try:
            self._time.tick(self._conn)
        except StorageError as exc:
            log.warning("outbox.age_mark_not_written", effect="written at the next check", error=str(exc))
        upto = self._time.aged_out_upto(self._conn, max_age_s)
        if upto is None:
            return Removed({})
        return self._freeing(self._drop_where, "id <= ?", (upto,))

    def drop_oldest(self, count: int) -> Removed:
        """Drop the ``count`` oldest points (the ``max_points`` bound)."""
        if self._db is None:
            return Removed({})
        return self._freeing(self._drop_where, "id IN (SELECT id FROM points ORDER BY id LIMIT ?)", (count,))

    def _drop_where(self, where: str, params: tuple[int, ...]) -> Removed:
        """Delete the points ``where`` says, leased ones included (their ack then finds fewer points to
        delete and reports what it removed: see :meth:`~gatewayd.outbox.writes.Writes._delete`)."""
        db = self._conn
        counts = db.execute(
            f"SELECT sensor, time_ms < 0, COUNT(*) FROM points WHERE {where} GROUP BY sensor, time_ms < 0",
            params,
        ).fetchall()
        if not counts:
            return Removed({})
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute(f"DELETE FROM points WHERE {where}", params)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise self._error("outbox trim failed", exc) from exc
        names = self._names()
        by_sensor: dict[str, int] = {}
        provisional = 0
        for num, is_provisional, n in counts:
            if is_provisional:
                provisional += n
            else:
                by_sensor[names[num]] = by_sensor.get(names[num], 0) + n
        return Removed(by_sensor, provisional)

    def restamp(self) -> Removed:
        try:
            resolved = self._time.resolve(self._conn)
        except sqlite3.Error as exc:  # a read outside its transaction (the writes raise StorageError)
            raise StorageError(f"outbox re-stamp failed: {exc}") from exc
        names = self._names()
        self._unmerged += sum(resolved.restamped.values())  # new rows, indexed at the next lease
        return Removed(
            {names[num]: n for num, n in resolved.restamped.items()}, sum(resolved.dead_lettered.values())
        )
