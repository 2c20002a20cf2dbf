"""One gateway of a fleet: its runtime controllers (gatewayd.runtime.gateway) and what the fleet does to it.

The fleet takes a member offline and back (churn), makes some of its sensors fail for a while, and reads
its figures for the console line, /metrics, /status and the final report. The outbox is the shard's,
shared: a member's pending points are those of its own sensors (ids no other gateway has).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from types import MappingProxyType
from typing import Any

from gatewayd.fleet.figures import STATUS_OFFLINE, STATUS_UP, GatewayFigures
from gatewayd.runtime.gateway import Gateway

#: A member not registered yet (ramping up, or Thing+ unreachable).
STATUS_STARTING = "starting"
#: A restart command's answer goes out before the gateway's link does.
RESTART_DELAY_S = 1.0


class Member:
    """Gateway ``index`` of the fleet, running in this shard."""

    def __init__(
        self,
        index: int,
        gateway: Gateway,
        *,
        later: Callable[[float, Callable[[], None]], object] | None = None,
    ) -> None:
        self.index = index
        self.gateway = gateway
        #: Runs a callable after a delay (the event loop's call_later; a test runs it by hand).
        self._later = later
        self.offline = False
        #: The reads a simulated failure replaced, by sensor key, to put back.
        self._reads: dict[str, Any] = {}

    @property
    def registered(self) -> bool:
        registration = self.gateway.registration
        return registration is not None and registration.registered is not None

    @property
    def status(self) -> str:
        if self.offline:
            return STATUS_OFFLINE
        return STATUS_UP if self.registered else STATUS_STARTING

    # ------------------------------------------------------------------ churn

    def go_offline(self) -> bool:
        """Off the network: no statuses, no uploads, sampling goes on; over MQTT the session closes too
        (gatewayd.runtime.mqttlink). False when not reporting yet."""
        reporting = self.gateway.reporting
        if self.offline or reporting is None or not self.registered:
            return False
        if self.gateway.mqtt is not None:
            self.gateway.mqtt.go_offline()
        else:
            reporting.pause()
        self.offline = True
        return True

    def come_back(self) -> None:
        """Back on the network: reporting resumes, the backlog first (over MQTT once reconnected)."""
        if not self.offline:
            return
        self.offline = False
        if self.gateway.mqtt is not None:
            self.gateway.mqtt.come_back(self._resume_reporting)
        else:
            self._resume_reporting()

    def restart(self) -> None:
        """A ``restart`` command from the cloud: this gateway goes off the network and comes back (at least
        the platform's 10 s later), as a restarted application would; the rest of the shard runs on. Done a
        second later, so the command's answer is published first."""
        later = self._later or asyncio.get_running_loop().call_later
        later(RESTART_DELAY_S, self._restart_now)

    def _restart_now(self) -> None:
        if self.go_offline():
            self.come_back()

    def _resume_reporting(self) -> None:
        registration, reporting = self.gateway.registration, self.gateway.reporting
        registered = registration.registered if registration is not None else None
        if registered is None or reporting is None:
            return  # lost meanwhile: its registration starts reporting again once it is back
        reporting.start(
            registered.gateway_id,
            self.gateway.registry.registered_sensor_ids(),
            reporting.report_interval_ms,
        )

    def sensor_keys(self) -> list[str]:
        return [runtime.key for runtime in self.gateway.sensors.running]

    def fail_sensors(self, keys: Iterable[str], failed_read: Callable[[], Any]) -> None:
        """Every read of these (simulated) sensors fails until :meth:`repair_sensors`."""
        wanted = set(keys)
        for runtime in self.gateway.sensors.running:
            if runtime.key in wanted and runtime.read_now is not None and runtime.key not in self._reads:
                self._reads[runtime.key] = runtime.read_now
                runtime.read_now = failed_read

    def repair_sensors(self, keys: Iterable[str]) -> None:
        wanted = set(keys)
        for runtime in self.gateway.sensors.running:
            if runtime.key in wanted and runtime.key in self._reads:
                runtime.read_now = self._reads.pop(runtime.key)

    # ------------------------------------------------------------------ figures

    def figures(self, *, drops: bool) -> GatewayFigures:
        """The member's counts. ``drops``: the shared storage dropped points (a bound, memory full).

        The store counts pending points per sensor but drops without saying whose, so: with no drop,
        whatever was sampled and is neither delivered nor dead-lettered is pending (in the outbox, or in
        memory for the fraction of a second before its commit); after a drop, what is not in the outbox
        either counts as lost.
        """
        sensors = self.gateway.sensors
        sampler = sensors.sampler
        sampled = sampler.stats.sampled if sampler is not None else 0
        reporting = self.gateway.reporting
        stats = reporting.uploader.stats if reporting is not None else None
        delivered = stats.uploaded if stats is not None else 0
        dead = stats.dead_lettered if stats is not None else 0
        unsent = max(0, sampled - delivered - dead)
        lost = 0
        if drops:
            by_sensor = self.gateway.storage.outbox.stats.pending_by_sensor
            in_outbox = sum(by_sensor.get(runtime.sensor_id, 0) for runtime in sensors.running)
            lost = max(0, unsent - in_outbox)
        return GatewayFigures(
            registered=self.registered,
            sampled=sampled,
            delivered=delivered,
            lost=lost,
            dead_lettered=dead,
            status=self.status,
            errors_by_kind=MappingProxyType(dict(stats.errors))
            if stats is not None
            else MappingProxyType({}),
            pending=unsent - lost,
            statuses_sent=stats.statuses if stats is not None else 0,
        )

    def status_json(self) -> dict[str, Any]:
        """The member on a fleet's ``/status``."""
        registration = self.gateway.registration
        registered = registration.registered if registration is not None else None
        f = self.figures(drops=False)
        return {
            "index": self.index,
            "name": self.gateway.inventories.current.gateway.name,
            "gateway_id": self.gateway.registry.gateway_id(),
            "status": self.status,
            "registered": registered is not None,
            "sensors": len(self.gateway.sensors.running),
            "sampled": f.sampled,
            "delivered": f.delivered,
            "dead_lettered": f.dead_lettered,
            "pending": f.pending,
            "errors_by_kind": dict(f.errors_by_kind),
        }
