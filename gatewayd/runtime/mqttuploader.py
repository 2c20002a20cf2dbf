"""Reporting over MQTT: the reporting transport the ``reporting`` controller uses when transport is mqtt.

It has the HTTPS uploader's face (gatewayd.runtime.uploader: ``send_for``, ``send_statuses``, ``drain``,
``finish_by``, ``stats``), so gatewayd.runtime.reporting times both the same way; what differs is the wire:

* statuses: ONE gateway-status message with the gateway's and every registered sensor's status;
* points: the outbox leased as ever (oldest first, one lease per sensor), packed into gateway-data
  messages of bounded size (gatewayd.clouds.mqttpayloads), published with QoS 1 in order; the points of
  a message leave the outbox when its PUBACK came, and only then. A message not acknowledged ends the
  pass: it and every later one are released, and go again next time (a message acknowledged whose ack
  to the outbox was lost in a crash goes twice: at least once, as over HTTPS).

Sensors are known to the outbox by their local ids; the messages name them by their Thing+ ids (made
by discovery, gatewayd.runtime.discovery).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import structlog

from gatewayd.clouds.mqttpayloads import (
    MAX_DATA_BYTES,
    base_topic,
    data_messages,
    gateway_status,
    status_topic,
)
from gatewayd.clouds.mqttsession import MqttSession
from gatewayd.errors import CloudError
from gatewayd.outbox import Lease, Outbox, chunked
from gatewayd.runtime.uploader import DrainResult, UploadStats

log = structlog.get_logger(__name__)


class MqttUploader:
    """Statuses and points of one gateway as MQTT messages through one session."""

    name = "mqtt"

    def __init__(
        self,
        session: MqttSession,
        outbox: Outbox,
        cloud_ids: Callable[[], Mapping[str, str]],
        *,
        extra: Callable[[], Iterable[tuple[str, str]]] = tuple,
        batch_size: int = 200,
        sensors_per_pass: int = 512,
        max_bytes: int = MAX_DATA_BYTES,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.outbox = outbox
        self._cloud_ids_of = cloud_ids
        #: (Thing+ id, status) of what else the status message carries: the actuators.
        self._extra = extra
        self.gateway_id = session.gateway_id
        self.batch_size = batch_size
        self.sensors_per_pass = sensors_per_pass
        self.max_bytes = max_bytes
        self.mono = mono
        self.stats = UploadStats()
        self.sendable: frozenset[str] = frozenset()
        self.cloud_ids: Mapping[str, str] = {}
        self.stop_by: float | None = None

    def send_for(self, gateway_id: str, sensor_ids: Iterable[str]) -> None:
        """Report these registered sensors (local ids) from now on, under their Thing+ ids."""
        self.cloud_ids = dict(self._cloud_ids_of())
        self.sendable = frozenset(s for s in sensor_ids if s in self.cloud_ids)

    def finish_by(self, deadline: float) -> None:
        self.stop_by = deadline

    def connection(self) -> Mapping[str, Any]:
        return self.session.connection()

    # ------------------------------------------------------------------ statuses

    async def send_statuses(self, statuses: Iterable[tuple[str, str]], valid_duration_s: int) -> bool:
        """One gateway-status message: the gateway ``on`` and each registered sensor's status."""
        if self.stop_by is not None:
            return False
        ids = self.cloud_ids
        sensors = [(ids[sid], _status(value)) for sid, value in statuses if sid in self.sendable]
        sensors += [(cloud_id, _status(value)) for cloud_id, value in self._extra()]
        try:
            await self.session.publish(
                status_topic(self.gateway_id), gateway_status("on", valid_duration_s, sensors)
            )
        except CloudError as exc:
            self.stats.status_errors += 1
            self.stats.count_error(exc.kind)
            log.warning("upload.status_not_sent", target="gateway", transport="mqtt", error=exc.message)
            return False
        self.stats.statuses += 1 + len(sensors)
        return True

    # ------------------------------------------------------------------ points

    async def drain(self, *, deadline: float | None = None) -> DrainResult:
        """Send pending points, pass after pass while a backlog remains, until a message is not
        acknowledged or ``deadline`` (monotonic) passes."""
        sent = messages = 0
        cloud_down = False
        while not cloud_down and not self._past(deadline):
            ready = [s for s in self.outbox.sensors_with_pending() if s in self.sendable]
            if not ready:
                break
            backlog = False
            progressed = 0
            for chunk in chunked(ready, self.sensors_per_pass):
                leases = await self.outbox.lease_many(chunk, self.batch_size)
                done, count, cloud_down = await self._publish(leases, deadline)
                sent += done
                progressed += done
                messages += count
                backlog = backlog or any(len(lease) >= self.batch_size for lease in leases)
                if cloud_down or self._past(deadline):
                    break
            if not progressed or not (backlog or deadline is not None):
                break
        self.stats.last_cycle_ok = not cloud_down
        if not cloud_down:
            self.stats.last_success = self.mono()
        pending = self.outbox.stats.pending
        if sent:
            log.debug("upload.cycle_done", transport="mqtt", sent=sent, messages=messages, pending=pending)
        return DrainResult(sent, messages, int(cloud_down), pending, cloud_down, 0)

    async def _publish(self, leases: Sequence[Lease], deadline: float | None) -> tuple[int, int, bool]:
        """The leases as messages, in order; each message's parts acknowledged on its PUBACK, whatever
        was not sent released. (points sent, messages sent, whether the broker failed us)"""
        settled = 0
        sent = count = 0
        failed = False
        batches = data_messages(leases, self.cloud_ids, self.max_bytes)
        topic = base_topic(self.gateway_id)
        try:
            for message in batches:
                if self._past(deadline):
                    break
                try:
                    await self.session.publish(topic, message.payload)
                except CloudError as exc:
                    failed = True
                    self.stats.count_error(exc.kind)
                    log.warning(
                        "upload.failed",
                        effect="points kept for the next cycle",
                        transport="mqtt",
                        points=message.points,
                        error=exc.message,
                    )
                    break
                await self.outbox.ack_many(message.parts)
                settled += 1
                sent += message.points
                count += 1
                self.stats.uploaded += message.points
                self.stats.batches += 1
                self.stats.last_progress = self.mono()
        finally:
            # Every part not acknowledged goes back to pending; a sensor split across messages was
            # un-leased by the ack of its first part already.
            acked = {id(part) for message in batches[:settled] for part in message.parts}
            for message in batches[settled:]:
                for part in message.parts:
                    if id(part) not in acked:
                        await self.outbox.release(part)
        return sent, count, failed

    def _past(self, deadline: float | None) -> bool:
        now = self.mono()
        return (deadline is not None and now >= deadline) or (
            self.stop_by is not None and now >= self.stop_by
        )


def _status(value: str) -> str:
    """A sensor's status as Thing+ takes it; anything else the runtime says is an error state."""
    return value if value in ("on", "off") or value.startswith("err") else "err"
