"""The daemon: lifecycle, scheduler jobs, reload, and the two-phase shutdown.

Start-up order matters on an edge box: the outbox opens and sampling starts at once (ids are made
locally, so samples are keyed from the first second), then registration on Thing+ is retried with
backoff for as long as it takes, and only then do heartbeats and uploads begin, with the backlog first.
A sensor whose new id cannot be saved (a full disk) waits until it is: see gatewayd.runtime.registrysaver.

Shutdown is two-phased: stop sampling and commit what was read; then send what is pending within a
bounded grace period; what could not be sent stays in the outbox for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from gatewayd import eventloop
from gatewayd.clouds.retry import RetryPolicy
from gatewayd.errors import CloudError, ConfigError, GatewaydError, StorageError
from gatewayd.inventory.config import Inventory, SensorConfig, fingerprint, load_inventory
from gatewayd.outbox import Outbox
from gatewayd.runtime.diskguard import DiskGuard, memory_points_for
from gatewayd.runtime.registry import Registry
from gatewayd.runtime.registrysaver import RegistrySaver, WaitingSensor
from gatewayd.runtime.sampler import ClockJumpGuard, SampleBuffer, Sampler, SensorRuntime
from gatewayd.runtime.triggers import JumpSafeIntervalTrigger
from gatewayd.sources import SourceContext, build_source
from gatewayd.sources.latest import LatestState, PollStats
from gatewayd.statefile import StateFile
from gatewayd.statelock import StateLock
from gatewayd.wallclock import RestampOnClockSet, Stamper

# The network side (aiohttp, the three clients, registration, uploads, polling) is imported where it is
# first used, after READY: importing the HTTP stack alone takes a few tenths of a second, and sampling
# to the outbox needs none of it.
if TYPE_CHECKING:
    import aiohttp

    from gatewayd.clouds.thingplus import ThingPlusClient
    from gatewayd.runtime.gatewaywatch import GatewayWatch
    from gatewayd.runtime.registrar import GatewayModel, Registered
    from gatewayd.runtime.uploader import Uploader

log = structlog.get_logger(__name__)

DEFAULT_REPORT_INTERVAL_MS = 60_000
#: Seconds before an upload cycle that failed on the outbox (disk full, I/O error) is tried again,
#: doubling with each failure in a row up to the maximum.
UPLOAD_STORAGE_RETRY_S = 1.0
UPLOAD_STORAGE_RETRY_MAX_S = 60.0
#: Longest wait for the sources a reload let go of to close before the heap is settled anyway.
SETTLE_WAIT_S = 10.0
#: Re-read the gateway record (reportInterval may be changed in the portal) every this many heartbeats.
REPORT_INTERVAL_REFRESH_EVERY = 5
#: Backoff while Thing+ cannot be reached for registration: from 1 s up to 1 min, with full jitter (an
#: uplink that comes back is used within a minute; one attempt a minute costs nothing).
CONNECT_POLICY = RetryPolicy(attempts=1_000_000_000, base=1.0, cap=60.0)
#: Per-call retries inside one upload/heartbeat: short, since the outbox keeps everything for later.
CALL_POLICY = RetryPolicy(attempts=2, base=0.5, cap=2.0)


@dataclass
class Hooks:
    """What the operations side (systemd notify, health) is told about; each optional."""

    on_ready: Callable[[], object] | None = None
    on_status: Callable[[str], object] | None = None
    on_stopping: Callable[[], object] | None = None
    #: Registered and running with every sensor (after start-up, after a reload): long-lived state is
    #: built, so the daemon process freezes it out of the garbage collector's way (gatewayd.runtime.heap).
    on_settled: Callable[[], object] | None = None


class Daemon:
    """``await Daemon(inventory).run()`` runs until :meth:`stop`; :meth:`reload` re-reads the inventory."""

    def __init__(
        self,
        inventory: Inventory,
        *,
        inventory_path: str | Path | None = None,
        hooks: Hooks | None = None,
        clock: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        grace_s: float = 10.0,
        connect_policy: RetryPolicy = CONNECT_POLICY,
        call_policy: RetryPolicy = CALL_POLICY,
    ) -> None:
        self.inventory = inventory
        #: The inventory the daemon started with, until registration proves it fits the gateway model.
        self._first_inventory: Inventory | None = inventory
        self.inventory_path = str(inventory_path) if inventory_path else None
        self.hooks = hooks or Hooks()
        self.clock = clock
        self.mono = mono
        self.grace_s = grace_s
        self.connect_policy = connect_policy
        self.call_policy = call_policy

        self.state_dir = inventory.state_dir
        self.registry = Registry(self.state_dir)
        self.latest = LatestState()
        self.poll_stats = PollStats()
        self.registered: Registered | None = None
        #: The Thing+ gateway model, known from the first registration on (kept while the gateway is
        #: registered again after a loss): every reload is checked against it.
        self._model: GatewayModel | None = None
        self.report_interval_ms = DEFAULT_REPORT_INTERVAL_MS
        #: Set once everything runs (sampling, the network side, the ops endpoints); systemd hears
        #: READY=1 earlier, as soon as sampling runs (Hooks.on_ready).
        self.ready = asyncio.Event()
        self.fatal: BaseException | None = None

        self._stop = asyncio.Event()
        self._reload_requested = asyncio.Event()
        self._kick_upload = asyncio.Event()
        self._interval_changed = asyncio.Event()
        self._stopping = False
        self._heartbeats = 0
        self._tasks: list[asyncio.Task[Any]] = []
        self._ops: Any = None
        # set in run()
        self.session: aiohttp.ClientSession | None = None
        self.outbox: Outbox | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self.sampler: Sampler | None = None
        self.buffer: SampleBuffer | None = None
        self.disk_guard: DiskGuard | None = None
        self.registry_saver: RegistrySaver | None = None
        self.uploader: Uploader | None = None
        self.thingplus: ThingPlusClient | None = None
        self._gateway_watch: GatewayWatch | None = None
        self._source_context = SourceContext(clock=clock, latest=self.latest)
        self._set_poll_intervals(inventory)

    # ------------------------------------------------------------------ control (signal handlers)

    def stop(self) -> None:
        self._stop.set()

    def reload(self) -> None:
        self._reload_requested.set()

    # ------------------------------------------------------------------ main

    async def run(self) -> None:
        """Run until stopped. Raises ConfigError for an inventory the cloud proves wrong (exit 2).

        A full disk does not stop it, even at start-up: samples wait in memory (see gatewayd.runtime.diskguard).
        """
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with StateLock(self.state_dir):  # one daemon per state directory: a second start ends here
            await self._run_locked()

    async def _run_locked(self) -> None:
        self.outbox = Outbox(
            self.state_dir / "outbox.db",
            max_points=self.inventory.outbox.max_points,
            max_age_s=self.inventory.outbox.max_age,
            clock=self.clock,
            mono=self.mono,
        )
        self.buffer = SampleBuffer(self.outbox, limit=memory_points_for(self.inventory))
        self.disk_guard = DiskGuard(self.outbox, self.buffer, mono=self.mono)
        self.registry_saver = RegistrySaver(
            self.registry,
            self.outbox,
            self.disk_guard,
            on_ids_saved=self._start_saved_sensors,
            mono=self.mono,
        )
        try:
            await self.disk_guard.open()
            await self._run_with(self.outbox)
        finally:
            await self.outbox.close()
        if self.fatal is not None:
            raise self.fatal

    async def _run_with(self, outbox: Outbox) -> None:
        assert self.buffer is not None and self.disk_guard is not None
        # Sampling first: samples are kept from the first second, whatever the cloud does.
        self.scheduler = AsyncIOScheduler(timezone=timezone.utc)
        self.scheduler.start()
        self.sampler = Sampler(
            self.scheduler, self.buffer, clock=self.clock, stamp=Stamper(wall=self.clock, mono=self.mono)
        )
        await self._apply_sensors(self.inventory, at_start=True)
        self.scheduler.add_job(
            outbox.enforce_bounds,
            JumpSafeIntervalTrigger(seconds=60),
            id="outbox-bounds",
            coalesce=True,
            max_instances=1,
        )
        self._spawn(self.disk_guard.run(), "sample buffer")
        guard = ClockJumpGuard(
            self.scheduler, wall=self.clock, mono=self.mono, on_check=RestampOnClockSet(outbox).check
        )
        self._spawn(guard.run(), "clock guard")
        self._notify_ready()
        try:
            from gatewayd.ops.oneshot import http_session

            async with http_session() as session:
                self._start_network(session, outbox)
                try:
                    if self.inventory.http is not None:
                        await self._start_ops(self.inventory.http.listen)
                    self.ready.set()
                    log.info(
                        "gatewayd running",
                        sensors=len(self.sampler.sensors),
                        state_dir=str(self.state_dir),
                        pending=outbox.stats.pending,
                        event_loop=eventloop.loop_name(asyncio.get_running_loop()),
                    )
                    await self._wait_for_stop()
                finally:
                    await self._shutdown()
        finally:
            if self._ops is not None:
                await self._ops.stop()

    def _start_network(self, session: aiohttp.ClientSession, outbox: Outbox) -> None:
        """The Thing+ client, the uploader, registration and the pollers, on the daemon's one session."""
        from gatewayd.clouds.thingplus import ThingPlusClient
        from gatewayd.runtime.gatewaywatch import GatewayWatch
        from gatewayd.runtime.uploader import Uploader

        self.session = session
        self._source_context.session = session
        self.thingplus = ThingPlusClient(
            session,
            self.inventory.thingplus,
            token_store=StateFile(self.state_dir / "thingplus-token.json"),
            policy=self.call_policy,
        )
        self.uploader = Uploader(
            self.thingplus, outbox, gateway_id=self.registry.gateway_id(), mono=self.mono
        )
        self.uploader.sendable = self.registry.registered_sensor_ids()
        self._gateway_watch = GatewayWatch(self.thingplus, self.registry, self._gateway_lost)
        self.uploader.gateway_watch = self._gateway_watch
        self._start_pollers(self.inventory)
        self._spawn(self._upload_loop(), "uploader")
        self._spawn(self._connect(), "connect")

    async def _start_ops(self, listen: str) -> None:
        from gatewayd.ops.server import OpsServer

        ops = OpsServer(self, listen, mono=self.mono)
        try:
            await ops.start()
        except OSError as exc:
            raise GatewaydError(f"cannot serve http.listen {listen}: {exc.strerror or exc}") from exc
        self._ops = ops

    async def _wait_for_stop(self) -> None:
        while not self._stop.is_set():
            stop = asyncio.ensure_future(self._stop.wait())
            reload = asyncio.ensure_future(self._reload_requested.wait())
            await asyncio.wait({stop, reload}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            reload.cancel()
            if self._reload_requested.is_set() and not self._stop.is_set():
                self._reload_requested.clear()
                await self._reload()

    def _set_poll_intervals(self, inventory: Inventory) -> None:
        """Bridged sensors judge staleness by their cloud's poll interval."""
        if inventory.rcms is not None:
            self._source_context.rcms_poll_interval = inventory.rcms.poll_interval
        if inventory.loctube is not None:
            self._source_context.loctube_poll_interval = inventory.loctube.poll_interval

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.append(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error(
                "internal task failed; stopping", task=task.get_name(), error=f"{type(exc).__name__}: {exc}"
            )
            self.fatal = exc
            self._stop.set()

    # ------------------------------------------------------------------ sensors

    async def _apply_sensors(self, inventory: Inventory, *, at_start: bool = False) -> None:
        """(Re)build the runtime sensor set; unchanged sensors keep their source and state. A sensor
        starts once its id is on disk; until then it waits (see gatewayd.runtime.registrysaver)."""
        assert self.sampler is not None and self.registry_saver is not None
        self.registry.add_ids([(d.name, s.name) for d, s in inventory.sensors()])
        if self.registry.unsaved_ids:
            await self.registry_saver.save(at_start=at_start)
        old = {(r.device, r.name): r for r in self.sampler.sensors}
        runtimes = []
        waiting = []
        for device, sensor in inventory.sensors():
            if not self.registry.sensor_saved(device.name, sensor.name):
                waiting.append(WaitingSensor(device.name, sensor.name, sensor.type))
                continue
            previous = old.get((device.name, sensor.name))
            config_fingerprint = fingerprint(sensor)
            if previous is not None and previous.config_fingerprint == config_fingerprint:
                runtimes.append(previous)
                continue
            runtimes.append(self._runtime(device.name, sensor, config_fingerprint))
        kept = {id(r) for r in runtimes}
        for runtime in old.values():
            if id(runtime) not in kept:
                self._spawn(runtime.source.close(), f"close {runtime.key}")
        self.sampler.set_sensors(runtimes)
        self.registry_saver.set_waiting(waiting, {r.key for r in runtimes})

    async def _start_saved_sensors(self) -> None:
        """Sensors that waited for their ids are saved now: they start, and are registered (before the
        first registration, the one under way registers them: see _connect)."""
        await self._apply_sensors(self.inventory)
        self._status(self.summary_line())
        if self.registered is not None:
            self._spawn(self._connect(), "register sensors whose ids were saved")

    def _runtime(self, device: str, sensor: SensorConfig, config_fingerprint: int) -> SensorRuntime:
        return SensorRuntime(
            device=device,
            name=sensor.name,
            type=sensor.type,
            sensor_id=self.registry.sensor_id(device, sensor.name),
            interval=sensor.interval,
            source=build_source(sensor, self._source_context),
            config_fingerprint=config_fingerprint,
        )

    # ------------------------------------------------------------------ registration

    async def _connect(self) -> None:
        """Register (retrying with backoff while the cloud is unreachable), then start reporting."""
        from gatewayd.runtime.registrar import register

        assert self.thingplus is not None and self.sampler is not None and self.registry_saver is not None
        retry = 0
        while not self._stopping:
            await self.registry_saver.gateway_saved()  # a first start on a full disk waits here
            inventory = self.inventory
            # Registered once, the inventory keeps no devices (_settle): registering again (the
            # gateway was deleted on the cloud side) takes the sensors from their runtimes.
            running = (
                None if inventory.devices else [(r.device, r.name, r.type) for r in self.sampler.sensors]
            )
            try:
                registered = await register(
                    self.thingplus,
                    self.registry,
                    inventory,
                    source=self.inventory_path or "inventory",
                    sensors=running,
                )
            except ConfigError as exc:
                if inventory is not self._first_inventory and self._first_inventory is not None:
                    # A reload before the first registration could not check types; now that the
                    # model is known, refuse that reload as any other invalid one: back to the start.
                    log.error(
                        "reload refused: the new inventory does not fit the Thing+ gateway model; "
                        "the old one keeps running",
                        problems=[str(p) for p in exc.problems],
                    )
                    await self._revert_to(self._first_inventory)
                    continue
                log.error(
                    "inventory does not fit the Thing+ gateway model", problems=[str(p) for p in exc.problems]
                )
                self.fatal = exc
                self._stop.set()
                return
            except CloudError as exc:
                wait = self.connect_policy.delay(retry, random.random())
                retry += 1
                log.warning(
                    "Thing+ registration not done; retrying",
                    error=exc.message,
                    code=exc.code,
                    status=exc.status,
                    kind=exc.kind,
                    retry_in_s=round(wait, 1),
                )
                self._status(f"waiting for Thing+ ({exc.kind}); sampling to the outbox")
                await asyncio.sleep(wait)
                continue
            finally:
                # The marks made: on a full disk they wait (logged, retried), a lost one costing a 409.
                await self.registry_saver.save()
            if self.inventory is not inventory or any(
                not self.registry.sensor_registered(r.device, r.name) for r in self.sampler.sensors
            ):
                # Reloaded, or sensors started (their ids saved), while the call was in flight: register
                # them too (idempotent: what is registered already is skipped).
                continue
            self._on_registered(registered)
            return

    async def _revert_to(self, inventory: Inventory) -> None:
        self._set_poll_intervals(inventory)
        await self._apply_sensors(inventory)
        if (inventory.rcms, inventory.loctube) != (self.inventory.rcms, self.inventory.loctube):
            self._start_pollers(inventory)
        self.inventory = inventory

    def _on_registered(self, registered: Registered) -> None:
        assert self.uploader is not None and self._gateway_watch is not None
        self._first_inventory = None  # from now on reloads are checked against the model up front
        self._gateway_watch.found()
        self.registered = registered
        self._model = registered.model
        self.uploader.gateway_id = registered.gateway_id
        self.uploader.sendable = self.registry.registered_sensor_ids()
        log.info(
            "registered on Thing+",
            gateway_id=registered.gateway_id,
            site=registered.site_id,
            created=registered.created,
            report_interval_ms=registered.report_interval_ms,
        )
        self._set_report_interval(registered.report_interval_ms or DEFAULT_REPORT_INTERVAL_MS, first=True)
        self._status("registered; reporting")
        self._kick_upload.set()
        self._settle()

    def _gateway_lost(self) -> None:
        """Thing+ lost the gateway (gatewayd.runtime.gatewaywatch logged it and cleared the marks): reporting
        pauses, the points wait in the outbox, and registration runs again with the same ids."""
        self.registered = None
        self._status("Thing+ lost the gateway; registering it again")
        self._spawn(self._connect(), "re-register")

    def _settle(self) -> None:
        """Registered and running: each runtime holds what its sensor needs (a reload compares config
        fingerprints), so of the inventory only the other sections are kept. A reload that adds sensors
        keeps the new inventory whole until those are registered. Then the hooks hear that the
        long-lived state is built, once the sources a reload let go of are closed (not before: the
        daemon process freezes what is alive then, and a source still referenced would stay). While
        sensors wait for their ids to be saved, the inventory stays whole: they start from it."""
        if self.registry_saver is not None and self.registry_saver.waiting:
            return
        self.inventory = self.inventory.without_devices()
        if self.hooks.on_settled:
            self._spawn(self._settled(self.hooks.on_settled), "settled")

    async def _settled(self, hook: Callable[[], object]) -> None:
        closing = [t for t in self._tasks if t.get_name().startswith("close ") and not t.done()]
        if closing:
            await asyncio.wait(closing, timeout=SETTLE_WAIT_S)
        hook()

    def _set_report_interval(self, interval_ms: int, *, first: bool = False) -> None:
        if not first and interval_ms == self.report_interval_ms:
            return
        if not first:
            log.info("reportInterval changed", old_ms=self.report_interval_ms, new_ms=interval_ms)
        self.report_interval_ms = interval_ms
        self._interval_changed.set()
        if first and not any(t.get_name() == "heartbeat" and not t.done() for t in self._tasks):
            self._spawn(self._heartbeat_loop(), "heartbeat")

    # ------------------------------------------------------------------ reporting

    async def _heartbeat_loop(self) -> None:
        """A heartbeat every reportInterval, timed on the monotonic clock (an NTP step moves nothing).

        A round that outlasts the interval (thousands of sensors, a slow uplink, a busy box) is followed
        at once by the next instead of waiting for the next tick: each sensor's status is then renewed
        once a round, which keeps it valid (validDuration is 1.5 x the interval) while a round takes
        less than that, where skipping a tick would let every status expire. A new reportInterval
        (read back from the gateway record) takes effect at once, not after the old interval.
        """
        while not self._stopping:
            started = self.mono()
            try:
                await self._heartbeat()
            except Exception:  # a bug in one round must not end the heartbeats; its traceback is logged
                log.exception("heartbeat failed")
            while not self._stopping:
                remaining = started + self.report_interval_ms / 1000 - self.mono()
                if remaining <= 0:
                    break
                self._interval_changed.clear()
                try:
                    await asyncio.wait_for(self._interval_changed.wait(), remaining)
                except asyncio.TimeoutError:
                    break

    async def _heartbeat(self) -> None:
        """Every reportInterval: wake the uploader for the series, and send the statuses alongside.

        Side by side rather than one after the other: with thousands of sensors the statuses alone take
        a good part of the interval, and the data should not wait for them.
        """
        assert self.uploader is not None and self.sampler is not None and self.thingplus is not None
        if self._stopping or self.registered is None:
            return
        self._kick_upload.set()
        self._heartbeats += 1
        if self._heartbeats % REPORT_INTERVAL_REFRESH_EVERY == 0:
            await self._refresh_report_interval()
        from gatewayd.clouds.thingplus import valid_duration_s

        statuses = ((s.sensor_id, s.status) for s in self.sampler.sensors)  # lazily: 10,000 of them
        await self.uploader.send_statuses(statuses, valid_duration_s(self.report_interval_ms))

    async def _refresh_report_interval(self) -> None:
        from gatewayd.clouds.thingplus import report_interval_ms

        assert self.thingplus is not None and self.registered is not None
        try:
            record = await self.thingplus.gateway(self.registered.gateway_id)
        except CloudError as exc:
            log.warning("gateway record not read", error=exc.message, code=exc.code)
            if self._gateway_watch is not None:
                await self._gateway_watch.keeps_data(exc)  # a 404 may be the gateway deleted
            return
        interval = report_interval_ms(record)
        if interval:
            self._set_report_interval(interval)

    async def _upload_loop(self) -> None:
        assert self.uploader is not None and self.outbox is not None
        last_pending_logged = 0
        storage_failures = 0
        while not self._stopping:
            await self._kick_upload.wait()
            self._kick_upload.clear()
            if self._stopping or self.registered is None:
                continue
            try:
                result = await self.uploader.drain()
            except StorageError as exc:
                # Disk full or failing: the points stay in the outbox (a batch the cloud took but whose
                # deletion failed goes again). Backing off keeps that from repeating every second.
                wait_s = min(UPLOAD_STORAGE_RETRY_MAX_S, UPLOAD_STORAGE_RETRY_S * 2**storage_failures)
                storage_failures += 1
                log.error(
                    "upload cycle failed on the outbox; retried",
                    error=str(exc),
                    failures=storage_failures,
                    retry_in_s=wait_s,
                )
                await asyncio.sleep(wait_s)
                self._kick_upload.set()
                continue
            storage_failures = 0
            pending = result.pending
            if pending > max(1000, 2 * last_pending_logged):
                log.info("backlog growing", pending=pending)
                last_pending_logged = pending
            elif pending == 0:
                last_pending_logged = 0
            self._status(self.summary_line())

    # ------------------------------------------------------------------ polling

    def _start_pollers(self, inventory: Inventory) -> None:
        from gatewayd.clouds.loctube import LoctubeClient
        from gatewayd.clouds.rcms import RcmsClient
        from gatewayd.runtime.pollers import LoctubePoller, RcmsPoller

        assert self.scheduler is not None and self.session is not None
        for job_id in ("poll:rcms", "poll:loctube"):
            if self.scheduler.get_job(job_id):
                self.scheduler.remove_job(job_id)
        if inventory.rcms is not None and inventory.rcms.devices:
            rcms = RcmsPoller(
                RcmsClient(self.session, inventory.rcms),
                list(inventory.rcms.devices),
                inventory.rcms.poll_interval,
                self.latest,
                self.poll_stats,
                self.state_dir,
                clock=self.clock,
            )
            self._add_poll_job("poll:rcms", rcms.poll, inventory.rcms.poll_interval)
        if inventory.loctube is not None and inventory.loctube.devices:
            loctube = LoctubePoller(
                LoctubeClient(self.session, inventory.loctube),
                list(inventory.loctube.devices),
                self.latest,
                self.poll_stats,
                clock=self.clock,
            )
            self._add_poll_job("poll:loctube", loctube.poll, inventory.loctube.poll_interval)

    def _until_stop(self, job: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """``job`` for the scheduler: when the stop cancels it half-way, it just ends (no error logged)."""

        async def run() -> None:
            try:
                await job()
            except asyncio.CancelledError:
                if not self._stopping:
                    raise

        return run

    def _add_poll_job(self, job_id: str, poll: Callable[[], Awaitable[None]], interval_s: float) -> None:
        assert self.scheduler is not None
        self.scheduler.add_job(
            self._until_stop(poll),
            JumpSafeIntervalTrigger(seconds=interval_s),
            id=job_id,
            coalesce=True,
            max_instances=1,
            next_run_time=datetime.now(timezone.utc),
        )

    # ------------------------------------------------------------------ reload (SIGHUP)

    async def _reload(self) -> None:
        from gatewayd.runtime.registrar import check_types

        assert self.sampler is not None
        if not self.inventory_path:
            log.warning("reload requested but the inventory has no file to re-read")
            return
        path = self.inventory_path
        model = self._model

        def parse() -> Inventory:
            inventory = load_inventory(path)
            if model is not None:
                check_types(inventory, model, path)
            return inventory

        try:
            # In a thread: a 10,000-sensor inventory takes seconds to parse, and sampling must not wait.
            new = await asyncio.to_thread(parse)
            if self._model is not None and self._model is not model:
                # Registered while the thread parsed: check the types now, as a reload after it would.
                check_types(new, self._model, path)
        except ConfigError as exc:
            log.error(
                "reload refused: the new inventory is invalid; the old one keeps running",
                problems=[str(p) for p in exc.problems],
            )
            return
        needs_restart = [
            key
            for key in ("gateway", "thingplus", "state_dir", "http", "outbox")
            if getattr(new, key) != getattr(self.inventory, key)
        ]
        if needs_restart:
            log.warning("reload: these sections change only on restart", sections=needs_restart)
            new = new.model_copy(update={key: getattr(self.inventory, key) for key in needs_restart})
        before = {(r.device, r.name) for r in self.sampler.sensors}
        after = {(d.name, s.name) for d, s in new.sensors()}
        self._set_poll_intervals(new)
        await self._apply_sensors(new)
        if (new.rcms, new.loctube) != (self.inventory.rcms, self.inventory.loctube):
            self._start_pollers(new)
        self.inventory = new
        log.info(
            "inventory reloaded",
            added=sorted("/".join(k) for k in after - before),
            removed=sorted("/".join(k) for k in before - after),
            sensors=len(after),
        )
        if self.registered is not None and after - before:
            self._spawn(self._connect(), "register added sensors")
        elif self.registered is not None:
            self._settle()

    # ------------------------------------------------------------------ shutdown

    async def _shutdown(self) -> None:
        assert self.sampler is not None and self.disk_guard is not None and self.scheduler is not None
        self._stopping = True
        if self.hooks.on_stopping:
            self.hooks.on_stopping()
        log.info("stopping: sampling ends, pending points get a grace period", grace_s=self.grace_s)
        await self.sampler.stop(grace_s=min(5.0, self.grace_s))
        for job in self.scheduler.get_jobs():
            job.remove()
        for task in self._tasks:
            if task.get_name() != "uploader":
                task.cancel()
        await self.disk_guard.final_commit()
        self._kick_upload.set()
        # One grace period in all: a drain in progress ends by the deadline, then one last drain gets
        # what is left of it. Requests already on the wire may finish a moment later (bounded).
        deadline = self.mono() + self.grace_s
        if self.uploader is not None:
            self.uploader.stop_by = deadline
        uploader_task = next((t for t in self._tasks if t.get_name() == "uploader"), None)
        if uploader_task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(uploader_task), timeout=self.grace_s + 2)
            uploader_task.cancel()
        if self.registered is not None and self.uploader is not None and self.mono() < deadline:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, GatewaydError):
                await asyncio.wait_for(
                    self.uploader.drain(deadline=deadline), timeout=deadline - self.mono() + 2
                )
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.scheduler.shutdown(wait=False)
        for runtime in self.sampler.sensors:
            with contextlib.suppress(Exception):
                await runtime.source.close()
        with contextlib.suppress(Exception):
            await self._source_context.close()
        pending = self.outbox.stats.pending if self.outbox else 0
        log.info(
            "stopped",
            sampled=self.sampler.stats.sampled,
            uploaded=self.uploader.stats.uploaded if self.uploader else 0,
            pending_on_disk=pending,
        )

    # ------------------------------------------------------------------ reporting to operators

    def summary_line(self) -> str:
        sampled = self.sampler.stats.sampled if self.sampler else 0
        uploaded = self.uploader.stats.uploaded if self.uploader else 0
        pending = self.outbox.stats.pending if self.outbox else 0
        state = "registered" if self.registered else "not registered yet"
        sensors = len(self.sampler.sensors) if self.sampler else 0
        line = f"{state}; {sensors} sensors; sampled {sampled}, uploaded {uploaded}, pending {pending}"
        problems = [
            self.disk_guard.problem() if self.disk_guard else None,
            self.registry_saver.problem() if self.registry_saver else None,
        ]
        return "; ".join([line, *(problem for problem in problems if problem)])

    def _status(self, text: str) -> None:
        if self.hooks.on_status:
            self.hooks.on_status(text)

    def _notify_ready(self) -> None:
        if self.hooks.on_ready:
            self.hooks.on_ready()
        self._status(self.summary_line())


def run_daemon(inventory: Inventory, inventory_path: str | None) -> int:
    """Run the daemon in this process until SIGTERM/SIGINT (exit 0); SIGHUP reloads the inventory.

    Under systemd it says READY=1 once sampling runs, keeps STATUS= current, feeds the watchdog from the
    event loop and says STOPPING=1 on the way out.
    """
    import signal

    from gatewayd.runtime import heap
    from gatewayd.runtime.notify import Notifier

    notifier = Notifier()
    hooks = Hooks(
        on_ready=lambda: notifier.ready("sampling; registering on Thing+"),
        on_status=notifier.status,
        on_stopping=notifier.stopping,
        on_settled=heap.settle,
    )

    async def main() -> None:
        # Made on the running loop: before 3.10 an asyncio.Event binds to the loop current at its creation.
        nonlocal inventory
        daemon = Daemon(inventory, inventory_path=inventory_path, hooks=hooks)
        del inventory  # the daemon drops its sensor configs once they run and are registered: don't pin them
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, daemon.stop)
        loop.add_signal_handler(signal.SIGINT, daemon.stop)
        loop.add_signal_handler(signal.SIGHUP, daemon.reload)
        watchdog = asyncio.create_task(notifier.watchdog(), name="watchdog")
        try:
            await daemon.run()
        finally:
            watchdog.cancel()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            notifier.close()

    eventloop.run(main())
    return 0
