"""The Thing+ MQTT session: one connection kept up (aiomqtt over paho-mqtt), QoS 1 publishes, commands in.

Why it looks like this (the spec: /shared/specs/thingplus-mqtt.md):

* **Identity.** clientId = username = the gateway id, password = the API key, clean session, MQTT 3.1.1,
  TLS by default (``thingplus.mqtt.ca_file`` or the system store).
* **Presence.** The last will is ``err`` on ``v/a/g/{gw}/mqtt/status`` (QoS 1, retained): the broker says it
  when the box vanishes. Right after connecting the session says ``on`` there (retained), and ``off``
  before a clean stop (a clean DISCONNECT drops the will).
* **Delivery.** :meth:`MqttSession.publish` returns only once the broker acknowledged the message (PUBACK);
  a connection lost meanwhile, or no PUBACK within the timeout, is a TransientError: the caller keeps its
  points (they go again, perhaps twice, never lost).
* **Reconnecting.** After a connection ends the session waits at least 10 s (the platform asks for it),
  doubling up to 5 min while it keeps failing; a refused login (bad gateway id or API key) is logged as
  such, with the keys to check, and retried at the same pace (the portal may be fixed meanwhile).
* **Commands.** ``v/a/g/{gw}/req`` is subscribed with QoS 1; each message is handed to ``on_request``
  (its own task: a slow command never holds up the session).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aiomqtt
import structlog
from aiomqtt.exceptions import MqttConnectError

from gatewayd.clouds.mqttpayloads import request_topic, will_topic
from gatewayd.clouds.retry import RetryPolicy
from gatewayd.errors import TransientError
from gatewayd.inventory.config import ThingPlusConfig

log = structlog.get_logger(__name__)

#: MQTT's keepalive is a 16-bit count of seconds (MQTT 3.1.1, 3.1.2.10): 2 x a long reportInterval is
#: capped there, or the CONNECT could not be encoded and the session would never connect.
MAX_KEEPALIVE_S = 65535

#: Reconnect: at least 10 s after a connection ends (the spec), doubling to 5 min, a little jitter up.
RECONNECT_POLICY = RetryPolicy(attempts=10**9, base=10.0, cap=300.0)
#: How long a publish waits for its PUBACK before the points are kept for the next report.
PUBLISH_TIMEOUT_S = 30.0
#: CONNACK codes of a refused login: MQTT 3.1.1 (4, 5) and as paho-mqtt 2 reports them (134, 135).
REFUSED_LOGIN = frozenset({4, 5, 134, 135})
CHECK_KEYS = "check thingplus.gateway_id and thingplus.apikey against the gateway in the Thing+ portal"


@dataclass
class SessionStats:
    state: str = "connecting"  # connecting | connected | disconnected | refused | suspended | closed
    connects: int = 0
    disconnects: int = 0
    published: int = 0
    publish_failures: int = 0
    requests: int = 0
    last_error: str | None = None


class MqttSession:
    """Keeps one connection to the broker up; publishes with QoS 1; hands requests to ``on_request``."""

    def __init__(
        self,
        config: ThingPlusConfig,
        *,
        keepalive_s: Callable[[], float],
        on_request: Callable[[bytes], Coroutine[Any, Any, None]],
        policy: RetryPolicy = RECONNECT_POLICY,
        publish_timeout_s: float = PUBLISH_TIMEOUT_S,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        if config.gateway_id is None or config.apikey is None or config.mqtt is None:
            raise ValueError("the MQTT session needs thingplus.gateway_id, apikey and mqtt")
        self.gateway_id = config.gateway_id
        self._apikey = config.apikey
        self._mqtt = config.mqtt
        self._keepalive_s = keepalive_s
        self._on_request = on_request
        self.policy = policy
        self.publish_timeout_s = publish_timeout_s
        self.mono = mono
        self.stats = SessionStats()
        self._client: aiomqtt.Client | None = None
        self._lost: asyncio.Event = asyncio.Event()
        self._up = asyncio.Event()
        self._handlers: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        #: When :meth:`suspend` closed the connection (monotonic), and the task it cancelled.
        self._suspended_at: float | None = None
        self._ending: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._client is not None

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="mqtt session")
        return self._task

    def suspend(self) -> None:
        """Off the network for a while (a fleet's churn): the connection closes and stays closed until
        :meth:`resume`. A clean DISCONNECT, so the broker sees the connection go (the platform shows the
        gateway ``off``) without the last will; publishes fail meanwhile, as with a lost connection."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()  # aiomqtt disconnects on the way out
        self._ending = task
        if self._client is not None:
            self.stats.disconnects += 1
        self._client = None
        self._lost.set()
        self._up.clear()
        self.stats.state = "suspended"
        self._suspended_at = self.mono()
        log.info("mqtt.suspended", gateway_id=self.gateway_id)

    def resume(self) -> None:
        """Back on the network: connect again, no sooner than the 10 s the platform asks for after a
        connection closed (counted from :meth:`suspend`)."""
        if self._task is not None or self._suspended_at is None:
            return
        hold = max(0.0, self._suspended_at + self.policy.base - self.mono())
        self._suspended_at = None
        self.stats.state = "connecting"
        self._task = asyncio.get_running_loop().create_task(self._run(hold), name="mqtt session")

    async def wait_connected(self, timeout_s: float) -> bool:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._up.wait(), timeout_s)
        return self._up.is_set()

    # ------------------------------------------------------------------ publishing

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish with QoS 1 and wait for the PUBACK; TransientError when it did not come."""
        client = self._client
        if client is None:
            raise self._failed(topic, "not connected to the broker")
        lost = self._lost
        sending = asyncio.ensure_future(
            client.publish(topic, payload, qos=1, retain=retain, timeout=self.publish_timeout_s)
        )
        watching = asyncio.ensure_future(lost.wait())
        try:
            done, _ = await asyncio.wait({sending, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watching.cancel()
            if not sending.done():
                sending.cancel()
        if sending not in done:
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await sending
            raise self._failed(topic, "the connection was lost before the broker acknowledged")
        try:
            sending.result()
        except aiomqtt.MqttError as exc:
            raise self._failed(topic, str(exc) or type(exc).__name__) from None
        self.stats.published += 1

    def _failed(self, topic: str, why: str) -> TransientError:
        self.stats.publish_failures += 1
        return TransientError(why, cloud="thingplus", operation=f"mqtt_publish {topic.rsplit('/', 1)[-1]}")

    # ------------------------------------------------------------------ the connection

    def _new_client(self) -> aiomqtt.Client:
        tls = ssl.create_default_context(cafile=self._mqtt.ca_file) if self._mqtt.tls else None
        return aiomqtt.Client(
            self._mqtt.host,
            self._mqtt.effective_port,
            username=self.gateway_id,
            password=self._apikey.reveal(),
            identifier=self.gateway_id,
            protocol=aiomqtt.ProtocolVersion.V311,
            clean_session=True,
            keepalive=min(MAX_KEEPALIVE_S, max(5, round(self._keepalive_s()))),
            will=aiomqtt.Will(will_topic(self.gateway_id), b"err", qos=1, retain=True),
            tls_context=tls,
            timeout=self.publish_timeout_s,
        )

    async def _run(self, hold_s: float = 0.0) -> None:
        ending, self._ending = self._ending, None
        if ending is not None:  # the suspended connection's DISCONNECT first: one client id, one link
            await asyncio.wait([ending])
        if hold_s > 0:
            await asyncio.sleep(hold_s)
        failures = 0
        while True:
            try:
                async with self._new_client() as client:
                    await client.publish(will_topic(self.gateway_id), b"on", qos=1, retain=True)
                    await client.subscribe(request_topic(self.gateway_id), qos=1)
                    self._connected(client)
                    failures = 0
                    async for message in client.messages:
                        self._dispatch(message.payload)
            # MqttError, OSError, SSLError, ValueError (a CA file gone bad, a host not found) and anything
            # else the client library raises: the session backs off and connects again, it never ends.
            except Exception as exc:
                if asyncio.current_task() is not self._task:
                    return  # suspended meanwhile (the DISCONNECT on the way out failed): stay down
                self._disconnected(exc)
            wait = max(self.policy.base, self.policy.delay(failures, 0.5 + random.random() / 2))
            failures += 1
            log.info("mqtt.reconnecting", retry_in_s=round(wait, 1), failures=failures)
            await asyncio.sleep(wait)

    def _connected(self, client: aiomqtt.Client) -> None:
        self._client = client
        self._lost = asyncio.Event()
        self._up.set()
        self.stats.state = "connected"
        self.stats.connects += 1
        self.stats.last_error = None
        log.info(
            "mqtt.connected",
            host=self._mqtt.host,
            port=self._mqtt.effective_port,
            tls=self._mqtt.tls,
            gateway_id=self.gateway_id,
        )

    def _disconnected(self, exc: BaseException) -> None:
        was_up = self._client is not None
        self._client = None
        self._lost.set()
        self._up.clear()
        refused = isinstance(exc, MqttConnectError) and _code(exc) in REFUSED_LOGIN
        self.stats.state = "refused" if refused else "disconnected"
        self.stats.last_error = f"{exc}: {CHECK_KEYS}" if refused else str(exc) or type(exc).__name__
        if was_up:
            self.stats.disconnects += 1
        if refused:
            log.error("mqtt.login_refused", error=str(exc), gateway_id=self.gateway_id, check=CHECK_KEYS)
        else:
            log.warning("mqtt.disconnected" if was_up else "mqtt.connect_failed", error=self.stats.last_error)

    def _dispatch(self, payload: Any) -> None:
        self.stats.requests += 1
        data = payload if isinstance(payload, bytes) else str(payload).encode("utf-8")
        task = asyncio.get_running_loop().create_task(self._on_request(data), name="mqtt request")
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def close(self, timeout_s: float = 3.0) -> None:
        """A clean stop: ``off`` (retained) said, the connection closed (so no will), handlers ended."""
        client = self._client
        if client is not None:
            with contextlib.suppress(TransientError, asyncio.TimeoutError):
                await asyncio.wait_for(
                    self.publish(will_topic(self.gateway_id), b"off", retain=True), timeout_s
                )
        tasks = [*self._handlers, *(t for t in (self._task, self._ending) if t is not None)]
        for task in tasks:
            task.cancel()
        pending = tasks
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)
        self._client = None
        self.stats.state = "closed"

    def connection(self) -> dict[str, Any]:
        """What ``/status`` shows of the session."""
        s = self.stats
        return {
            "state": s.state,
            "connected": self.connected,
            "broker": f"{self._mqtt.host}:{self._mqtt.effective_port}",
            "tls": self._mqtt.tls,
            "connects": s.connects,
            "disconnects": s.disconnects,
            "published": s.published,
            "publish_failures": s.publish_failures,
            "requests": s.requests,
            "last_error": s.last_error,
        }


def _code(exc: aiomqtt.MqttCodeError) -> int | None:
    rc = exc.rc
    value = getattr(rc, "value", rc)
    return value if isinstance(value, int) else None
