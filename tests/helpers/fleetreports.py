"""Fleet reports for tests: a shard's report from a few gateways and request latencies given in seconds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gatewayd.fleet.report import GatewayFigures, shard_report
from gatewayd.runtime.requestmetrics import RequestMetrics

#: 2024-01-01T00:00:00Z, the start of every test run.
T0 = 1_704_067_200.0


def latencies(*seconds: float, operation: str = "series") -> RequestMetrics:
    """A request observer that saw one Thing+ ``operation`` call per latency given."""
    metrics = RequestMetrics()
    for s in seconds:
        metrics.on_response("thingplus", operation, 200, s)
    return metrics


def gateway(status: str = "up", **counts: Any) -> GatewayFigures:
    """A registered gateway that sampled 60 points and delivered them, unless ``counts`` say otherwise."""
    values: dict[str, Any] = {
        "registered": True,
        "sampled": 60,
        "delivered": 60,
        "lost": 0,
        "dead_lettered": 0,
    }
    values.update(counts)
    return GatewayFigures(status=status, **values)


def report(
    shard: int,
    shards: int = 3,
    gateways: Sequence[GatewayFigures] = (),
    seconds: Sequence[float] = (),
    *,
    fleet: str = "test fleet",
    start: float = 0.0,
    duration: float = 60.0,
) -> dict[str, Any]:
    """Shard ``shard``'s report: its gateways (two up by default), its series latencies in seconds."""
    figures = list(gateways) or [gateway(), gateway()]
    observer = latencies(*seconds)
    return shard_report(fleet, shard, shards, T0 + start, T0 + start + duration, figures, observer.snapshot())
