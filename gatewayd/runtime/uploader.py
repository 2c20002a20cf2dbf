"""Reporting to Thing+: status heartbeats, and the outbox drained as one array PUT per sensor and batch.

Why batches per sensor: Thing+'s series endpoint takes an array, so a sensor's backlog goes out oldest
first in bounded batches, many sensors at once under a concurrency bound. A batch leaves the outbox only
on 2xx; a permanent 4xx (the cloud will never take it) dead-letters that batch with the reason, except
a 400, which is about some of its points: those are found by bisection (:mod:`gatewayd.outbox.refusals`) and
only they are dead-lettered; anything transient releases it for the next pass. One slow or failing
sensor never holds up the others, and a cloud that is down ends the pass early instead of being hammered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from gatewayd.clouds.thingplus import ThingPlusClient, encode_series
from gatewayd.errors import AuthError, CloudError, PermanentError, TransientError
from gatewayd.outbox import Lease, Outbox, chunked
from gatewayd.outbox.refusals import Isolation, isolate, refusal_reason, refuses_points
from gatewayd.runtime.concurrency import bounded_map

if TYPE_CHECKING:
    from gatewayd.runtime.gatewaywatch import GatewayWatch

log = structlog.get_logger(__name__)


@dataclass
class UploadStats:
    uploaded: int = 0
    batches: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    #: Points the cloud refused for good (moved to the dead letters).
    dead_lettered: int = 0
    statuses: int = 0
    status_errors: int = 0
    last_success: float | None = None  # monotonic time of the last upload cycle that ended well
    last_progress: float | None = None  # monotonic time a batch was last acknowledged
    last_cycle_ok: bool | None = None

    def count_error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


@dataclass(frozen=True)
class DrainResult:
    sent: int
    batches: int
    failed: int
    pending: int
    cloud_down: bool
    #: Batches that were full: their sensors had more waiting (a backlog to keep draining).
    full_batches: int = 0
    #: Refused batches whose search settled some points and left others to search in another pass.
    searches_unfinished: int = 0


class Uploader:
    """Sends statuses and series for one gateway through one Thing+ client."""

    def __init__(
        self,
        client: ThingPlusClient,
        outbox: Outbox,
        *,
        gateway_id: str,
        batch_size: int = 500,
        concurrency: int = 16,
        sensors_per_pass: int = 64,
        mono: Callable[[], float] = time.monotonic,
        gateway_watch: GatewayWatch | None = None,
    ) -> None:
        self.client = client
        self.outbox = outbox
        self.gateway_id = gateway_id
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.sensors_per_pass = sensors_per_pass
        self.mono = mono
        self.stats = UploadStats()
        #: Sensor ids registered on Thing+; only those are sent (others wait in the outbox).
        self.sendable: frozenset[str] = frozenset()
        #: Set when the daemon stops: every drain, even one already running, ends by this monotonic time.
        self.stop_by: float | None = None
        #: Tells a 404 for a deleted gateway from others (gatewayd.runtime.gatewaywatch); None: every 404 is
        #: permanent.
        self.gateway_watch = gateway_watch

    def send_for(self, gateway_id: str, sensor_ids: Iterable[str]) -> None:
        """Report for ``gateway_id`` and these sensors (those registered on Thing+) from now on."""
        self.gateway_id = gateway_id
        self.sendable = frozenset(sensor_ids)

    def finish_by(self, deadline: float) -> None:
        """The daemon stops: every drain, even one already running, ends by ``deadline`` (monotonic)."""
        self.stop_by = deadline

    # ------------------------------------------------------------------ statuses

    async def send_statuses(self, statuses: Iterable[tuple[str, str]], valid_duration_s: int) -> bool:
        """The gateway's status, then each (sensor id, value) status; False when the cloud failed us."""
        try:
            await self.client.gateway_status(self.gateway_id, "on", valid_duration_s)
        except CloudError as exc:
            self._status_failed(exc, "gateway")
            if self.gateway_watch is not None:
                await self.gateway_watch.keeps_data(exc)  # a 404 here may be the gateway deleted
            return False
        self.stats.statuses += 1

        async def one(status: tuple[str, str]) -> bool:
            sensor_id, value = status
            if self.stop_by is not None:  # stopping: the grace period is for data, not heartbeats
                return False
            try:
                await self.client.sensor_status(self.gateway_id, sensor_id, value, valid_duration_s)
            except CloudError as exc:
                self._status_failed(exc, sensor_id)
                return False
            self.stats.statuses += 1
            return True

        sendable = (s for s in statuses if s[0] in self.sendable)
        return all(await bounded_map(one, sendable, self.concurrency))

    def _status_failed(self, exc: CloudError, what: str) -> None:
        self.stats.status_errors += 1
        self.stats.count_error(exc.kind)
        log.warning(
            "upload.status_not_sent", target=what, error=exc.message, code=exc.code, status=exc.status
        )

    # ------------------------------------------------------------------ series

    async def drain(self, *, deadline: float | None = None) -> DrainResult:
        """Send pending points: one pass over every sensor, then more passes while a backlog remains
        (some sensor had a full batch), until the cloud fails or ``deadline`` (monotonic) passes.

        A normal cycle is one pass: samples read while it runs wait for the next cycle, rather than
        going out in a flurry of tiny batches. With a ``deadline`` (the last drain before stopping)
        passes go on while anything is sent, so what was read before the stop gets its chance.
        """
        sent = batches = failed = 0
        cloud_down = False
        while not cloud_down:
            if self._past(deadline):
                break
            ready = [s for s in self.outbox.sensors_with_pending() if s in self.sendable]
            if not ready:
                break
            progressed = backlog = False
            for chunk in chunked(ready, self.sensors_per_pass):
                result = await self._pass(chunk, deadline)
                sent += result.sent
                batches += result.batches
                failed += result.failed
                # A search that dead-lettered some points of a refused batch and left the rest is
                # progress too: the next pass goes on with it, so good points behind many bad ones (a
                # backlog older than the platform keeps) are not held for a report interval per search.
                progressed = progressed or result.sent > 0 or result.searches_unfinished > 0
                backlog = backlog or result.full_batches > 0 or result.searches_unfinished > 0
                if result.cloud_down:
                    cloud_down = True
                    break
            if not progressed or not (backlog or deadline is not None):
                break
        ok = not cloud_down and failed == 0
        self.stats.last_cycle_ok = ok
        if ok:
            self.stats.last_success = self.mono()
        pending = self.outbox.stats.pending
        if sent:
            log.debug("upload.cycle_done", sent=sent, batches=batches, failed=failed, pending=pending)
        return DrainResult(sent, batches, failed, pending, cloud_down, 0)

    def _past(self, deadline: float | None) -> bool:
        """Past the drain's deadline, or past ``stop_by`` when the daemon began stopping meanwhile."""
        now = self.mono()
        return (deadline is not None and now >= deadline) or (
            self.stop_by is not None and now >= self.stop_by
        )

    async def _pass(self, sensor_ids: Sequence[str], deadline: float | None) -> DrainResult:
        leases = await self.outbox.lease_many(sensor_ids, self.batch_size)
        acked: list[Lease] = []
        settled: set[int] = set()  # id() of the leases acked, released or dead-lettered
        took: set[int] = set()  # id() of the leases the cloud took (in part, after a refusal)
        failed = 0
        searches_unfinished = 0
        cloud_down = False

        async def release(lease: Lease) -> None:
            settled.add(id(lease))
            await self.outbox.release(lease)

        async def send(lease: Lease) -> None:
            nonlocal failed, cloud_down, searches_unfinished
            if cloud_down or self._past(deadline):
                await release(lease)
                return
            try:
                await self._send(lease)
            except CloudError as exc:
                failed += 1
                if self.gateway_watch is not None and await self.gateway_watch.keeps_data(exc):
                    cloud_down = True  # the gateway is gone: these points wait for it to be back
                    await release(lease)
                    return
                if refuses_points(exc) and len(lease) > 1:
                    found = await self._isolate(lease, exc, acked, deadline)
                    settled.add(id(lease))
                    if found.delivered:
                        took.add(id(lease))
                    if found.kept and found.refused and found.error is None:
                        searches_unfinished += 1
                    if isinstance(found.error, (TransientError, AuthError)):
                        cloud_down = True
                    return
                if isinstance(exc, PermanentError):
                    settled.add(id(lease))  # dead_letter un-leases it even when it fails
                    await self.outbox.dead_letter(lease, refusal_reason(exc))
                    self.stats.dead_lettered += len(lease)
                    log.warning(
                        "upload.batch_dead_lettered",
                        sensor=lease.sensor_id,
                        points=len(lease),
                        reason=refusal_reason(exc)[:200],
                    )
                    return
                if isinstance(exc, (TransientError, AuthError)):
                    cloud_down = True
                    log.warning(
                        "upload.failed",
                        effect="points kept for the next cycle",
                        sensor=lease.sensor_id,
                        **exc.log_fields(),
                    )
                # else tampered or otherwise unclassified: keep the data
                await release(lease)
                return
            settled.add(id(lease))
            took.add(id(lease))
            acked.append(lease)

        # Workers pulling from the list, not a task per lease (a third of the cost per batch). Whatever
        # goes wrong (a storage error, a bug), no lease is left out: the rest go back to pending, and
        # what the cloud took is acknowledged (and counted).
        sent = 0
        try:
            await bounded_map(send, leases, self.concurrency)
        finally:
            for lease in leases:
                if id(lease) not in settled:
                    await release(lease)
            if acked:
                await self.outbox.ack_many(acked)
                sent = sum(len(lease) for lease in acked)
                self.stats.uploaded += sent
                self.stats.batches += len(acked)
                self.stats.last_progress = self.mono()
        return DrainResult(
            sent=sent,
            batches=len(acked),
            failed=failed,
            pending=0,
            cloud_down=cloud_down,
            full_batches=sum(1 for lease in leases if len(lease) >= self.batch_size and id(lease) in took),
            searches_unfinished=searches_unfinished,
        )

    async def _send(self, lease: Lease) -> None:
        """One series PUT of a lease (or a part of one); a failed call is counted by its kind."""
        try:
            body = encode_series(lease.times, lease.values)
            await self.client.series_encoded(self.gateway_id, lease.sensor_id, body)
        except CloudError as exc:
            self.stats.count_error(exc.kind)
            raise

    async def _isolate(
        self, lease: Lease, refusal: CloudError, acked: list[Lease], deadline: float | None
    ) -> Isolation:
        """Find and dead-letter the points a 400 refused; the parts taken join ``acked``, the parts left
        unresolved (the cloud failed otherwise meanwhile, or time is up) go back to pending.

        The sensor stays leased until every part is settled: the delivered parts are acknowledged with
        the pass (which un-leases it), else the last dead letter or release does.
        """
        found = await isolate(lease, refusal, self._send, stop=lambda: self._past(deadline))
        acked.extend(found.delivered)  # first: acknowledged even if a dead letter below fails
        last = len(found.refused) - 1
        for i, (part, error) in enumerate(found.refused):
            unlease = i == last and not found.delivered and not found.kept
            await self.outbox.dead_letter(part, refusal_reason(error), unlease=unlease)
        for i, part in enumerate(found.kept):
            # The delivered parts are acknowledged with the pass, which un-leases the sensor then.
            await self.outbox.release(part, unlease=i == len(found.kept) - 1 and not found.delivered)
        refused = sum(len(part) for part, _ in found.refused)
        self.stats.dead_lettered += refused
        log.warning(
            "upload.refused_batch_split",
            sensor=lease.sensor_id,
            points=len(lease),
            delivered=sum(len(part) for part in found.delivered),
            dead_lettered=refused,
            kept=sum(len(part) for part in found.kept),
            requests=1 + found.requests,
            reason=refusal_reason(refusal)[:200],
        )
        return found
