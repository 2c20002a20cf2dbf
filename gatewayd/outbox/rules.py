"""The outbox's rules, with no storage in sight: who holds which lease, what is pending, what a bound drops.

Why apart from the store (the way h11 keeps HTTP free of I/O): the queue's promises can be read and
tested here in a page, as plain state changes, while the store (:mod:`gatewayd.outbox.sqlitestore`)
keeps the SQL and its speed tricks. Nothing here blocks, sleeps or touches a disk; :class:`QueueRules`
lives on the event loop's thread, and is told what the store *did* (rows committed, rows removed), so
the counters never depend on which thread ran first.

Life of a point, the five verbs:

- ``put``: stored and committed; counted pending (a provisional point, stamped before the wall clock
  was set, is pending but not leasable until the store re-stamps it);
- ``lease``: a sensor's oldest points handed out, one lease per sensor at a time, so a sensor's points
  reach the cloud in order and never twice at once;
- ``ack``: the cloud took them: gone;
- ``release``: the send failed in a way worth retrying: pending again, oldest first as before;
- ``dead_letter``: the cloud refused them for good: kept aside with the reason, never resent.

Leases are held in memory only: after a crash every leased point is pending again, so a batch in
flight may be sent twice, nothing else. The bound ``max_points`` drops the oldest points (a box offline
for weeks keeps its newest data); ``max_age`` is measured by the store on its own clock and reported
here as a drop like any other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from gatewayd.compat import zip_strict
from gatewayd.outbox.model import Lease, OutboxStats, Point


class QueueRules:
    """The queue's state, changed only by what the store reports. Not thread-safe: the loop's own."""

    def __init__(self, max_points: int) -> None:
        self.max_points = max_points
        self.stats = OutboxStats()
        self._leased: set[str] = set()

    @property
    def leased(self) -> frozenset[str]:
        """Sensors with a lease out."""
        return frozenset(self._leased)

    def opened(self, pending_by_sensor: Mapping[str, int], provisional: int, dead_lettered: int) -> None:
        """The store counted what an earlier run left: the backlog is picked up where it was.

        ``dead_lettered``: provisional points of an earlier boot, whose stamps can never be made right.
        """
        self.stats.pending_by_sensor = dict(pending_by_sensor)
        self.stats.provisional = provisional
        self.stats.pending = sum(pending_by_sensor.values()) + provisional
        self.stats.dead_lettered += dead_lettered

    # -- the five verbs -------------------------------------------------------------------------------

    def put(self, points: Sequence[Point], provisional: int) -> int:
        """``points`` are committed (``provisional`` of them stamped before the wall clock was set);
        returns how many of the oldest points to drop now to stay within ``max_points``.

        Provisional points are pending (they are on disk and count towards the bound) but not in any
        sensor's count: no lease may see them before the store gives them their real times.
        """
        stats = self.stats
        stats.put += len(points)
        stats.pending += len(points)
        stats.provisional += provisional
        by_sensor = stats.pending_by_sensor
        for p in points if not provisional else [p for p in points if p.time_ms >= 0]:
            by_sensor[p.sensor_id] = by_sensor.get(p.sensor_id, 0) + 1
        return self.excess()

    def lease(self, sensor_ids: Iterable[str]) -> list[str]:
        """Which of ``sensor_ids`` the store should read a lease for, now marked leased: those with
        points pending and no lease out (one lease per sensor keeps its points in order).

        Every sensor returned must be settled by :meth:`leases_read`, whether the read worked or not.
        """
        wanted = [
            s
            for s in dict.fromkeys(sensor_ids)
            if s not in self._leased and self.stats.pending_by_sensor.get(s, 0) > 0
        ]
        self._leased.update(wanted)
        return wanted

    def leases_read(self, wanted: Sequence[str], leases: Sequence[Lease], *, complete: bool) -> None:
        """The store read ``leases`` for the sensors :meth:`lease` chose (none when it failed).

        A sensor that got no lease is free again. ``complete``: the store's read covered every point
        put so far, so a sensor that got nothing has nothing pending (its count is forgotten); when the
        read missed recent points (the store could not index them yet), the count stays for next time.
        """
        got = {lease.sensor_id for lease in leases}
        for sensor_id in wanted:
            if sensor_id in got:
                continue
            self._leased.discard(sensor_id)
            if complete:
                self.stats.pending_by_sensor.pop(sensor_id, None)

    def ack(self, leases: Sequence[Lease], removed: Sequence[int]) -> None:
        """The cloud took ``leases``; the store deleted ``removed[i]`` points of lease ``i`` (fewer than
        its length when a bound dropped some of them meanwhile: those were counted as dropped)."""
        for lease, n in zip_strict(leases, removed):
            self.stats.acked += n
            self._remove(lease.sensor_id, n)
        self.unlease(leases)

    def release(self, lease: Lease, *, unlease: bool = True) -> None:
        """The send failed in a way worth retrying: nothing changes on disk, the points stay pending.

        ``unlease=False`` for a part of a lease whose other parts are still being settled."""
        self.stats.released += len(lease)
        if unlease:
            self._leased.discard(lease.sensor_id)

    def dead_letter(self, lease: Lease, removed: int, *, unlease: bool = True) -> None:
        """The store moved ``removed`` points of ``lease`` to the dead letters: no longer pending.

        ``unlease=False`` for a part of a lease whose other parts are still being settled: the sensor
        stays leased until the last of them (see :meth:`Lease.part`)."""
        self.stats.dead_lettered += removed
        self._remove(lease.sensor_id, removed)
        if unlease:
            self._leased.discard(lease.sensor_id)

    def unlease(self, leases: Iterable[Lease]) -> None:
        """The leases are settled (or their settling failed): their sensors may be leased again."""
        self._leased.difference_update(lease.sensor_id for lease in leases)

    # -- bounds and the wall clock ----------------------------------------------------------------------

    def excess(self) -> int:
        """How many of the oldest points are past ``max_points`` (0 within the bound)."""
        return max(0, self.stats.pending - self.max_points)

    def dropped(self, by_sensor: Mapping[str, int], provisional: int, reason: str) -> int:
        """The store deleted points for the bound ``reason`` (``max_age`` or ``max_points``): ``by_sensor``
        counts the leasable ones, ``provisional`` the others. Leased points go too (a bound is a promise
        about the disk); their ack then finds fewer points and counts only those. Returns the total."""
        total = provisional
        for sensor_id, n in by_sensor.items():
            self._remove(sensor_id, n)
            total += n
        self.stats.provisional -= provisional
        self.stats.pending -= provisional
        self.stats.dropped += total
        by_reason = self.stats.dropped_by_reason
        by_reason[reason] = by_reason.get(reason, 0) + total
        return total

    def restamped(self, by_sensor: Mapping[str, int], dead_lettered: int) -> int:
        """The wall clock is set: provisional points got their real times (``by_sensor``: now leasable),
        or were dead-lettered when their boot was an earlier one. Returns how many were re-stamped."""
        restamped = 0
        for sensor_id, n in by_sensor.items():
            self.stats.pending_by_sensor[sensor_id] = self.stats.pending_by_sensor.get(sensor_id, 0) + n
            restamped += n
        self.stats.provisional -= restamped + dead_lettered
        self.stats.pending -= dead_lettered
        self.stats.dead_lettered += dead_lettered
        return restamped

    def sensors_with_pending(self) -> list[str]:
        """Sensors that have points waiting and no lease out: the uploader's next pass."""
        return [s for s, n in self.stats.pending_by_sensor.items() if n > 0 and s not in self._leased]

    def _remove(self, sensor_id: str, removed: int) -> None:
        self.stats.pending -= removed
        left = self.stats.pending_by_sensor.get(sensor_id, 0) - removed
        if left > 0:
            self.stats.pending_by_sensor[sensor_id] = left
        else:
            self.stats.pending_by_sensor.pop(sensor_id, None)
