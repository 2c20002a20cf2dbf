"""The inventory in force: applied to the sensors and the pollers, re-read on SIGHUP, and settled once
the gateway is registered.

Why a reload is checked twice: a new inventory is parsed (in a thread: 10,000 sensors take seconds)
and, once the Thing+ gateway model is known, checked against it; an invalid one is refused and the old
one keeps running. Before the first registration the model is not known yet: the registration
controller checks that reload later and may put back the first inventory (:meth:`revert_to`).
Sections that only a restart can change (gateway, thingplus, state_dir, http, outbox) are kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from gatewayd.errors import ConfigError
from gatewayd.inventory.config import Inventory, load_inventory
from gatewayd.runtime.sensors import Sensors
from gatewayd.runtime.supervisor import Supervisor

if TYPE_CHECKING:
    from gatewayd.runtime.polling import Polling
    from gatewayd.runtime.registrar import GatewayModel

log = structlog.get_logger(__name__)

#: Sections a reload cannot change: they stay as the daemon started with them.
RESTART_ONLY = ("gateway", "thingplus", "state_dir", "http", "outbox")


class InventoryControl:
    """Holds the inventory in force and applies a new one to the sensors and the pollers."""

    def __init__(
        self, supervisor: Supervisor, inventory: Inventory, path: str | None, sensors: Sensors
    ) -> None:
        self.supervisor = supervisor
        self.current = inventory
        self.path = path
        self.sensors = sensors
        #: The inventory the daemon started with, until registration proves it fits the gateway model.
        self.first: Inventory | None = inventory
        self._polling: Polling | None = None
        sensors.set_poll_intervals(inventory)

    def poll_with(self, polling: Polling) -> None:
        """The pollers of the inventory in force, and of every inventory applied from now on."""
        self._polling = polling
        polling.apply(self.current)

    async def apply(self, new: Inventory) -> None:
        """``new`` in force: sensors added, replaced or removed, pollers rebuilt if their sections changed."""
        self.sensors.set_poll_intervals(new)
        await self.sensors.apply(new)
        if self._polling is not None and (new.rcms, new.loctube) != (self.current.rcms, self.current.loctube):
            self._polling.apply(new)
        self.current = new

    def registered(self) -> None:
        """The gateway model is known: reloads are checked against it up front from now on."""
        self.first = None

    async def reload(self, model: Callable[[], GatewayModel | None]) -> set[tuple[str, str]] | None:
        """Re-read the inventory file; the (device, sensor) pairs it adds, or None when refused."""
        from gatewayd.runtime.registrar import check_types

        if not self.path:
            log.warning("reload.no_file", effect="the inventory has no file to re-read")
            return None
        path = self.path
        known = model()

        def parse() -> Inventory:
            inventory = load_inventory(path)
            if known is not None:
                check_types(inventory, known, path)
            return inventory

        try:
            new = await asyncio.to_thread(parse)
            now = model()
            if now is not None and now is not known:
                # Registered while the thread parsed: check the types now, as a reload after it would.
                check_types(new, now, path)
        except ConfigError as exc:
            log.error(
                "reload.refused",
                effect="the new inventory is invalid; the old one keeps running",
                problems=[str(p) for p in exc.problems],
            )
            return None
        needs_restart = [key for key in RESTART_ONLY if getattr(new, key) != getattr(self.current, key)]
        if needs_restart:
            log.warning("reload.needs_restart", sections=needs_restart)
            new = new.model_copy(update={key: getattr(self.current, key) for key in needs_restart})
        before = {(r.device, r.name) for r in self.sensors.running}
        after = {(d.name, s.name) for d, s in new.sensors()}
        await self.apply(new)
        log.info(
            "reload.applied",
            added=sorted("/".join(k) for k in after - before),
            removed=sorted("/".join(k) for k in before - after),
            sensors=len(after),
        )
        return after - before

    def settle(self) -> None:
        """Registered and running: each runtime holds what its sensor needs (a reload compares config
        fingerprints), so of the inventory only the other sections are kept. A reload that adds sensors
        keeps the new inventory whole until those are registered. Then the hooks hear that the
        long-lived state is built, once the sources a reload let go of are closed (not before: the
        daemon process freezes what is alive then, and a source still referenced would stay). While
        sensors wait for their ids to be saved, the inventory stays whole: they start from it."""
        if self.sensors.saver.waiting:
            return
        self.current = self.current.without_devices()
        hook = self.supervisor.hooks.on_settled
        if hook is not None:
            self.supervisor.spawn(self._settled(hook), "settled")

    async def _settled(self, hook: Callable[[], object]) -> None:
        await self.sensors.closed()
        hook()
