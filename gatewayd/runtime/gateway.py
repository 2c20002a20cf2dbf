"""One gateway's controllers, built over the parts a process shares (see ARCHITECTURE.md).

Why apart from the daemon (gatewayd.runtime.service): the supervisor, the scheduler, the HTTP session
and the outbox (the storage controller) are one per process; the registry, the sensors, the inventory,
registration, reporting and polling are one per gateway. ``gatewayd run`` builds one :class:`Gateway`;
``gatewayd fleet`` (gatewayd.fleet) builds many in one process, each with its own state directory (its
registry), over one outbox whose points are keyed by sensor ids no two gateways share.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from gatewayd.clouds.retry import RetryPolicy
from gatewayd.inventory.config import Inventory
from gatewayd.runtime.inventorycontrol import InventoryControl
from gatewayd.runtime.registration import CONNECT_POLICY
from gatewayd.runtime.registry import IdMaker, Registry, new_id
from gatewayd.runtime.registrysaver import RegistrySaver
from gatewayd.runtime.requestmetrics import RequestMetrics
from gatewayd.runtime.sensors import Sensors
from gatewayd.runtime.snapshots import (
    NO_COMMANDS,
    NOT_POLLING,
    NOT_REGISTERED,
    NOT_REPORTING,
    DaemonSnapshot,
)
from gatewayd.runtime.storage import Storage
from gatewayd.runtime.supervisor import Supervisor
from gatewayd.sources.latest import LatestState, PollStats

if TYPE_CHECKING:
    import aiohttp

    from gatewayd.clouds.thingplus import ThingPlusClient
    from gatewayd.runtime.mqttlink import MqttLink
    from gatewayd.runtime.polling import Polling
    from gatewayd.runtime.registration import Registration
    from gatewayd.runtime.reporting import Reporting


async def open_process_parts(supervisor: Supervisor, state_dir: Path, storage: Storage) -> AsyncIOScheduler:
    """What a process shares, opened in order under ``supervisor``: the state directory's lock (one
    process per state directory), the outbox (sampling may start once it is open) and the one scheduler.
    Returns the scheduler, running; all three close with the supervisor's exit stack."""
    from datetime import timezone

    from gatewayd.statelock import StateLock

    supervisor.stack.enter_context(StateLock(state_dir))
    await storage.open(supervisor)
    scheduler = AsyncIOScheduler(timezone=timezone.utc)
    scheduler.start()
    supervisor.stack.callback(scheduler.shutdown, wait=False)
    return scheduler


#: Per-call retries inside one upload/heartbeat: short, since the outbox keeps everything for later.
CALL_POLICY = RetryPolicy(attempts=2, base=0.5, cap=2.0)


class Gateway:
    """The controllers of one gateway: ``start_sampling``, then ``start_network``; ``snapshot`` shows it."""

    def __init__(
        self,
        supervisor: Supervisor,
        inventory: Inventory,
        storage: Storage,
        requests: RequestMetrics,
        *,
        state_dir: Path,
        inventory_path: str | Path | None = None,
        on_status: Callable[[], object] | None = None,
        ids: IdMaker = new_id,
        clock: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        connect_policy: RetryPolicy = CONNECT_POLICY,
        call_policy: RetryPolicy = CALL_POLICY,
    ) -> None:
        self.supervisor = supervisor
        self.storage = storage
        self.requests = requests
        self.state_dir = state_dir
        self.on_status = on_status
        self.clock = clock
        self.mono = mono
        self.connect_policy = connect_policy
        self.call_policy = call_policy
        self.registry = Registry(state_dir, ids=ids)
        self.latest = LatestState()
        self.no_polls = PollStats()
        self.saver = RegistrySaver(
            self.registry,
            storage.outbox,
            storage.disk_guard,
            on_ids_saved=self._start_saved_sensors,
            mono=mono,
        )
        self.sensors = Sensors(supervisor, self.registry, self.saver, self.latest, clock=clock, mono=mono)
        self.inventories = InventoryControl(
            supervisor, inventory, str(inventory_path) if inventory_path else None, self.sensors
        )
        # set once the network side runs
        self.reporting: Reporting | None = None
        self.registration: Registration | None = None
        self.polling: Polling | None = None
        self.mqtt: MqttLink | None = None
        #: What a ``restart`` command from the cloud does: None stops the process with the exit status
        #: systemd restarts on; a fleet member restarts its own link instead (gatewayd.fleet.member).
        self.on_restart: Callable[[], None] | None = None

    async def start_sampling(
        self,
        scheduler: AsyncIOScheduler,
        *,
        at_start: bool = True,
        job_prefix: str = "",
        clock_guard: bool = True,
    ) -> None:
        """Sampling to the shared outbox, as soon as the sensors' ids are saved (see registrysaver).
        ``job_prefix`` and ``clock_guard``: see :meth:`Sensors.start`."""
        self.sensors.start(
            scheduler,
            self.storage.buffer,
            self.storage.outbox,
            job_prefix=job_prefix,
            clock_guard=clock_guard,
        )
        await self.sensors.apply(self.inventories.current, at_start=at_start)

    def start_network(
        self,
        session: aiohttp.ClientSession,
        scheduler: AsyncIOScheduler,
        thingplus: ThingPlusClient | None,
        *,
        polling: bool = True,
        mqtt_reconnect: RetryPolicy | None = None,
    ) -> None:
        """Reporting and registration (begun at once) over the inventory's Thing+ transport — HTTPS through
        ``thingplus``, or MQTT (gatewayd.runtime.mqttlink: discovery, the MQTT session, commands) — and
        (``polling``) the pollers."""
        from gatewayd.runtime.polling import Polling

        self.sensors.use_session(session)
        if self.inventories.current.thingplus.transport == "mqtt":
            from gatewayd.runtime.mqttlink import MqttLink

            self.mqtt = MqttLink(self, session, on_cycle=self._on_cycle, reconnect=mqtt_reconnect)
            self.reporting = self.mqtt.reporting
            self.registration = self.mqtt.registration
        else:
            assert thingplus is not None, "the HTTPS transport needs its Thing+ client"
            self._start_https(thingplus)
        if polling:
            self.polling = Polling(
                self.supervisor,
                scheduler,
                session,
                self.latest,
                self.state_dir,
                observer=self.requests,
                clock=self.clock,
            )
            self.inventories.poll_with(self.polling)
        assert self.registration is not None
        self.registration.begin()

    def _start_https(self, thingplus: ThingPlusClient) -> None:
        from gatewayd.runtime.gatewaywatch import GatewayWatch
        from gatewayd.runtime.registration import Registration
        from gatewayd.runtime.reporting import Reporting

        watch = GatewayWatch(thingplus, self.registry, self._gateway_lost)
        self.reporting = Reporting(
            self.supervisor,
            thingplus,
            self.storage.outbox,
            self.sensors.statuses,
            gateway_id=self.registry.gateway_id(),
            gateway_watch=watch,
            on_cycle=self.on_status,
            mono=self.mono,
        )
        self.registration = Registration(
            self.supervisor,
            thingplus,
            self.registry,
            self.sensors,
            self.inventories,
            self.reporting,
            watch,
            policy=self.connect_policy,
        )

    def _on_cycle(self) -> None:
        if self.on_status is not None:
            self.on_status()

    # ------------------------------------------------------------------ wiring between controllers

    async def reload(self) -> None:
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
        if self.on_status is not None:
            self.on_status()
        if self.registration is not None:
            self.registration.register_more("register sensors whose ids were saved")

    def _gateway_lost(self) -> None:
        if self.registration is not None:
            self.registration.lost()

    # ------------------------------------------------------------------ what it shows

    @property
    def poll_stats(self) -> PollStats:
        return self.polling.stats if self.polling else self.no_polls

    def snapshot(self, *, detail: bool = False) -> DaemonSnapshot:
        """The gateway's state, read-only, with the shared storage's and request metrics' as they are."""
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
