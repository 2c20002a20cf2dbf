"""The reporting controller: statuses and uploads to Thing+, each on its own schedule.

Why two loops: statuses say "alive" for every sensor once a reportInterval and uploads send what the
outbox holds; with thousands of sensors the statuses alone take a good part of the interval, and the
data should not wait for them. When each is due is decided by gatewayd.runtime.schedule (pure
functions of the monotonic clock, so an NTP step moves nothing); this module only waits and sends.

Both begin when the registration controller says the gateway is registered (:meth:`Reporting.start`),
pause when it is lost (:meth:`Reporting.pause`), and the uploads get the stop's grace period
(:meth:`Reporting.drain`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from gatewayd.errors import CloudError, GatewaydError, StorageError
from gatewayd.outbox import Outbox
from gatewayd.runtime.schedule import (
    DEFAULT_REPORT_INTERVAL_MS,
    backlog_growing,
    next_status_at,
    next_upload_at,
    refresh_due,
    storage_retry_s,
    wait_s,
)
from gatewayd.runtime.snapshots import EMPTY, ReportingSnapshot
from gatewayd.runtime.supervisor import Supervisor
from gatewayd.runtime.uploader import DrainResult, Uploader, UploadStats

if TYPE_CHECKING:
    from gatewayd.clouds.thingplus import ThingPlusClient
    from gatewayd.runtime.gatewaywatch import GatewayWatch

log = structlog.get_logger(__name__)


class ReportingTransport(Protocol):
    """What reporting sends through: the HTTPS uploader (gatewayd.runtime.uploader) or the MQTT one
    (gatewayd.runtime.mqttuploader). It acknowledges the outbox's leases when the cloud took the points."""

    gateway_id: str
    stats: UploadStats
    sendable: frozenset[str]

    def send_for(self, gateway_id: str, sensor_ids: Iterable[str]) -> None: ...

    def finish_by(self, deadline: float) -> None: ...

    async def send_statuses(self, statuses: Iterable[tuple[str, str]], valid_duration_s: int) -> bool: ...

    async def drain(self, *, deadline: float | None = None) -> DrainResult: ...


class Reporting:
    """Sends the statuses and the outbox's points for one gateway, once it is registered."""

    def __init__(
        self,
        supervisor: Supervisor,
        client: ThingPlusClient | None,
        outbox: Outbox,
        statuses: Callable[[], Iterable[tuple[str, str]]],
        *,
        gateway_id: str,
        gateway_watch: GatewayWatch | None,
        on_cycle: Callable[[], object] | None = None,
        mono: Callable[[], float] = time.monotonic,
        transport: ReportingTransport | None = None,
        connection: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        """``client``: the HTTPS client (statuses, series, the gateway record's reportInterval), or None
        when ``transport`` (MQTT) sends instead and the interval is set by the cloud's commands;
        ``connection`` says what ``/status`` shows of that transport's link."""
        self.supervisor = supervisor
        self.client = client
        self.statuses = statuses
        self.gateway_watch = gateway_watch
        self.on_cycle = on_cycle
        self.mono = mono
        self.connection = connection
        self.uploader: ReportingTransport
        if transport is not None:
            self.uploader = transport
        else:
            assert client is not None, "reporting needs the HTTPS client or another transport"
            self.uploader = Uploader(
                client, outbox, gateway_id=gateway_id, mono=mono, gateway_watch=gateway_watch
            )
        self.report_interval_ms = DEFAULT_REPORT_INTERVAL_MS
        self._active = False
        self._rounds = 0
        self._last_upload: float | None = None
        self._status_wake = asyncio.Event()
        self._upload_wake = asyncio.Event()
        self._status_task: asyncio.Task[None] | None = None
        self._upload_task = supervisor.spawn(self._upload_loop(), "uploader", drains=True)
        supervisor.add(self)

    # ------------------------------------------------------------------ steering

    def start(self, gateway_id: str, sensor_ids: Iterable[str], report_interval_ms: int | None) -> None:
        """Registered: report for ``gateway_id`` and these sensors, the backlog first (at once)."""
        self.uploader.send_for(gateway_id, sensor_ids)
        self._active = True
        self._last_upload = None
        self.set_report_interval(report_interval_ms or DEFAULT_REPORT_INTERVAL_MS, first=True)
        if self._status_task is None or self._status_task.done():
            self._status_task = self.supervisor.spawn(self._status_loop(), "heartbeat")

    def pause(self) -> None:
        """The gateway is lost: the points wait in the outbox until :meth:`start` again."""
        self._active = False

    def set_report_interval(self, interval_ms: int, *, first: bool = False) -> None:
        """A new reportInterval counts from the last round's start: it takes effect at once."""
        if not first and interval_ms == self.report_interval_ms:
            return
        if not first:
            log.info("reporting.interval_changed", old_ms=self.report_interval_ms, new_ms=interval_ms)
        self.report_interval_ms = interval_ms
        self._status_wake.set()
        self._upload_wake.set()

    @property
    def interval_s(self) -> float:
        return self.report_interval_ms / 1000

    async def _until(self, due: float, wake: asyncio.Event) -> bool:
        """Wait until ``due`` (monotonic); False when ``wake`` cut the wait short (look again)."""
        remaining = wait_s(due, self.mono())
        if remaining <= 0:
            return True
        try:
            await asyncio.wait_for(wake.wait(), remaining)
        except asyncio.TimeoutError:
            return True
        return False

    # ------------------------------------------------------------------ statuses

    async def _status_loop(self) -> None:
        last_started: float | None = None
        while not self.supervisor.stopping:
            self._status_wake.clear()
            if not await self._until(next_status_at(last_started, self.interval_s), self._status_wake):
                continue
            last_started = self.mono()
            try:
                await self._status_round()
            except Exception:  # a bug in one round must not end the heartbeats; its traceback is logged
                log.exception("reporting.heartbeat_failed")

    async def _status_round(self) -> None:
        """The gateway's status and each sensor's (every few rounds, the gateway record read again)."""
        from gatewayd.clouds.thingplus import valid_duration_s

        if self.supervisor.stopping or not self._active:
            return
        self._rounds += 1
        if refresh_due(self._rounds) and self.client is not None:
            await self._refresh_report_interval()
        await self.uploader.send_statuses(self.statuses(), valid_duration_s(self.report_interval_ms))

    async def _refresh_report_interval(self) -> None:
        from gatewayd.clouds.thingplus import report_interval_ms

        assert self.client is not None
        try:
            record = await self.client.gateway(self.uploader.gateway_id)
        except CloudError as exc:
            log.warning("reporting.gateway_not_read", error=exc.message, code=exc.code)
            if self.gateway_watch is not None:
                await self.gateway_watch.keeps_data(exc)  # a 404 may be the gateway deleted
            return
        interval = report_interval_ms(record)
        if interval:
            self.set_report_interval(interval)

    # ------------------------------------------------------------------ uploads

    async def _upload_loop(self) -> None:
        last_pending_logged = 0
        storage_failures = 0
        last_ended: float | None = None
        while not self.supervisor.stopping:
            self._upload_wake.clear()
            if not self._active:
                await self._upload_wake.wait()
                continue
            due = next_upload_at(
                self._last_upload, self.interval_s, storage_failures=storage_failures, last_ended=last_ended
            )
            if not await self._until(due, self._upload_wake) or self.supervisor.stopping or not self._active:
                continue
            self._last_upload = self.mono()
            try:
                result = await self.uploader.drain()
            except StorageError as exc:
                # Disk full or failing: the points stay in the outbox (a batch the cloud took but whose
                # deletion failed goes again). Backing off keeps that from repeating every second.
                storage_failures += 1
                last_ended = self.mono()
                log.error(
                    "upload.outbox_failed",
                    effect="retried",
                    error=str(exc),
                    failures=storage_failures,
                    retry_in_s=storage_retry_s(storage_failures),
                )
                continue
            storage_failures = 0
            if backlog_growing(result.pending, last_pending_logged):
                log.info("upload.backlog_growing", pending=result.pending)
                last_pending_logged = result.pending
            elif result.pending == 0:
                last_pending_logged = 0
            if self.on_cycle is not None:
                self.on_cycle()

    # ------------------------------------------------------------------ the two-phase stop

    async def stop_intake(self) -> None:
        """Statuses end with the background tasks; uploads go on into the grace period."""

    async def drain(self, deadline: float) -> None:
        """A cycle in progress ends by ``deadline``; then one last cycle sends what it can by then."""
        self.uploader.finish_by(deadline)
        self._upload_wake.set()
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._upload_task), timeout=self.supervisor.grace_s + 2)
        self._upload_task.cancel()
        if self._active and self.mono() < deadline:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, GatewaydError):
                await asyncio.wait_for(
                    self.uploader.drain(deadline=deadline), timeout=deadline - self.mono() + 2
                )

    async def close(self) -> None:
        """The client uses the daemon's session, which closes with the supervisor's stack."""

    # ------------------------------------------------------------------ what operators see

    def snapshot(self) -> ReportingSnapshot:
        stats = self.uploader.stats
        return ReportingSnapshot(
            report_interval_ms=self.report_interval_ms,
            uploaded=stats.uploaded,
            batches=stats.batches,
            statuses=stats.statuses,
            status_errors=stats.status_errors,
            errors=MappingProxyType(dict(stats.errors)),
            last_success=stats.last_success,
            last_progress=stats.last_progress,
            transport="https" if self.connection is None else "mqtt",
            connection=MappingProxyType(dict(self.connection())) if self.connection else EMPTY,
        )
