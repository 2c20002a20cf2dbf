"""Request latency in a fleet report: the daemon's fixed-bucket histograms, summed, and percentiles of them.

Why buckets and not percentiles in the report: percentiles of shards cannot be combined (the mean of
two p99s is not the p99 of both), bucket counts can. Every shard uses the same bounds as the daemon's
request observer (gatewayd.runtime.requestmetrics.BUCKETS), so a merged report adds counts bucket by
bucket and computes its percentiles from the sums, the way Prometheus' ``histogram_quantile`` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from gatewayd.runtime.requestmetrics import BUCKETS, LatencySnapshot

K = TypeVar("K")

#: The percentiles a report gives of each histogram.
PERCENTILES: tuple[int, ...] = (50, 90, 99)


def add_latencies(mappings: Iterable[Mapping[K, LatencySnapshot]]) -> dict[K, LatencySnapshot]:
    """The sum of many request observers' snapshots (one per gateway, say), key by key."""
    counts: dict[K, list[int]] = {}
    sums: dict[K, float] = {}
    for mapping in mappings:
        for key, latency in mapping.items():
            into = counts.setdefault(key, [0] * len(latency.counts))
            for i, n in enumerate(latency.counts):
                into[i] += n
            sums[key] = sums.get(key, 0.0) + latency.sum_s
    return {key: LatencySnapshot(tuple(c), sums[key]) for key, c in counts.items()}


def quantile(bounds: Sequence[float], counts: Sequence[int], q: float) -> float | None:
    """The q-quantile (0..1) of a histogram (counts per bucket, the last unbounded), in seconds.

    Linear within the bucket the rank falls in, from 0 for the first; a rank in the unbounded bucket
    gives the highest finite bound (as Prometheus does). None when the histogram is empty.
    """
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    below = 0
    for i, n in enumerate(counts):
        if n and below + n >= rank:
            if i >= len(bounds):
                return float(bounds[-1])
            lower = float(bounds[i - 1]) if i else 0.0
            return lower + (float(bounds[i]) - lower) * (rank - below) / n
        below += n
    return float(bounds[-1])


def histogram_json(bounds: Sequence[float], counts: Sequence[int], sum_s: float) -> dict[str, Any]:
    """One histogram as a report shows it: its buckets, and its percentiles in milliseconds."""
    body: dict[str, Any] = {"count": sum(counts), "sum_s": round(sum_s, 6), "counts": list(counts)}
    for p in PERCENTILES:
        value = quantile(bounds, counts, p / 100)
        body[f"p{p}_ms"] = None if value is None else round(value * 1000, 3)
    return body


def latency_section(requests: Mapping[tuple[str, str], LatencySnapshot]) -> dict[str, Any]:
    """A report's ``latency``: the bucket bounds, a histogram per ``cloud/operation`` and one of all."""
    by_operation = {f"{cloud}/{op}": (list(v.counts), v.sum_s) for (cloud, op), v in requests.items()}
    return _section(list(BUCKETS), by_operation)


def merge_latency_sections(sections: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``latency`` of a merged report. The sections must share their bounds (checked by the caller)."""
    bounds = list(sections[0]["bounds_s"]) if sections else list(BUCKETS)
    by_operation: dict[str, tuple[list[int], float]] = {}
    for section in sections:
        for key, histogram in section["by_operation"].items():
            counts, sum_s = by_operation.get(key, ([0] * (len(bounds) + 1), 0.0))
            added = [a + b for a, b in zip(counts, histogram["counts"])]
            by_operation[key] = (added, sum_s + histogram["sum_s"])
    return _section(bounds, by_operation)


def _section(bounds: list[float], by_operation: Mapping[str, tuple[list[int], float]]) -> dict[str, Any]:
    every = [0] * (len(bounds) + 1)
    every_sum = 0.0
    for counts, sum_s in by_operation.values():
        every = [a + b for a, b in zip(every, counts)]
        every_sum += sum_s
    return {
        "bounds_s": bounds,
        "all": histogram_json(bounds, every, every_sum),
        "by_operation": {
            key: histogram_json(bounds, counts, sum_s)
            for key, (counts, sum_s) in sorted(by_operation.items())
        },
    }
