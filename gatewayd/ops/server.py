"""Operations endpoints on the inventory's ``http.listen``: /healthz, /metrics (Prometheus), /status.

Why metrics are read at scrape time (a custom collector) rather than counted twice: the daemon's parts
already keep their counters; mirroring them into prometheus-client objects would be a second truth that
can drift. Only request latency, which exists nowhere else, is a real Histogram fed by the HTTP layer.
"""

from __future__ import annotations

import asyncio
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from gatewayd import __version__
from gatewayd.clouds import http as cloud_http
from gatewayd.outbox.deadletters import DeadLetterCounts, outbox_path

if TYPE_CHECKING:
    from gatewayd.runtime.service import Daemon

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


def assess(daemon: Daemon, now: float) -> Health:
    """200 when the outbox takes writes, every sensor runs (none waits for its id to be saved), the
    daemon is registered and an upload cycle succeeded (or points moved) within 3 x reportInterval."""
    interval_s = daemon.report_interval_ms / 1000
    window = HEALTH_INTERVALS * interval_s
    pending = daemon.outbox.stats.pending if daemon.outbox else 0
    detail: dict[str, Any] = {"pending": pending, "report_interval_s": interval_s, "window_s": window}
    saver = daemon.registry_saver
    waiting = saver.problem() if saver else None
    if saver is not None and waiting is not None:
        detail["waiting_sensors"] = {w.key: saver.reason() for w in saver.waiting}
    storage_problem = daemon.disk_guard.problem() if daemon.disk_guard else None
    if storage_problem is not None:  # samples are being dropped, or soon will be: first thing to say
        return Health(False, storage_problem, detail)
    if waiting is not None:  # sensors not sampled at all
        return Health(False, waiting, detail)
    if daemon.registered is None:
        return Health(False, "not registered on Thing+ yet (sampling to the outbox meanwhile)", detail)
    stats = daemon.uploader.stats if daemon.uploader else None
    last_success = stats.last_success if stats else None
    last_progress = stats.last_progress if stats else None
    if last_success is not None:
        detail["last_success_age_s"] = round(now - last_success, 3)
        if now - last_success <= window:
            return Health(True, "uploading", detail)
    if last_progress is not None and now - last_progress <= window:
        detail["last_progress_age_s"] = round(now - last_progress, 3)
        return Health(True, "draining backlog", detail)
    if stats and stats.errors:
        detail["errors"] = dict(stats.errors)
    return Health(False, f"no successful upload cycle in the last {window:g}s", detail)


class DaemonCollector(Collector):
    """Reads the daemon's own counters at each scrape (dead letters by reason: as last refreshed)."""

    def __init__(self, daemon: Daemon, dead_letters: DeadLetterCounts) -> None:
        self.daemon = daemon
        self.dead_letters = dead_letters

    def collect(self) -> Iterator[Metric]:
        d = self.daemon
        sampler = d.sampler.stats if d.sampler else None
        upload = d.uploader.stats if d.uploader else None
        outbox = d.outbox.stats if d.outbox else None

        yield _counter(
            "gatewayd_points_sampled", "Samples read from sources", sampler.sampled if sampler else 0
        )
        yield _counter("gatewayd_read_errors", "Failed sensor reads", sampler.read_errors if sampler else 0)
        yield _counter(
            "gatewayd_points_uploaded", "Points Thing+ acknowledged", upload.uploaded if upload else 0
        )
        yield _counter(
            "gatewayd_statuses_sent", "Status heartbeats Thing+ accepted", upload.statuses if upload else 0
        )
        errors = CounterMetricFamily(
            "gatewayd_upload_errors",
            "Failed calls while reporting, by cloud and error kind",
            labels=["cloud", "kind"],
        )
        for kind, n in sorted((upload.errors if upload else {}).items()):
            errors.add_metric(["thingplus", kind], n)
        yield errors
        yield _gauge(
            "gatewayd_outbox_points", "Points waiting in the outbox", outbox.pending if outbox else 0
        )
        yield _counter(
            "gatewayd_outbox_dropped",
            "Points dropped past the outbox bounds",
            outbox.dropped if outbox else 0,
        )
        dropped = CounterMetricFamily(
            "gatewayd_points_dropped",
            "Samples dropped before delivery, by reason: memory_full (waiting in memory while the outbox "
            "could not be written), max_points, max_age (outbox bounds)",
            labels=["reason"],
        )
        by_reason = {"memory_full": 0, "max_points": 0, "max_age": 0}
        by_reason.update(outbox.dropped_by_reason if outbox else {})
        by_reason.update(d.disk_guard.dropped() if d.disk_guard else {})
        for reason, n in sorted(by_reason.items()):
            dropped.add_metric([reason], n)
        yield dropped
        yield _gauge(
            "gatewayd_points_in_memory",
            "Samples waiting in memory to be committed",
            len(d.buffer) if d.buffer else 0,
        )
        yield _gauge(
            "gatewayd_outbox_writable",
            "1 while the outbox takes writes; 0 while samples wait in memory (a full disk)",
            1 if d.disk_guard is not None and d.disk_guard.writable else 0,
        )
        yield _counter(
            "gatewayd_dead_letter", "Points refused for good by Thing+", outbox.dead_lettered if outbox else 0
        )
        dead = GaugeMetricFamily(
            "gatewayd_dead_letters",
            "Dead letters kept in the outbox, by reason (HTTP status and Thing+ code)",
            labels=["reason"],
        )
        for code, n in self.dead_letters.counts.items():
            dead.add_metric([code], n)
        yield dead
        polls = CounterMetricFamily("gatewayd_poll", "Polls by cloud and result", labels=["cloud", "result"])
        for (cloud, result), n in sorted(d.poll_stats.polls.items()):
            polls.add_metric([cloud, result], n)
        yield polls
        yield _gauge(
            "gatewayd_report_interval_seconds", "Thing+ reportInterval in use", d.report_interval_ms / 1000
        )
        yield _gauge("gatewayd_registered", "1 once registered on Thing+", 1 if d.registered else 0)
        yield _gauge(
            "gatewayd_sensors", "Sensors in the inventory", len(d.sampler.sensors) if d.sampler else 0
        )
        info = InfoMetricFamily("gatewayd_build", "gatewayd version and runtime")
        info.add_metric([], {"version": __version__, "python": platform.python_version()})
        yield info


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class OpsServer:
    """The aiohttp server behind /healthz, /metrics and /status for one daemon."""

    def __init__(self, daemon: Daemon, listen: str, *, mono: Callable[[], float] = time.monotonic) -> None:
        self.daemon = daemon
        host, _, port = listen.rpartition(":")
        self.host = host.strip("[]")
        self.port = int(port)
        self.mono = mono
        self.dead_letters = DeadLetterCounts(outbox_path(daemon.state_dir))
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(DaemonCollector(daemon, self.dead_letters))
        self.request_seconds = Histogram(
            "gatewayd_request_seconds",
            "Cloud request latency by cloud and operation",
            ["cloud", "operation"],
            registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self._request_children: dict[tuple[str, str], Any] = {}
        self._runner: web.AppRunner | None = None

    def _observe(self, cloud: str, operation: str, seconds: float) -> None:
        # One histogram child per (cloud, operation), looked up here rather than through ``labels``
        # (a lock and argument checks), since every request of every cloud passes by.
        child = self._request_children.get((cloud, operation))
        if child is None:
            child = self._request_children[(cloud, operation)] = self.request_seconds.labels(cloud, operation)
        child.observe(seconds)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/status", self._status)
        # A scraper holding a connection open must not hold up a stop (aiohttp waits 60 s by default).
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        cloud_http.REQUEST_HOOKS.append(self._observe)
        log.info("ops.listening", listen=f"{self.host}:{self.port}")

    async def stop(self) -> None:
        if self._observe in cloud_http.REQUEST_HOOKS:
            cloud_http.REQUEST_HOOKS.remove(self._observe)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        health = assess(self.daemon, self.mono())
        return web.json_response(health.as_json(), status=200 if health.ok else 503)

    async def _dead_letter_counts(self) -> dict[str, int]:
        outbox = self.daemon.outbox
        return await self.dead_letters.refresh(outbox.stats.dead_lettered) if outbox else {}

    async def _metrics(self, request: web.Request) -> web.Response:
        await self._dead_letter_counts()
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _status(self, request: web.Request) -> web.Response:
        d = self.daemon
        now = d.clock()
        sensors = [
            {
                "device": s.device,
                "name": s.name,
                "id": s.sensor_id,
                "type": s.type,
                "status": s.status,
                "reads": s.reads,
                "failures": s.failures,
                "last_error": s.last_error,
            }
            for s in (d.sampler.sensors if d.sampler else [])
        ]
        saver = d.registry_saver
        if saver is not None:
            reason = saver.reason()
            sensors += [
                {
                    "device": w.device,
                    "name": w.name,
                    "id": None,  # made, but not on disk yet: nothing is keyed by it
                    "type": w.type,
                    "status": "waiting",
                    "reason": reason,
                    "reads": 0,
                    "failures": 0,
                    "last_error": None,
                }
                for w in saver.waiting
            ]
        dead = await self._dead_letter_counts()
        body = {
            "registered": d.registered is not None,
            "gateway_id": d.registered.gateway_id if d.registered else None,
            "report_interval_ms": d.report_interval_ms,
            "outbox": {
                "pending": d.outbox.stats.pending if d.outbox else 0,
                "dead_letters": {"total": sum(dead.values()), "by_reason": dead},
            },
            "storage": d.disk_guard.as_json() if d.disk_guard else None,
            "registry": saver.as_json() if saver else None,
            "sensors": sensors,
            "polled": d.latest.as_json(now),
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
