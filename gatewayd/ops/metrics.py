"""The daemon's ``/metrics``: a Prometheus collector reading one snapshot per scrape.

Why metrics are read at scrape time (a custom collector) rather than counted twice: the daemon's parts
already keep their counters; mirroring them into prometheus-client objects would be a second truth that
can drift. Request latency too is kept by the daemon (the observer its HTTP transports are given,
gatewayd.runtime.requestmetrics). A fleet shard's /metrics (gatewayd.fleet.metrics) shares the build
info and the latency histogram.
"""

from __future__ import annotations

import itertools
import platform
from collections.abc import Iterator, Mapping

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from gatewayd import __version__
from gatewayd.outbox.deadletters import DeadLetterCounts
from gatewayd.runtime.requestmetrics import BUCKETS, LatencySnapshot
from gatewayd.runtime.snapshots import DaemonSnapshot, StatusSource


class DaemonCollector(Collector):
    """Reads a snapshot of the daemon at each scrape (dead letters by reason: as last refreshed)."""

    def __init__(self, status: StatusSource, dead_letters: DeadLetterCounts) -> None:
        self.status = status
        self.dead_letters = dead_letters

    def collect(self) -> Iterator[Metric]:
        d = self.status()
        sensors, upload, outbox = d.sensors, d.reporting, d.storage
        yield _counter("gatewayd_points_sampled", "Samples read from sources", sensors.sampled)
        yield _counter("gatewayd_read_errors", "Failed sensor reads", sensors.read_errors)
        yield _counter("gatewayd_points_uploaded", "Points Thing+ acknowledged", upload.uploaded)
        yield _counter("gatewayd_statuses_sent", "Status heartbeats Thing+ accepted", upload.statuses)
        errors = CounterMetricFamily(
            "gatewayd_upload_errors",
            "Failed calls while reporting, by cloud and error kind",
            labels=["cloud", "kind"],
        )
        for kind, n in sorted(upload.errors.items()):
            errors.add_metric(["thingplus", kind], n)
        yield errors
        yield _gauge("gatewayd_outbox_points", "Points waiting in the outbox", outbox.pending)
        yield _counter("gatewayd_outbox_dropped", "Points dropped past the outbox bounds", outbox.dropped)
        dropped = CounterMetricFamily(
            "gatewayd_points_dropped",
            "Samples dropped before delivery, by reason: memory_full (waiting in memory while the outbox "
            "could not be written), max_points, max_age (outbox bounds)",
            labels=["reason"],
        )
        for reason, n in sorted(outbox.dropped_by_reason.items()):
            dropped.add_metric([reason], n)
        yield dropped
        yield _gauge(
            "gatewayd_points_in_memory", "Samples waiting in memory to be committed", outbox.memory_points
        )
        yield _gauge(
            "gatewayd_outbox_writable",
            "1 while the outbox takes writes; 0 while samples wait in memory (a full disk)",
            1 if outbox.writable else 0,
        )
        yield _counter("gatewayd_dead_letter", "Points refused for good by Thing+", outbox.dead_lettered)
        dead = GaugeMetricFamily(
            "gatewayd_dead_letters",
            "Dead letters kept in the outbox, by reason (HTTP status and Thing+ code)",
            labels=["reason"],
        )
        for code, n in self.dead_letters.counts.items():
            dead.add_metric([code], n)
        yield dead
        polls = CounterMetricFamily("gatewayd_poll", "Polls by cloud and result", labels=["cloud", "result"])
        for (cloud, result), n in sorted(d.polling.polls.items()):
            polls.add_metric([cloud, result], n)
        yield polls
        yield _gauge(
            "gatewayd_report_interval_seconds",
            "Thing+ reportInterval in use",
            upload.report_interval_ms / 1000,
        )
        yield _gauge(
            "gatewayd_registered", "1 once registered on Thing+", 1 if d.registration.registered else 0
        )
        yield _gauge("gatewayd_sensors", "Sensors in the inventory", sensors.count)
        yield request_seconds_family(d.requests)
        yield from _commands(d)
        yield from _mqtt(d)
        yield build_info()


def build_info() -> InfoMetricFamily:
    """``gatewayd_build``: the version and the Python running it (also on a fleet's /metrics)."""
    info = InfoMetricFamily("gatewayd_build", "gatewayd version and runtime")
    info.add_metric([], {"version": __version__, "python": platform.python_version()})
    return info


def request_seconds_family(requests: Mapping[tuple[str, str], LatencySnapshot]) -> HistogramMetricFamily:
    """Cloud request latency by cloud and operation, from a request observer's snapshot (a daemon's, or a
    fleet's: one per process, whatever the number of gateways)."""
    family = HistogramMetricFamily(
        "gatewayd_request_seconds",
        "Cloud request latency by cloud and operation",
        labels=["cloud", "operation"],
    )
    bounds = [*(floatToGoString(b) for b in BUCKETS), "+Inf"]
    for (cloud, operation), latency in sorted(requests.items()):
        cumulative = list(itertools.accumulate(latency.counts))
        family.add_metric([cloud, operation], list(zip(bounds, cumulative)), latency.sum_s)
    return family


def _commands(snapshot: DaemonSnapshot) -> Iterator[Metric]:
    """Remote commands by method and result, and the clock offset the last timeSync saw."""
    family = CounterMetricFamily(
        "gatewayd_commands",
        "Remote commands (JSON-RPC over MQTT) answered, by method and result (ok or the error's name)",
        labels=["method", "result"],
    )
    for (method, result), n in sorted(snapshot.commands.counts.items()):
        family.add_metric([method, result], n)
    yield family
    if snapshot.commands.time_offset_s is not None:
        yield _gauge(
            "gatewayd_time_offset_seconds",
            "The cloud's time minus the box's at the last timeSync",
            snapshot.commands.time_offset_s,
        )


def _mqtt(snapshot: DaemonSnapshot) -> Iterator[Metric]:
    """The Thing+ MQTT session (transport mqtt only): connected or not, connections made, messages."""
    link = snapshot.reporting.connection
    if snapshot.reporting.transport != "mqtt":
        return
    yield _gauge(
        "gatewayd_mqtt_connected",
        "1 while connected to the Thing+ MQTT broker",
        int(bool(link.get("connected"))),
    )
    yield _counter(
        "gatewayd_mqtt_connects", "Connections made to the Thing+ MQTT broker", link.get("connects", 0)
    )
    yield _counter(
        "gatewayd_mqtt_published", "MQTT messages the broker acknowledged (PUBACK)", link.get("published", 0)
    )
    yield _counter(
        "gatewayd_mqtt_publish_failures", "MQTT publishes not acknowledged", link.get("publish_failures", 0)
    )


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)
