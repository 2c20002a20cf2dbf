"""The daemon: the supervisor and its controllers, put together; :func:`run_daemon` for ``gatewayd run``.

Start-up order matters on an edge box: the outbox opens and sampling starts at once (ids are made
locally, so samples are keyed from the first second), then registration on Thing+ is retried with
backoff for as long as it takes, and only then do statuses and uploads begin, with the backlog first.
A sensor whose new id cannot be saved (a full disk) waits until it is: see gatewayd.runtime.registrysaver.

Who does what: gatewayd.runtime.supervisor (lifecycle, tasks, the two-phase stop), storage (the outbox),
sensors (the set that samples), inventorycontrol (reloads), registration, reporting (statuses and
uploads), polling (RCMS, loctube); the per-gateway ones are built by gatewayd.runtime.gateway. This module
builds them in order over the process's supervisor, outbox and session, and wires them together; what
it shows of them is a snapshot (gatewayd.runtime.snapshots).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from gatewayd import eventloop
from gatewayd.clouds.retry import RetryPolicy
from gatewayd.errors import GatewaydError
from gatewayd.inventory.config import Inventory
from gatewayd.runtime.gateway import CALL_POLICY, Gateway, open_process_parts
from gatewayd.runtime.registration import CONNECT_POLICY
from gatewayd.runtime.registrysaver import RegistrySaver
from gatewayd.runtime.requestmetrics import RequestMetrics
from gatewayd.runtime.snapshots import DaemonSnapshot, summary_line
from gatewayd.runtime.storage import Storage
from gatewayd.runtime.supervisor import Hooks, Supervisor, run_under_systemd
from gatewayd.sources.latest import PollStats
from gatewayd.statefile import StateFile

# The network side (aiohttp, the three clients, registration, uploads, polling) is imported where it is
# first used, after READY: importing the HTTP stack alone takes a few tenths of a second, and sampling
# to the outbox needs none of it.
if TYPE_CHECKING:
    import aiohttp

    from gatewayd.clouds.thingplus import ThingPlusClient
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
        self.call_policy = call_policy
        #: MQTT transport: the wait after a connection ends (None: gatewayd.clouds.mqttsession's 10 s on).
        self.mqtt_reconnect = mqtt_reconnect
        self.state_dir = inventory.state_dir
        self.supervisor = Supervisor(grace_s=grace_s, mono=mono, hooks=hooks)
        self.requests = RequestMetrics()
        #: Set once everything runs (sampling, the network side, the ops endpoints); systemd hears
        #: READY=1 earlier, as soon as sampling runs (Hooks.on_ready).
        self.ready = asyncio.Event()
        self.storage = Storage(inventory, self.state_dir, clock=clock, mono=mono)
        #: The one gateway this process is (a fleet runs many: gatewayd.fleet).
        self.gateway = Gateway(
            self.supervisor,
            inventory,
            self.storage,
            self.requests,
            state_dir=self.state_dir,
            inventory_path=inventory_path,
            on_status=self._status,
            clock=clock,
            mono=mono,
            connect_policy=connect_policy,
            call_policy=call_policy,
        )
        self.registry = self.gateway.registry
        self.latest = self.gateway.latest
        self.saver = self.gateway.saver
        self.sensors = self.gateway.sensors
        self.inventories = self.gateway.inventories

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
            scheduler = await open_process_parts(sup, self.state_dir, self.storage)
            # Sampling first: samples are kept from the first second, whatever the cloud does.
            await self.gateway.start_sampling(scheduler)
            self.storage.start(sup, scheduler)
            if sup.hooks.on_ready:
                sup.hooks.on_ready()
            self._status()
            from gatewayd.clouds.session import http_session  # the HTTP stack: after READY (see above)

            session = await sup.stack.enter_async_context(http_session())
            try:
                https = self.inventories.current.thingplus.transport == "https"
                self.gateway.start_network(
                    session,
                    scheduler,
                    self._thingplus(session) if https else None,
                    mqtt_reconnect=self.mqtt_reconnect,
                )
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
                await sup.run_until_stopped(self.gateway.reload)
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

    def _thingplus(self, session: aiohttp.ClientSession) -> ThingPlusClient:
        """The Thing+ client of the daemon's one session (its token kept in the state directory)."""
        from gatewayd.clouds.thingplus import ThingPlusClient

        return ThingPlusClient(
            session,
            self.inventories.current.thingplus,
            token_store=StateFile(self.state_dir / "thingplus-token.json"),
            policy=self.call_policy,
            observer=self.requests,
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

    def _status(self) -> None:
        self.supervisor.status(summary_line(self.snapshot()))

    # ------------------------------------------------------------------ what it shows

    # Its parts, read-only, for tests and the demo that look closer than a snapshot does.

    @property
    def reporting(self) -> Reporting | None:
        return self.gateway.reporting

    @property
    def registration(self) -> Registration | None:
        return self.gateway.registration

    @property
    def polling(self) -> Polling | None:
        return self.gateway.polling

    @property
    def mqtt(self) -> MqttLink | None:
        return self.gateway.mqtt

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
        return self.gateway.poll_stats

    def snapshot(self, *, detail: bool = False) -> DaemonSnapshot:
        """The daemon's state, read-only (a :class:`gatewayd.runtime.snapshots.StatusSource`)."""
        return self.gateway.snapshot(detail=detail)


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
