"""Cloud request latency, by cloud and operation: the observer the daemon gives its HTTP transports.

Why kept here and not in prometheus-client objects: the transports tell every attempt, thousands a
second with many sensors, and this costs a dict lookup and a bisection each; the ops side turns a
snapshot of it into a Prometheus histogram at scrape time, so the runtime does not depend on ops.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

#: Upper bounds (seconds) of the latency buckets; a last, unbounded bucket takes the rest.
BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass(frozen=True)
class LatencySnapshot:
    """One (cloud, operation)'s latencies: counts per bucket (not cumulative; the last unbounded)."""

    counts: tuple[int, ...]
    sum_s: float

    @property
    def count(self) -> int:
        return sum(self.counts)


class _Latency:
    __slots__ = ("counts", "sum_s")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum_s = 0.0


class RequestMetrics:
    """A :class:`gatewayd.clouds.http.RequestObserver` that keeps a latency histogram per operation."""

    def __init__(self) -> None:
        self._by_operation: dict[tuple[str, str], _Latency] = {}

    def on_response(self, cloud: str, operation: str, status: int | None, seconds: float) -> None:
        latency = self._by_operation.get((cloud, operation))
        if latency is None:
            latency = self._by_operation[(cloud, operation)] = _Latency()
        latency.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        latency.sum_s += seconds

    def snapshot(self) -> Mapping[tuple[str, str], LatencySnapshot]:
        """The latencies so far, by (cloud, operation); a copy, read-only."""
        return MappingProxyType(
            {key: LatencySnapshot(tuple(v.counts), v.sum_s) for key, v in self._by_operation.items()}
        )
