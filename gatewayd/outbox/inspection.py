"""Looking into the store, and dead letters put back.

``dead_letters`` and ``points`` are for diagnostics and tests, not the hot path (the daemon's /metrics
and ``gatewayd outbox`` read the file on a connection of their own: :mod:`gatewayd.outbox.deadletters`).
A requeue goes through the same insert as samples (:meth:`~gatewayd.outbox.writes.Writes._put`), with
the dead letters deleted in the same transaction, so a point is never in both places.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from gatewayd.compat import zip_strict
from gatewayd.outbox.model import Point
from gatewayd.outbox.storage import Requeued
from gatewayd.outbox.writes import Writes


class Inspection(Writes):
    """Dead letters and pending points read, and dead letters requeued."""

    def requeue(self, reason: str | None) -> Requeued:
        """Dead letters (all, or those whose reason contains ``reason``) back to pending, taken out of
        the dead-letter table in the same transaction."""
        where, params = ("instr(reason, ?) > 0", (reason,)) if reason else ("1", ())
        rows = self._conn.execute(
            f"SELECT id, sensor_id, time_ms, value FROM dead_letters WHERE {where} ORDER BY id", params
        ).fetchall()
        if not rows:
            return Requeued([], 0)
        last = rows[-1][0]
        points = [Point(sid, t, json.loads(v)) for _, sid, t, v in rows]
        provisional = self._put(
            points,
            also=lambda db: db.execute(
                f"DELETE FROM dead_letters WHERE id <= ? AND {where}", (last, *params)
            ),
        )
        return Requeued(points, provisional)

    def dead_letters(self, limit: int) -> list[dict[str, Any]]:
        rows = self._conn.execute(
            "SELECT sensor_id, time_ms, value, reason, dead_at_ms FROM dead_letters ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        keys = ("sensor_id", "time_ms", "value", "reason", "dead_at_ms")
        return [dict(zip_strict(keys, r)) for r in rows]

    def points(self, sensor_ids: Iterable[str] | None) -> list[Point]:
        names = self._names()
        rows = self._conn.execute("SELECT sensor, time_ms, value FROM points ORDER BY id").fetchall()
        wanted = set(sensor_ids) if sensor_ids is not None else None
        return [Point(names[s], t, json.loads(v)) for s, t, v in rows if wanted is None or names[s] in wanted]
