"""Looking into the outbox, and dead letters sent again.

``dead_letters`` and ``all_points`` are for diagnostics and tests, not the hot path (the daemon's
/metrics and ``gatewayd outbox`` read the file on a connection of their own: :mod:`gatewayd.outbox.deadletters`).
A requeue goes through the same insert path as samples (:meth:`~gatewayd.outbox.queue.Queue._put_sync`),
with the dead letters deleted in the same transaction, so a point is never in both places.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from gatewayd.compat import zip_strict
from gatewayd.outbox.model import Point
from gatewayd.outbox.queue import Queue


class Inspection(Queue):
    """Dead letters and pending points read, and dead letters requeued."""

    async def requeue_dead_letters(self, reason: str | None = None) -> int:
        """Dead letters (all, or those whose reason contains ``reason``) back to pending, taken out of
        the dead-letter table in the same transaction; how many. For ``gatewayd outbox requeue`` once
        the cause is fixed, with no daemon running on this outbox (it holds the state directory's lock).
        """
        return await self._run(self._requeue_sync, reason)

    def _requeue_sync(self, reason: str | None) -> int:
        where, params = ("instr(reason, ?) > 0", (reason,)) if reason else ("1", ())
        rows = self._conn.execute(
            f"SELECT id, sensor_id, time_ms, value FROM dead_letters WHERE {where} ORDER BY id", params
        ).fetchall()
        if rows:
            last = rows[-1][0]
            self._put_sync(
                [Point(sid, t, json.loads(v)) for _, sid, t, v in rows],
                also=lambda db: db.execute(
                    f"DELETE FROM dead_letters WHERE id <= ? AND {where}", (last, *params)
                ),
            )
        return len(rows)

    async def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            rows = self._conn.execute(
                "SELECT sensor_id, time_ms, value, reason, dead_at_ms FROM dead_letters "
                "ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
            keys = ("sensor_id", "time_ms", "value", "reason", "dead_at_ms")
            return [dict(zip_strict(keys, r)) for r in rows]

        return await self._run(read)

    async def all_points(self, sensor_ids: Iterable[str] | None = None) -> list[Point]:
        """Every pending point (tests and diagnostics; not for the hot path)."""

        def read() -> list[Point]:
            names = {num: sid for sid, num in self._sensor_nums.items()}
            rows = self._conn.execute("SELECT sensor, time_ms, value FROM points ORDER BY id").fetchall()
            wanted = set(sensor_ids) if sensor_ids is not None else None
            return [
                Point(names[s], t, json.loads(v)) for s, t, v in rows if wanted is None or names[s] in wanted
            ]

        return await self._run(read)
