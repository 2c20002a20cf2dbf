"""A gateway deleted on the cloud side: told apart from other 404s, and registered again with the same ids.

Why: when someone deletes the gateway in the Thing+ portal, every status and series call answers 404.
Taken as a permanent error per call, that dead-letters every batch (or, for statuses, fails forever),
and the points are lost for nothing: registering the gateway again, with the ids the registry keeps,
makes every pending point deliverable again. A 404 alone does not say *what* is missing (a sensor, a
path), so it is confirmed by reading the gateway record: only a 404 for that proves the gateway gone.

Once per occurrence the loss is logged at error level, the registry's "registered" marks are cleared
(ids kept), and the daemon is told (it stops reporting and runs its registration again). Until the
daemon calls :meth:`GatewayWatch.found`, every further 404 is taken as the same loss, without asking
again, so the batches in flight keep their points.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from gatewayd.clouds.thingplus import ThingPlusClient
from gatewayd.errors import CloudError, StorageError
from gatewayd.runtime.registry import Registry

log = structlog.get_logger(__name__)


class GatewayWatch:
    """Asked about each failed Thing+ call; tells the daemon when the gateway itself is gone."""

    def __init__(self, client: ThingPlusClient, registry: Registry, on_lost: Callable[[], None]) -> None:
        self.client = client
        self.registry = registry
        self.on_lost = on_lost
        #: True from the confirmed loss until the gateway is registered again.
        self.lost = False
        self._lock = asyncio.Lock()

    async def keeps_data(self, error: CloudError) -> bool:
        """Whether ``error`` is (or may be) the gateway being gone, so the caller must keep its data
        instead of dead-lettering it. Only a 404 asks; the gateway record then says which it is."""
        if error.status != 404:
            return False
        if self.lost:
            return True
        async with self._lock:  # one check for the many calls failing together
            if self.lost:
                return True
            gateway_id = self.registry.gateway_id()
            try:
                await self.client.gateway(gateway_id)
            except CloudError as check:
                if check.status != 404:
                    return True  # cannot tell now: keep the data, a later pass asks again
                self._lose(gateway_id, error)
                return True
            return False  # the gateway is there: the 404 is about something else

    def found(self) -> None:
        """The gateway is registered again."""
        self.lost = False

    def _lose(self, gateway_id: str, error: CloudError) -> None:
        try:
            self.registry.forget_registration()
        except StorageError as exc:
            # Cleared in memory all the same: registering again must not wait for the disk (the next
            # flush saves the marks; a restart before that finds the loss again by the same 404s).
            log.error("registration.cleared_marks_not_saved", error=str(exc))
        self.lost = True
        log.error(
            "registration.gateway_lost",
            effect="Thing+ no longer knows this gateway (deleted on the cloud side?): registering it again with "
            "the same ids; pending points are kept and sent once it is back",
            gateway_id=gateway_id,
            operation=error.operation,
            error=error.message,
        )
        self.on_lost()
