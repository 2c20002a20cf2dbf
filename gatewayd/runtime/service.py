"""The daemon: the supervisor and its controllers, put together; :func:`run_daemon` for ``gatewayd run``.

Start-up order matters on an edge box: the outbox opens and sampling starts at once (ids are made
locally, so samples are keyed from the first second), then registration on Thing+ is retried with
backoff for as long as it takes, and only then do statuses and uploads begin, with the backlog first.
A sensor whose new id cannot be saved (a full disk) waits until it is: see gatewayd.runtime.registrysaver.

Who does what: gatewayd.runtime.supervisor (lifecycle, tasks, the two-phase stop), storage (the outbox),
sensors (the set that samples), inventorycontrol (reloads), registration, reporting (statuses and
uploads), polling (RCMS, loctube). This module only builds them in order and wires them together; what
it shows of them is a snapshot (gatewayd.runtime.snapshots).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timezone
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from gatewayd import eventloop
from gatewayd.clouds.retry import RetryPolicy
from gatewayd.errors import GatewaydError
from gatewayd.inventory.config import Inventory
from gatewayd.runtime.inventorycontrol import InventoryControl
from gatewayd.runtime.registration import CONNECT_POLICY
from gatewayd.runtime.registry import Registry
from gatewayd.runtime.registrysaver import RegistrySaver
from gatewayd.runtime.requestmetrics import RequestMetrics
from gatewayd.runtime.sensors import Sensors
from gatewayd.runtime.snapshots import (
    NO_COMMANDS,
    NOT_POLLING,
    NOT_REGISTERED,
    NOT_REPORTING,
    DaemonSnapshot,
    summary_line,
)
from gatewayd.runtime.storage import Storage
from gatewayd.runtime.supervisor import Hooks, Supervisor, run_under_systemd
from gatewayd.sources.latest import LatestState, PollStats
from gatewayd.statefile import StateFile
from gatewayd.statelock import StateLock

# The network side (aiohttp, the three clients, registration, uploads, polling) is imported where it is
# first used, after READY: importing the HTTP stack alone takes a few tenths of a second, and sampling
# to the outbox needs none of it.
if TYPE_CHECKING:
    import aiohttp

    from gatewayd.outbox import Outbox
    from gatewayd.runtime.diskguard import DiskGuard
    from gatewayd.runtime.mqttlink import MqttLink
    from gatewayd.runtime.polling import Polling
    from gatewayd.runtime.registrar import Registered
    from gatewayd.runtime.registration import Registration
    from gatewayd.runtime.reporting import Reporting, ReportingTransport
    from gatewayd.runtime.sampler import SampleBuffer, Sampler

__all__ = ["CALL_POLICY", "CONNECT_POLICY", "Daemon", "Hooks", "run_daemon"]

log = structlog.get_logger(__name__)

#: Per-call retries inside one upload/heartbeat: short, since the outbox keeps everything for later.
CALL_POLICY = RetryPolicy(attempts=2, base=0.5, cap=2.0)


class Daemon:
    """``await Daemon(inventory).run()`` runs until :meth:`stop`; :meth:`reload` re-reads the inventory;
    :meth:`snapshot` shows its state."""

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
        mqtt_reconnect: RetryPolicy | None = None,
    ) -> None:
        self.clock = clock
        self.mono = mono
        self.connect_policy = connect_policy
        self.call_policy = call_policy
        #: MQTT transport: the wait after a connection ends (None: gatewayd.clouds.mqttsession's 10 s on).
        self.mqtt_reconnect = mqtt_reconnect
        self.state_dir = inventory.state_dir
        self.supervisor = Supervisor(grace_s=grace_s, mono=mono, hooks=hooks)
        self.registry = Registry(self.state_dir)
        self.latest = LatestState()
        self.requests = RequestMetrics()
        self._no_polls = PollStats()
        #: Set once everything runs (sampling, the network side, the ops endpoints); systemd hears
        #: READY=1 earlier, as soon as sampling runs (Hooks.on_ready).
        self.ready = asyncio.Event()
        self.storage = Storage(inventory, self.state_dir, clock=clock, mono=mono)
        self.saver = RegistrySaver(
            self.registry,
            self.storage.outbox,
            self.storage.disk_guard,
            on_ids_saved=self._start_saved_sensors,
            mono=mono,
        )
        self.sensors = Sensors(
            self.supervisor, self.registry, self.saver, self.latest, clock=clock, mono=mono
        )
        self.inventories = InventoryControl(
            self.supervisor, inventory, str(inventory_path) if inventory_path else None, self.sensors
        )
        # set once the network side runs
        self.reporting: Reporting | None = None
        self.registration: Registration | None = None
        self.polling: Polling | None = None
        self.mqtt: MqttLink | None = None

    # ------------------------------------------------------------------ control (signal handlers)

    def stop(self) -> None:
        self.supervisor.stop()

    def reload(self) -> None:
        self.supervisor.reload()

    # ------------------------------------------------------------------ main

    async def run(self) -> None:
        """Run until stopped. Raises ConfigError for an inventory the cloud proves wrong (exit 2).

        A full disk does not stop it, even at start-up: samples wait in memory (see gatewayd.runtime.diskguard).
        """
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        async with self.supervisor as sup:
            sup.stack.enter_context(StateLock(self.state_dir))  # one daemon per state directory
            await self.storage.open(sup)
            # Sampling first: samples are kept from the first second, whatever the cloud does.
            scheduler = AsyncIOScheduler(timezone=timezone.utc)
            scheduler.start()
            sup.stack.callback(scheduler.shutdown, wait=False)
            self.sensors.start(scheduler, self.storage.buffer, self.storage.outbox)
            await self.sensors.apply(self.inventories.current, at_start=True)
            self.storage.start(sup, scheduler)
            if sup.hooks.on_ready:
                sup.hooks.on_ready()
            self._status()
            from gatewayd.clouds.session import http_session  # the HTTP stack: after READY (see above)

            session = await sup.stack.enter_async_context(http_session())
            try:
                self._start_network(session, scheduler)
                inventory = self.inventories.current
                if inventory.http is not None:
                    await self._start_ops(inventory.http.listen)
                self.ready.set()
                log.info(
                    "daemon.running",
                    sensors=len(self.sensors.running),
                    state_dir=str(self.state_dir),
                    pending=self.storage.outbox.stats.pending,
                    event_loop=eventloop.loop_name(asyncio.get_running_loop()),
                )
                await sup.run_until_stopped(self._reload)
            finally:
                await sup.shutdown()
                snapshot = self.snapshot()
                log.info(
                    "daemon.stopped",
                    sampled=snapshot.sensors.sampled,
                    uploaded=snapshot.reporting.uploaded,
                    pending_on_disk=snapshot.storage.pending,
                )
        self.supervisor.result()

    def _start_network(self, session: aiohttp.ClientSession, scheduler: AsyncIOScheduler) -> None:
        """Thing+ (over HTTPS or MQTT), registration, reporting and the pollers, on the daemon's one session."""
        from gatewayd.runtime.polling import Polling

        sup = self.supervisor
        self.sensors.use_session(session)
        if self.inventories.current.thingplus.transport == "mqtt":
            self._start_mqtt(session)
        else:
            self._start_https(session)
        self.polling = Polling(
            sup, scheduler, session, self.latest, self.state_dir, observer=self.requests, clock=self.clock
        )
        self.inventories.poll_with(self.polling)
        assert self.registration is not None
        self.registration.begin()

    def _start_mqtt(self, session: aiohttp.ClientSession) -> None:
        """Discovery over REST with the API key, reporting and commands over MQTT (gatewayd.runtime.mqttlink)."""
        from gatewayd.runtime.mqttlink import MqttLink

        self.mqtt = MqttLink(self, session, on_cycle=self._status, reconnect=self.mqtt_reconnect)
        self.reporting = self.mqtt.reporting
        self.registration = self.mqtt.registration

    def _start_https(self, session: aiohttp.ClientSession) -> None:
        """The Thing+ client (OAuth2), reporting and registration over HTTPS."""
        from gatewayd.clouds.thingplus import ThingPlusClient
        from gatewayd.runtime.gatewaywatch import GatewayWatch
        from gatewayd.runtime.registration import Registration
        from gatewayd.runtime.reporting import Reporting

        sup = self.supervisor
        thingplus = ThingPlusClient(
            session,
            self.inventories.current.thingplus,
            token_store=StateFile(self.state_dir / "thingplus-token.json"),
            policy=self.call_policy,
            observer=self.requests,
        )
        watch = GatewayWatch(thingplus, self.registry, self._gateway_lost)
        self.reporting = Reporting(
            sup,
            thingplus,
            self.storage.outbox,
            self.sensors.statuses,
            gateway_id=self.registry.gateway_id(),
            gateway_watch=watch,
            on_cycle=self._status,
            mono=self.mono,
        )
        self.registration = Registration(
            sup,
            thingplus,
            self.registry,
            self.sensors,
            self.inventories,
            self.reporting,
            watch,
            policy=self.connect_policy,
        )

    async def _start_ops(self, listen: str) -> None:
        from gatewayd.ops.server import OpsServer
        from gatewayd.outbox.deadletters import outbox_path

        ops = OpsServer(self.snapshot, listen, outbox_path(self.state_dir), mono=self.mono)
        try:
            await ops.start()
        except OSError as exc:
            raise GatewaydError(f"cannot serve http.listen {listen}: {exc.strerror or exc}") from exc
        self.supervisor.stack.push_async_callback(ops.stop)

    # ------------------------------------------------------------------ wiring between controllers

    async def _reload(self) -> None:
        registration = self.registration
        added = await self.inventories.reload(lambda: registration.model if registration else None)
        if added is None or registration is None or registration.registered is None:
            return
        if added:
            registration.register_more("register added sensors")
        else:
            self.inventories.settle()

    async def _start_saved_sensors(self) -> None:
        """Sensors that waited for their ids are saved now: they start, and are registered (before the
        first registration, the one under way registers them)."""
        await self.sensors.apply(self.inventories.current)
        self._status()
        if self.registration is not None:
            self.registration.register_more("register sensors whose ids were saved")

    def _gateway_lost(self) -> None:
        if self.registration is not None:
            self.registration.lost()

    def _status(self) -> None:
        self.supervisor.status(summary_line(self.snapshot()))

    # ------------------------------------------------------------------ what it shows

    # Its parts, read-only, for tests and the demo that look closer than a snapshot does.

    @property
    def registered(self) -> Registered | None:
        return self.registration.registered if self.registration else None

    @property
    def report_interval_ms(self) -> int:
        return self.snapshot().reporting.report_interval_ms

    @property
    def exit_status(self) -> int:
        return self.supervisor.exit_status

    @property
    def fatal(self) -> BaseException | None:
        return self.supervisor.fatal

    @property
    def inventory(self) -> Inventory:
        return self.inventories.current

    @property
    def sampler(self) -> Sampler | None:
        return self.sensors.sampler

    @property
    def outbox(self) -> Outbox:
        return self.storage.outbox

    @property
    def buffer(self) -> SampleBuffer:
        return self.storage.buffer

    @property
    def disk_guard(self) -> DiskGuard:
        return self.storage.disk_guard

    @property
    def registry_saver(self) -> RegistrySaver:
        return self.saver

    @property
    def uploader(self) -> ReportingTransport | None:
        return self.reporting.uploader if self.reporting else None

    @property
    def poll_stats(self) -> PollStats:
        return self.polling.stats if self.polling else self._no_polls

    def snapshot(self, *, detail: bool = False) -> DaemonSnapshot:
        """The daemon's state, read-only (a :class:`gatewayd.runtime.snapshots.StatusSource`)."""
        return DaemonSnapshot(
            sensors=self.sensors.snapshot(detail=detail),
            registration=self.registration.snapshot() if self.registration else NOT_REGISTERED,
            reporting=self.reporting.snapshot() if self.reporting else NOT_REPORTING,
            storage=self.storage.snapshot(),
            polling=self.polling.snapshot(detail=detail) if self.polling else NOT_POLLING,
            requests=self.requests.snapshot(),
            actuators=self.mqtt.actuators.statuses() if self.mqtt else (),
            commands=self.mqtt.handler.snapshot() if self.mqtt else NO_COMMANDS,
        )


def run_daemon(inventory: Inventory, inventory_path: str | None) -> int:
    """Run the daemon in this process until SIGTERM/SIGINT (exit 0); SIGHUP reloads the inventory.

    Under systemd it says READY=1 once sampling runs, keeps STATUS= current, feeds the watchdog from the
    event loop and says STOPPING=1 on the way out.
    """
    held = [inventory]
    del inventory  # the daemon drops its sensor configs once they run and are registered: don't pin them

    def make(hooks: Hooks) -> Daemon:
        return Daemon(held.pop(), inventory_path=inventory_path, hooks=hooks)

    return run_under_systemd(make)
