"""The registration controller: the gateway and its sensors on Thing+, retried for as long as it takes.

Why retried without end: an edge box often boots before its uplink, and sampling does not wait (the
outbox keeps everything); registration is tried with backoff (1 s to 1 min, full jitter) until it
succeeds, then reporting starts. Sensors added meanwhile (a reload, ids saved after a full disk) are
registered by the same round before it ends. A reload done before the first registration could not be
checked against the gateway model: if registration proves it wrong, the first inventory is put back.
When Thing+ loses the gateway (gatewayd.runtime.gatewaywatch), reporting pauses and registration runs
again with the same ids.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import structlog

from gatewayd.clouds.retry import RetryPolicy
from gatewayd.errors import CloudError, ConfigError
from gatewayd.runtime.inventorycontrol import InventoryControl
from gatewayd.runtime.registry import Registry
from gatewayd.runtime.sensors import Sensors
from gatewayd.runtime.snapshots import RegistrationSnapshot
from gatewayd.runtime.supervisor import Supervisor

if TYPE_CHECKING:
    from gatewayd.clouds.thingplus import ThingPlusClient
    from gatewayd.inventory.config import Inventory
    from gatewayd.runtime.gatewaywatch import GatewayWatch
    from gatewayd.runtime.registrar import GatewayModel, Registered, SensorTriple
    from gatewayd.runtime.reporting import Reporting

    #: One registration round: (registry, inventory, source=, sensors=) -> what was registered. The
    #: HTTPS strategy is gatewayd.runtime.registrar.register; MQTT's, gatewayd.runtime.discovery.discover.
    Strategy = Callable[..., Awaitable[Registered]]

log = structlog.get_logger(__name__)

#: Backoff while Thing+ cannot be reached for registration: from 1 s up to 1 min, with full jitter (an
#: uplink that comes back is used within a minute; one attempt a minute costs nothing).
CONNECT_POLICY = RetryPolicy(attempts=1_000_000_000, base=1.0, cap=60.0)


class Registration:
    """Registers the gateway (again when needed) and starts reporting once it is."""

    def __init__(
        self,
        supervisor: Supervisor,
        client: ThingPlusClient | None,
        registry: Registry,
        sensors: Sensors,
        inventories: InventoryControl,
        reporting: Reporting,
        gateway_watch: GatewayWatch | None,
        *,
        policy: RetryPolicy = CONNECT_POLICY,
        strategy: Strategy | None = None,
    ) -> None:
        """``strategy`` replaces the HTTPS registration through ``client`` (MQTT: discovery)."""
        self.supervisor = supervisor
        self.client = client
        self.registry = registry
        self.sensors = sensors
        self.inventories = inventories
        self.reporting = reporting
        self.gateway_watch = gateway_watch
        self.policy = policy
        self.strategy = strategy
        self.registered: Registered | None = None
        #: The Thing+ gateway model, known from the first registration on (kept while the gateway is
        #: registered again after a loss): every reload is checked against it.
        self.model: GatewayModel | None = None

    def begin(self, why: str = "connect") -> None:
        """Register (retrying), then report."""
        self.supervisor.spawn(self._connect(), why)

    def register_more(self, why: str) -> None:
        """Sensors were added (a reload, ids saved): registered now if the gateway is; else the round
        under way registers them (see :meth:`_connect`)."""
        if self.registered is not None:
            self.begin(why)

    def lost(self) -> None:
        """Thing+ lost the gateway (gatewayd.runtime.gatewaywatch logged it and cleared the marks): reporting
        pauses, the points wait in the outbox, and registration runs again with the same ids."""
        self.registered = None
        self.reporting.pause()
        self.supervisor.status("Thing+ lost the gateway; registering it again")
        self.begin("re-register")

    async def _connect(self) -> None:
        retry = 0
        while not self.supervisor.stopping:
            await self.sensors.saver.gateway_saved()  # a first start on a full disk waits here
            inventory = self.inventories.current
            # Registered once, the inventory keeps no devices (settled): registering again (the
            # gateway was deleted on the cloud side) takes the sensors from their runtimes.
            running = None if inventory.devices else self.sensors.triples()
            try:
                registered = await self._round(inventory, running)
            except ConfigError as exc:
                first = self.inventories.first
                if first is not None and inventory is not first:
                    # A reload before the first registration could not check types; now that the
                    # model is known, refuse that reload as any other invalid one: back to the start.
                    log.error(
                        "reload.refused",
                        effect="the new inventory does not fit the Thing+ gateway model; the old one keeps running",
                        problems=[str(p) for p in exc.problems],
                    )
                    await self.inventories.apply(first)
                    continue
                log.error("registration.model_mismatch", problems=[str(p) for p in exc.problems])
                self.supervisor.fail(exc)
                return
            except CloudError as exc:
                wait = self.policy.delay(retry, random.random())
                retry += 1
                log.warning(
                    "registration.retrying",
                    retry_in_s=round(wait, 1),
                    **exc.log_fields(),
                )
                self.supervisor.status(f"waiting for Thing+ ({exc.kind}); sampling to the outbox")
                await asyncio.sleep(wait)
                continue
            finally:
                # The marks made: on a full disk they wait (logged, retried), a lost one costing a 409.
                await self.sensors.saver.save()
            if self.inventories.current is not inventory or self.sensors.unregistered():
                # Reloaded, or sensors started (their ids saved), while the call was in flight: register
                # them too (idempotent: what is registered already is skipped).
                continue
            self._on_registered(registered)
            return

    async def _round(self, inventory: Inventory, running: Sequence[SensorTriple] | None) -> Registered:
        from gatewayd.runtime.registrar import register

        source = self.inventories.path or "inventory"
        if self.strategy is not None:
            return await self.strategy(self.registry, inventory, source=source, sensors=running)
        assert self.client is not None, "registration needs the HTTPS client or a strategy"
        return await register(self.client, self.registry, inventory, source=source, sensors=running)

    def _on_registered(self, registered: Registered) -> None:
        self.inventories.registered()
        if self.gateway_watch is not None:
            self.gateway_watch.found()
        self.registered = registered
        self.model = registered.model
        log.info(
            "registration.completed",
            gateway_id=registered.gateway_id,
            site=registered.site_id,
            created=registered.created,
            report_interval_ms=registered.report_interval_ms,
        )
        self.reporting.start(
            registered.gateway_id, self.registry.registered_sensor_ids(), registered.report_interval_ms
        )
        self.supervisor.status("registered; reporting")
        self.inventories.settle()

    def snapshot(self) -> RegistrationSnapshot:
        registered = self.registered
        return RegistrationSnapshot(
            registered=registered is not None, gateway_id=registered.gateway_id if registered else None
        )
