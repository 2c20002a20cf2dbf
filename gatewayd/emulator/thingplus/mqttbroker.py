"""The emulated Thing+'s MQTT broker: amqtt in the same process, its checks those of :class:`MqttSide`.

amqtt (the maintained asyncio MQTT 3.1.1 broker) does the protocol; one plugin of ours
(:class:`ThingPlusChecks`) answers its authentication and topic-filter calls from the emulator's state
and hands it every accepted message. The listening socket is our own (amqtt's ``external`` listener), so
port 0 gives a free port whose number we know without reading amqtt's internals.

amqtt's releases that run on Python 3.9 cannot be installed beside gatewayd (pyproject.toml says why),
so this module is imported only when the MQTT side is switched on
(:func:`gatewayd.emulator.app.mqtt_available` tells whether it can be).

What amqtt does with a refusal: a bad CONNECT gets CONNACK "bad user name or password" and the socket
closes; a refused SUBSCRIBE gets the failure code 0x80 in its SUBACK; a refused PUBLISH is acknowledged
(QoS 1) and dropped, as MQTT 3.1.1 allows no other answer.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import structlog
from amqtt.adapters import StreamReaderAdapter, StreamWriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import ApplicationMessage, Session

from gatewayd.emulator.thingplus.mqttpayloads import BadPayload
from gatewayd.emulator.thingplus.mqttside import MqttSide, gateway_of

log = structlog.get_logger(__name__)

_LISTENER = "default"  # amqtt requires a listener of this name
_QOS_1 = 0x01


class ThingPlusChecks(BaseAuthPlugin, BaseTopicPlugin):
    """amqtt plugin: CONNECT and topic checks from :class:`MqttSide`, accepted messages recorded there."""

    @dataclass
    class Config:
        side: Any = None

    @property
    def side(self) -> MqttSide:
        side = self.context.config.side
        assert isinstance(side, MqttSide)
        return side

    async def authenticate(self, *, session: Session) -> bool | None:
        will = session.will_topic if session.will_flag else None
        return self.side.authenticate(session.client_id, session.username, session.password, will) is None

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None, action: Action | None = None
    ) -> bool | None:
        if session is None or topic is None:
            return False
        return self.side.topic_allowed(session.client_id, topic, action.value if action else "unknown")

    async def on_broker_client_connected(self, *, client_id: str, client_session: Session) -> None:
        self.side.connected(client_id)

    async def on_broker_client_disconnected(self, *, client_id: str, client_session: Session) -> None:
        self.side.disconnected(client_id)

    async def on_broker_message_broadcast(self, *, client_id: str, message: ApplicationMessage) -> None:
        packet = message.publish_packet
        if message.topic.endswith("/mqtt/status") and packet is not None and packet.retain_flag:
            return  # retained: recorded once, by on_broker_retained_message
        self.side.received(client_id, message.topic, bytes(message.data))

    async def on_broker_retained_message(self, *, client_id: str | None, retained_message: Any) -> None:
        """A retained ``mqtt/status``: the gateway's ``on``, or its last will ``err`` (which amqtt
        publishes itself when the connection drops, without a broadcast event)."""
        topic, data = retained_message.topic, bytes(retained_message.data or b"")
        gateway = gateway_of(topic)
        if gateway is None or not data or topic != f"v/a/g/{gateway}/mqtt/status":
            return
        try:
            self.side.mqtt_status(gateway, data)
        except BadPayload as exc:
            self.side.count("bad_payloads", gateway)
            log.info("emulator.thingplus.mqtt_payload_bad", gateway=gateway, topic=topic, reason=str(exc))


class MqttBroker:
    """The broker on ``host:port`` (0: a free port) for the life of ``start``/``stop``."""

    def __init__(self, side: MqttSide, host: str = "127.0.0.1", port: int = 0) -> None:
        self.side = side
        self.host = host
        self._port = port
        self._broker: Broker | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        """Start serving; the port it listens on."""
        amqtt_log = logging.getLogger("amqtt")
        if amqtt_log.level == logging.NOTSET:
            amqtt_log.setLevel(logging.WARNING)  # its INFO lines narrate every connection
        config = {
            "listeners": {_LISTENER: {"type": "external"}},
            "plugins": {f"{__name__}.ThingPlusChecks": {"side": self.side}},
        }
        broker = Broker(config)
        await broker.start()
        try:
            server = await asyncio.start_server(self._accept, self.host, self._port)
        except BaseException:
            await broker.shutdown()
            raise
        self._broker, self._server = broker, server
        port = int(server.sockets[0].getsockname()[1])
        self.side.port = port
        self.side.commands.publish = self._publish
        self.side.outage.cut = self._cut
        log.info("emulator.thingplus.mqtt_started", host=self.host, port=port)
        return port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        broker = self._broker
        if broker is None or self.side.outage.active():
            if broker is not None:
                self.side.outage.refused += 1
            writer.close()
            return
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            await broker.external_connected(
                StreamReaderAdapter(reader), StreamWriterAdapter(writer), _LISTENER
            )
        finally:
            if task is not None:
                self._connections.discard(task)
            self._writers.discard(writer)
            writer.close()

    def _cut(self) -> int:
        """Abort every open connection's socket, as a network cut would: the broker sees each one lost
        (and publishes its last will). How many were cut."""
        writers = list(self._writers)
        for writer in writers:
            writer.transport.abort()
        return len(writers)

    async def _publish(self, topic: str, data: bytes) -> None:
        if self._broker is None:
            raise RuntimeError("the MQTT broker is not running")
        await self._broker.internal_message_broadcast(topic, data, _QOS_1)

    async def stop(self) -> None:
        server, broker = self._server, self._broker
        self._server = self._broker = None
        self.side.commands.publish = None
        self.side.outage.cut = None
        if server is not None:
            server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if broker is not None:
            await broker.shutdown()
        if server is not None:
            await server.wait_closed()
        for gateway_id in list(self.side.links):
            self.side.disconnected(gateway_id)
        log.info("emulator.thingplus.mqtt_stopped", port=self.side.port)
        self.side.port = None
