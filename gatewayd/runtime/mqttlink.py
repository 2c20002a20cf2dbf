"""The Thing+ MQTT transport wired into the daemon: session, discovery, reporting, commands, actuators.

Why one module: with ``thingplus.transport: mqtt`` the network side differs from HTTPS in four places
and this is where they meet: registration runs the discovery strategy (gatewayd.runtime.discovery)
instead of the HTTPS one, reporting sends through the MQTT uploader (gatewayd.runtime.mqttuploader)
instead of the HTTPS client, requests from the cloud go to the command handler
(gatewayd.commands.handler) and its answers back, and the reportInterval is the inventory's until the
cloud sets another (gatewayd.runtime.reportinterval). The session closes after reporting's last drain.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import structlog

from gatewayd import __version__
from gatewayd.actuators.actuatorset import ActuatorSet
from gatewayd.actuators.runner import Actuator
from gatewayd.clouds.discovery import DiscoveryClient
from gatewayd.clouds.mqttpayloads import response_topic
from gatewayd.clouds.mqttsession import RECONNECT_POLICY, MqttSession
from gatewayd.clouds.retry import RetryPolicy
from gatewayd.commands.handler import RESTART_EXIT_STATUS, CommandHandler
from gatewayd.errors import CloudError
from gatewayd.runtime.discovery import discover
from gatewayd.runtime.mqttuploader import MqttUploader
from gatewayd.runtime.registration import Registration
from gatewayd.runtime.reporting import Reporting
from gatewayd.runtime.reportinterval import ReportIntervalStore

if TYPE_CHECKING:
    import aiohttp

    from gatewayd.runtime.gateway import Gateway

log = structlog.get_logger(__name__)

#: The id of a request that is not JSON, when one can still be read (to answer its parse error).
_ID = re.compile(rb'"id"\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+)')


class MqttLink:
    """The MQTT side of one daemon; a supervisor part so the session closes after the last drain."""

    def __init__(
        self,
        daemon: Gateway,
        session: aiohttp.ClientSession,
        *,
        on_cycle: Callable[[], object],
        reconnect: RetryPolicy | None = None,
    ) -> None:
        inventory = daemon.inventories.current
        config = inventory.thingplus
        assert config.mqtt is not None and config.gateway_id is not None  # the inventory requires them
        self.daemon = daemon
        self.config = config
        self.gateway_id = config.gateway_id
        sup = daemon.supervisor
        sup.add(self)  # before reporting: closed after it (parts close in reverse)
        self.store = ReportIntervalStore(daemon.state_dir, round(config.mqtt.report_interval * 1000))
        self.actuators = ActuatorSet.build(
            inventory.devices, pool=daemon.sensors.sources.modbus_pool(), session=lambda: session
        )
        self.handler = CommandHandler(
            actuators=self._actuators_by_id,
            set_report_interval=self.set_report_interval,
            request_restart=daemon.on_restart or functools.partial(sup.stop, RESTART_EXIT_STATUS),
            version=__version__,
            settings=config.commands,
        )
        self.unreadable = 0
        self.mqtt = MqttSession(
            config,
            keepalive_s=self._keepalive_s,
            on_request=self._on_request,
            policy=reconnect or RECONNECT_POLICY,
        )
        self.uploader = MqttUploader(
            self.mqtt, daemon.storage.outbox, daemon.registry.cloud_ids, extra=self._actuator_statuses
        )
        self.reporting = Reporting(
            sup,
            None,
            daemon.storage.outbox,
            daemon.sensors.statuses,
            gateway_id=self.gateway_id,
            gateway_watch=None,
            on_cycle=on_cycle,
            mono=daemon.mono,
            transport=self.uploader,
            connection=self.connection,
        )
        self.reporting.report_interval_ms = self.store.load()
        client = DiscoveryClient(session, config, policy=daemon.call_policy, observer=daemon.requests)
        self.registration = Registration(
            sup,
            None,
            daemon.registry,
            daemon.sensors,
            daemon.inventories,
            self.reporting,
            None,
            policy=daemon.connect_policy,
            strategy=functools.partial(self._discover, client),
        )
        #: Waits for the session after a churn's offline spell, to resume reporting (see come_back).
        self._back: asyncio.Task[None] | None = None
        self.mqtt.start()

    async def _discover(self, client: DiscoveryClient, *args: Any, **kw: Any) -> Any:
        return await discover(client, *args, report_interval_ms=self.reporting.report_interval_ms, **kw)

    # ------------------------------------------------------------------ off the network and back (fleets)

    def go_offline(self) -> None:
        """Off the network (a fleet's churn): reporting pauses and the session closes (the broker and
        the platform see the connection go); sampling goes on, the points wait in the outbox."""
        if self._back is not None:
            self._back.cancel()
            self._back = None
        self.reporting.pause()
        self.mqtt.suspend()

    def come_back(self, resume_reporting: Callable[[], object]) -> None:
        """Back on the network: the session reconnects, and ``resume_reporting`` runs once it is up, so
        the backlog goes out over a connection instead of failing against none."""
        self.mqtt.resume()
        self._back = self.daemon.supervisor.spawn(self._when_up(resume_reporting), "mqtt back online")

    async def _when_up(self, resume_reporting: Callable[[], object]) -> None:
        while not await self.mqtt.wait_connected(60.0):
            log.info("mqtt.still_connecting", gateway_id=self.gateway_id, state=self.mqtt.stats.state)
        self._back = None
        resume_reporting()

    # ------------------------------------------------------------------ what the handler acts on

    def set_report_interval(self, ms: int) -> None:
        """setProperty: applied at once (the next report counts from the last) and kept for restarts."""
        self.store.save(ms)
        self.reporting.set_report_interval(ms)

    def _keepalive_s(self) -> float:
        """The inventory's keepalive, else 2 x reportInterval (the spec's advice), read at each connect."""
        assert self.config.mqtt is not None
        return self.config.mqtt.keepalive or 2 * self.reporting.report_interval_ms / 1000

    def _actuators_by_id(self) -> Mapping[str, Actuator]:
        registry = self.daemon.registry
        found = {}
        for actuator in self.actuators:
            cloud_id = registry.actuator_id(actuator.device, actuator.name)
            if cloud_id is not None and registry.actuator_registered(actuator.device, actuator.name):
                found[cloud_id] = actuator
        return found

    def _actuator_statuses(self) -> Iterable[tuple[str, str]]:
        """Each registered actuator's sensor-like status, for the gateway status message."""
        by_key = {(a.device, a.name): cloud_id for cloud_id, a in self._actuators_by_id().items()}
        return [
            (by_key[(r.device, r.name)], r.status)
            for r in self.actuators.statuses()
            if (r.device, r.name) in by_key
        ]

    # ------------------------------------------------------------------ requests from the cloud

    async def _on_request(self, payload: bytes) -> None:
        """One ``req`` message: answered on ``res``; whatever it holds, the session goes on."""
        response = await self.handler.handle(payload)
        if response is not None and response.get("id") is None and _not_json(payload):
            found = _ID.search(payload)
            if found is None:
                self.unreadable += 1
                log.warning(
                    "mqtt.request_unreadable", size=len(payload), head=payload[:80].decode("utf-8", "replace")
                )
                return
            response = {**response, "id": json.loads(found.group(1))}
        if response is None:
            return
        try:
            await self.mqtt.publish(response_topic(self.gateway_id), json.dumps(response).encode("utf-8"))
        except CloudError as exc:
            log.warning("mqtt.response_not_sent", id=response.get("id"), error=exc.message)

    def connection(self) -> Mapping[str, Any]:
        return {**self.mqtt.connection(), "unreadable_requests": self.unreadable}

    # ------------------------------------------------------------------ the two-phase stop

    async def stop_intake(self) -> None:
        """Commands keep being answered until the session closes."""

    async def drain(self, deadline: float) -> None:
        """Reporting's drain publishes through the session; nothing of its own."""

    async def close(self) -> None:
        if self._back is not None:  # a churn round ended by the stop: nothing to resume
            self._back.cancel()
        await self.mqtt.close()
        for actuator in self.actuators:
            await actuator.close()


def _not_json(payload: bytes) -> bool:
    try:
        json.loads(payload)
    except ValueError:
        return True
    return False
