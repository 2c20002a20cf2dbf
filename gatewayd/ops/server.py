"""Operations endpoints on the inventory's ``http.listen``: /healthz, /metrics (Prometheus), /status.

Why metrics are read at scrape time (a custom collector) rather than counted twice: the daemon's parts
already keep their counters; mirroring them into prometheus-client objects would be a second truth that
can drift. Request latency too is kept by the daemon (the observer its HTTP transports are given,
gatewayd.runtime.requestmetrics). Everything here reads the daemon's snapshots
(gatewayd.runtime.snapshots), never its parts: the ops side knows nothing of how the daemon is built.
"""

from __future__ import annotations

import asyncio
import itertools
import platform
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from gatewayd import __version__
from gatewayd.ops.endpoints import OpsEndpoints
from gatewayd.outbox.deadletters import DeadLetterCounts
from gatewayd.runtime.requestmetrics import BUCKETS, LatencySnapshot
from gatewayd.runtime.snapshots import DaemonSnapshot, StatusSource

log = structlog.get_logger(__name__)

#: Health allows this many report intervals without a successful upload cycle.
HEALTH_INTERVALS = 3


@dataclass(frozen=True)
class Health:
    ok: bool
    reason: str
    detail: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"status": "ok" if self.ok else "unhealthy", "reason": self.reason, **self.detail}


def assess(snapshot: DaemonSnapshot, now: float) -> Health:
    """200 when the outbox takes writes, every sensor runs (none waits for its id to be saved), the
    daemon is registered and an upload cycle succeeded (or points moved) within 3 x reportInterval."""
    reporting = snapshot.reporting
    interval_s = reporting.report_interval_ms / 1000
    window = HEALTH_INTERVALS * interval_s
    detail: dict[str, Any] = {
        "pending": snapshot.storage.pending,
        "report_interval_s": interval_s,
        "window_s": window,
    }
    sensors = snapshot.sensors
    if sensors.waiting_problem is not None:
        detail["waiting_sensors"] = {w.key: sensors.waiting_reason for w in sensors.waiting}
    if snapshot.storage.problem is not None:  # samples are being dropped, or soon will be: first thing to say
        return Health(False, snapshot.storage.problem, detail)
    if sensors.waiting_problem is not None:  # sensors not sampled at all
        return Health(False, sensors.waiting_problem, detail)
    if not snapshot.registration.registered:
        return Health(False, "not registered on Thing+ yet (sampling to the outbox meanwhile)", detail)
    last_success = reporting.last_success
    last_progress = reporting.last_progress
    if last_success is not None:
        detail["last_success_age_s"] = round(now - last_success, 3)
        if now - last_success <= window:
            return Health(True, "uploading", detail)
    if last_progress is not None and now - last_progress <= window:
        detail["last_progress_age_s"] = round(now - last_progress, 3)
        return Health(True, "draining backlog", detail)
    if reporting.errors:
        detail["errors"] = dict(reporting.errors)
    return Health(False, f"no successful upload cycle in the last {window:g}s", detail)


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


class OpsServer(OpsEndpoints):
    """The aiohttp server behind /healthz, /metrics and /status, reading ``status`` snapshots only."""

    def __init__(
        self,
        status: StatusSource,
        listen: str,
        outbox_path: Path,
        *,
        mono: Callable[[], float] = time.monotonic,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(listen)
        self.status = status
        self.mono = mono
        self.clock = clock
        self.dead_letters = DeadLetterCounts(outbox_path)
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(DaemonCollector(status, self.dead_letters))

    async def healthz(self, request: web.Request) -> web.Response:
        health = assess(self.status(), self.mono())
        return web.json_response(health.as_json(), status=200 if health.ok else 503)

    async def metrics_page(self, request: web.Request) -> web.Response:
        await self.dead_letters.refresh(self.status().storage.dead_lettered)
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def status_page(self, request: web.Request) -> web.Response:
        d = self.status(detail=True)
        sensors: list[dict[str, Any]] = [
            {
                "device": s.device,
                "name": s.name,
                "id": s.id,
                "type": s.type,
                "status": s.status,
                "reads": s.reads,
                "failures": s.failures,
                "last_error": s.last_error,
            }
            for s in d.sensors.rows
        ]
        sensors += [
            {
                "device": w.device,
                "name": w.name,
                "id": None,  # made, but not on disk yet: nothing is keyed by it
                "type": w.type,
                "status": "waiting",
                "reason": d.sensors.waiting_reason,
                "reads": 0,
                "failures": 0,
                "last_error": None,
            }
            for w in d.sensors.waiting
        ]
        dead = await self.dead_letters.refresh(d.storage.dead_lettered)
        body = {
            "registered": d.registration.registered,
            "gateway_id": d.registration.gateway_id,
            "report_interval_ms": d.reporting.report_interval_ms,
            "transport": d.reporting.transport,
            **({"mqtt": dict(d.reporting.connection)} if d.reporting.transport == "mqtt" else {}),
            "outbox": {
                "pending": d.storage.pending,
                "dead_letters": {"total": sum(dead.values()), "by_reason": dead},
            },
            "storage": dict(d.storage.detail),
            "registry": dict(d.sensors.registry),
            "sensors": sensors,
            "actuators": [
                {
                    "device": a.device,
                    "name": a.name,
                    "type": a.type,
                    "target": a.target,
                    "state": a.state,
                    "status": a.status,
                    "last_command": a.last_command,
                    "last_error": a.last_error,
                    "commands": a.commands,
                    "failures": a.failures,
                }
                for a in d.actuators
            ],
            "polled": dict(d.polling.latest),
        }
        return web.json_response(body)


async def probe_health(listen: str, timeout_s: float) -> tuple[bool, str]:
    """GET /healthz of a daemon listening on ``listen`` (a wildcard address is asked on loopback)."""
    import aiohttp

    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/healthz"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
            session.get(url) as resp,
        ):
            return resp.status == 200, await resp.text()
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        return False, f'{{"status": "unreachable", "url": "{url}", "error": "{type(exc).__name__}"}}'
