"""A fleet shard's /metrics: per-fleet totals under the daemon's metric names, no per-gateway labels.

Why no gateway label: a shard runs a thousand gateways and a fleet a hundred shards; a series per
gateway and metric would be hundreds of thousands of series in Prometheus for figures nobody graphs
one by one (``/status`` lists the gateways). The totals keep the names a single daemon exports
(``gatewayd_points_sampled``...) so the same dashboards read a fleet, summed over its shards' pods;
what only a fleet has is named ``gatewayd_fleet_*``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from gatewayd.fleet.figures import STATUS_OFFLINE, STATUS_UP, GatewayFigures, fleet_totals
from gatewayd.ops.metrics import build_info, request_seconds_family
from gatewayd.runtime.requestmetrics import LatencySnapshot

Requests = Mapping[tuple[str, str], LatencySnapshot]


def fleet_metric_families(
    fleet_name: str, shard: int, shards: int, gateways: Sequence[GatewayFigures], requests: Requests
) -> Iterator[Metric]:
    """The metric families of one shard (what a ``Collector.collect`` of the fleet yields)."""
    t = fleet_totals(gateways)
    info = InfoMetricFamily("gatewayd_fleet", "The fleet this process runs a shard of")
    info.add_metric([], {"fleet": fleet_name, "shard": str(shard), "shards": str(shards)})
    yield info
    by_status = GaugeMetricFamily(
        "gatewayd_fleet_gateways", "Gateways of this shard by status", labels=["status"]
    )
    for status, n in {STATUS_UP: 0, STATUS_OFFLINE: 0, **t.by_status}.items():
        by_status.add_metric([status], n)
    yield by_status
    yield GaugeMetricFamily(
        "gatewayd_fleet_gateways_registered",
        "Gateways of this shard registered on Thing+",
        value=t.registered,
    )
    yield CounterMetricFamily("gatewayd_points_sampled", "Samples read from sources", value=t.sampled)
    yield CounterMetricFamily("gatewayd_points_uploaded", "Points Thing+ acknowledged", value=t.delivered)
    yield CounterMetricFamily(
        "gatewayd_fleet_points_lost",
        "Samples dropped before delivery (outbox bounds, memory full, shutdown)",
        value=t.lost,
    )
    yield CounterMetricFamily(
        "gatewayd_statuses_sent", "Status heartbeats Thing+ accepted", value=t.statuses_sent
    )
    errors = CounterMetricFamily(
        "gatewayd_upload_errors",
        "Failed calls while reporting, by cloud and error kind",
        labels=["cloud", "kind"],
    )
    for kind, n in t.errors_by_kind.items():
        errors.add_metric(["thingplus", kind], n)
    yield errors
    yield GaugeMetricFamily(
        "gatewayd_outbox_points", "Points waiting in the outbox or in memory", value=t.pending
    )
    yield CounterMetricFamily(
        "gatewayd_dead_letter", "Points refused for good by Thing+", value=t.dead_lettered
    )
    yield request_seconds_family(requests)
    yield build_info()


class _Families(Collector):
    def __init__(self, families: Sequence[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def render_fleet_metrics(
    fleet_name: str, shard: int, shards: int, gateways: Sequence[GatewayFigures], requests: Requests
) -> str:
    """One shard's /metrics body, in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(list(fleet_metric_families(fleet_name, shard, shards, gateways, requests))))
    return generate_latest(registry).decode("utf-8")
