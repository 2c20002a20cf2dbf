"""What goes into the outbox and comes out of it: a :class:`Point`, a :class:`Lease` of a sensor's
oldest points, and the counters (:class:`OutboxStats`) that /status, /metrics and the uploader read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from gatewayd.compat import zip_strict


class Point(NamedTuple):
    """One sample: the Thing+ sensor id, when it was read (unix ms, wall clock; negative: a provisional
    stamp, read before the wall clock was set, see :mod:`gatewayd.wallclock`), and its value.

    ``value`` is what Thing+ gets: a string (numbers as strings) or a JSON object. A named tuple, not a
    frozen dataclass: one is made per sample, and a named tuple is the cheaper to build.
    """

    sensor_id: str
    time_ms: int
    value: str | dict[str, Any]


@dataclass(frozen=True)
class Lease:
    """A batch of one sensor's oldest pending points, handed out until acked, released or dead-lettered."""

    sensor_id: str
    first_id: int
    last_id: int
    times: list[int]
    values: list[str]  # JSON text of each value, ready to splice into a request body
    ids: list[int] = field(default_factory=list)  # each point's id, in order

    def __len__(self) -> int:
        return len(self.times)

    def part(self, start: int, stop: int) -> Lease:
        """Points ``start`` to ``stop - 1`` as a lease of their own, to be acked or dead-lettered alone.

        Its id range holds no other point of the sensor: a lease is the sensor's oldest points in id
        order, so every point of the sensor between two of them is one of them.
        """
        ids = self.ids[start:stop]
        if not ids:
            raise ValueError(f"empty part {start}:{stop} of a lease of {len(self)} points")
        return Lease(self.sensor_id, ids[0], ids[-1], self.times[start:stop], self.values[start:stop], ids)

    def points(self) -> list[Point]:
        return [Point(self.sensor_id, t, json.loads(v)) for t, v in zip_strict(self.times, self.values)]


@dataclass
class OutboxStats:
    """The outbox's counts, kept by :class:`~gatewayd.outbox.rules.QueueRules` on the event loop's thread
    from what the store reports; /status, /metrics and the uploader read them.

    The state of the queue (read from disk at each open):
    """

    #: Points stored and not yet acknowledged, dead-lettered or dropped (leased and provisional included).
    pending: int = 0
    #: Leasable points per sensor; a sensor with none has no key.
    pending_by_sensor: dict[str, int] = field(default_factory=dict)
    #: Points held (in ``pending``, not in ``pending_by_sensor``) until the wall clock is set.
    provisional: int = 0

    # Totals since start, one per way a point goes in or out:

    put: int = 0
    acked: int = 0
    #: Points of leases given back for a retry (they stay pending: a point may count more than once).
    released: int = 0
    dead_lettered: int = 0
    dropped: int = 0
    #: Drops by the bound that made them: "max_age" or "max_points".
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    #: Damaged database files moved aside at an open.
    recovered_corrupt: int = 0
