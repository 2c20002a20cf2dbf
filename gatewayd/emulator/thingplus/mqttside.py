"""What the emulated Thing+ does with its MQTT gateways: CONNECT and topic checks, and recording.

The broker (:mod:`.mqttbroker`, a library broker in the same process) asks here whether a CONNECT is
allowed and whether a topic may be used, and hands over every message it accepted. Statuses and points
land in the same per-sensor histories the HTTPS path fills (``points``, ``gateway_statuses``,
``sensor_statuses``), so ``latest``, ``series`` and ``/_emulator/state`` read both the same way.

As the real platform does: points older than a sensor's newest are ignored (counted as
``points_out_of_order``); a payload that breaks the protocol, a sensor the gateway did not register and a
topic outside ``v/a/g/{gw}`` are dropped and counted (MQTT 3.1.1 has no per-message refusal).
Node status (:meth:`MqttSide.node_status`): ``err`` while the last will ``err`` stands, ``off`` once the
connection dropped or the gateway's status expired, else the gateway's last status.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import structlog

from gatewayd.emulator.thingplus import mqttpayloads as payloads
from gatewayd.emulator.thingplus.model import Point, StatusRecord, short
from gatewayd.emulator.thingplus.mqttgateways import MqttGateways
from gatewayd.emulator.thingplus.mqttoutage import MqttOutage
from gatewayd.emulator.thingplus.mqttpayloads import BadPayload, RawPoint, Status
from gatewayd.emulator.thingplus.mqttrpc import Commands
from gatewayd.emulator.thingplus.state import ThingPlusState

log = structlog.get_logger(__name__)

PREFIX = "v/a/g/"


def gateway_of(topic: str) -> str | None:
    """The gateway id a topic ``v/a/g/{gw}[/...]`` belongs to, or None."""
    if not topic.startswith(PREFIX):
        return None
    gateway = topic[len(PREFIX) :].split("/", 1)[0]
    return gateway or None


class Link:
    """One MQTT gateway's connection as the server sees it."""

    def __init__(self) -> None:
        self.connected = False
        #: The last ``v/a/g/{gw}/mqtt/status`` payload: ``on``, ``off`` or ``err`` (the last will).
        self.mqtt_status: str | None = None
        self.counts: Counter[str] = Counter()
        self.reasons: dict[str, str] = {}

    def view(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "mqtt_status": self.mqtt_status,
            "counts": dict(self.counts),
            "err_reasons": dict(self.reasons),
        }


class MqttSide:
    """The MQTT side of one emulated Thing+ (``state``): gateways, links, counters, commands."""

    def __init__(self, state: ThingPlusState) -> None:
        self.state = state
        self.gateways = MqttGateways(state)
        self.links: dict[str, Link] = {}
        #: Counts over every gateway: refused connects and topics, dropped messages, ignored points.
        self.counts: Counter[str] = Counter()
        self.commands = Commands(state.now_ms, self.is_connected)
        #: The broker unreachable for a while (:mod:`.mqttoutage`): the admin path's fault knob.
        self.outage = MqttOutage()
        #: The broker's TCP port while it serves (None: MQTT off).
        self.port: int | None = None
        #: The newest point time (ms) taken per sensor: an older point is out of order.
        self._newest: dict[str, int] = {}

    def link(self, gateway_id: str) -> Link:
        link = self.links.get(gateway_id)
        if link is None:
            link = self.links[gateway_id] = Link()
        return link

    def count(self, what: str, gateway_id: str | None = None, n: int = 1) -> None:
        self.counts[what] += n
        if gateway_id is not None:
            self.link(gateway_id).counts[what] += n

    def is_connected(self, gateway_id: str) -> bool:
        link = self.links.get(gateway_id)
        return link is not None and link.connected

    # -- checks the broker asks -------------------------------------------------------------------

    def authenticate(
        self, client_id: Any, username: Any, password: Any, will_topic: Any = None
    ) -> str | None:
        """None when the CONNECT may pass, else why not: clientId = username = a known gateway,
        password = its API key, and a will (if any) under its own topics."""
        reason = None
        if client_id != username:
            reason = "clientId and username differ"
        elif self.gateways.check(username, password) is None:
            reason = "unknown gateway or wrong API key"
        elif will_topic is not None and gateway_of(str(will_topic)) != username:
            reason = "last will outside the gateway's topics"
        if reason is not None:
            self.count("connects_refused")
            log.info("emulator.thingplus.mqtt_connect_refused", client_id=client_id, reason=reason)
        return reason

    def topic_allowed(self, client_id: Any, topic: str, action: str) -> bool:
        """A gateway publishes and subscribes only under ``v/a/g/{its id}``; refusals are counted."""
        if isinstance(client_id, str) and gateway_of(topic) == client_id:
            return True
        self.count(f"{action}_refused", client_id if client_id in self.links else None)
        log.info("emulator.thingplus.mqtt_topic_refused", client_id=client_id, topic=topic, action=action)
        return False

    # -- events -----------------------------------------------------------------------------------

    def connected(self, gateway_id: str) -> None:
        link = self.link(gateway_id)
        link.connected = True
        link.counts["connects"] += 1
        log.info("emulator.thingplus.mqtt_connected", gateway=gateway_id)

    def disconnected(self, gateway_id: str) -> None:
        link = self.links.get(gateway_id)
        if link is None or not link.connected:
            return
        link.connected = False
        link.counts["disconnects"] += 1
        self.commands.gateway_gone(gateway_id)
        log.info("emulator.thingplus.mqtt_disconnected", gateway=gateway_id, mqtt_status=link.mqtt_status)

    def received(self, gateway_id: str, topic: str, payload: bytes) -> None:
        """One message the broker accepted from ``gateway_id`` (its topic is the gateway's own)."""
        link = self.link(gateway_id)
        link.counts["messages"] += 1
        rest = topic[len(PREFIX) + len(gateway_id) :]
        try:
            if rest == "":
                link.counts["messages_gateway_data"] += 1
                self._points(gateway_id, payloads.gateway_data(payload))
            elif rest == "/status":
                link.counts["messages_gateway_status"] += 1
                self._gateway_status(gateway_id, *payloads.gateway_status(payload))
            elif rest == "/mqtt/status":
                self.mqtt_status(gateway_id, payload)
            elif rest == "/res":
                self.count(self.commands.answered(gateway_id, payload), gateway_id)
            elif rest.startswith("/s/") and rest.endswith("/status"):
                link.counts["messages_sensor_status"] += 1
                sid = rest[3 : -len("/status")]
                self._sensor_statuses(gateway_id, {sid: payloads.sensor_status(payload)})
            elif rest.startswith("/s/") and "/" not in rest[3:]:
                link.counts["messages_sensor_data"] += 1
                self._points(gateway_id, {rest[3:]: payloads.sensor_data(payload)})
            else:
                self.count("unknown_topics", gateway_id)
                log.info("emulator.thingplus.mqtt_topic_unknown", gateway=gateway_id, topic=topic)
        except BadPayload as exc:
            self.count("bad_payloads", gateway_id)
            log.info("emulator.thingplus.mqtt_payload_bad", gateway=gateway_id, topic=topic, reason=str(exc))

    def mqtt_status(self, gateway_id: str, payload: bytes) -> None:
        """``v/a/g/{gw}/mqtt/status``: ``on`` after connecting, ``err`` as the last will (retained)."""
        value = payloads.inflate(payload).decode("utf-8", "replace").strip()
        if value not in ("on", "off", "err"):
            raise BadPayload(f"mqtt status must be on, off or err, not {value!r}")
        self.link(gateway_id).mqtt_status = value
        log.info("emulator.thingplus.mqtt_status_changed", gateway=gateway_id, value=value)

    # -- recording --------------------------------------------------------------------------------

    def _status_record(self, status: Status, now: int) -> StatusRecord:
        expire_at = -1 if status.valid_s == -1 else now + status.valid_s * 1000
        return StatusRecord(
            received=now, value=status.value, valid_duration=status.valid_s, expire_at=expire_at
        )

    def _gateway_status(self, gateway_id: str, gateway: Status, sensors: dict[str, Status]) -> None:
        now = self.state.now_ms()
        self.state.gateway_statuses.setdefault(gateway_id, []).append(self._status_record(gateway, now))
        if gateway.reason:
            self.link(gateway_id).reasons[gateway_id] = gateway.reason
        self._sensor_statuses(gateway_id, sensors)

    def _known_sensor(self, gateway_id: str, sensor_id: str) -> dict[str, Any] | None:
        sensor = self.state.sensors.get(sensor_id)
        if sensor is None or sensor["owner"] != gateway_id:
            self.count("unknown_sensors", gateway_id)
            log.info("emulator.thingplus.mqtt_sensor_unknown", gateway=gateway_id, sensor=sensor_id)
            return None
        return sensor

    def _sensor_statuses(self, gateway_id: str, statuses: dict[str, Status]) -> None:
        now = self.state.now_ms()
        for sensor_id, status in statuses.items():
            sensor = self._known_sensor(gateway_id, sensor_id)
            if sensor is None:
                continue
            self.state.sensor_statuses.setdefault(sensor_id, []).append(self._status_record(status, now))
            sensor["status"] = f"status.sensor.{short(sensor_id)}"
            if status.reason:
                self.link(gateway_id).reasons[sensor_id] = status.reason

    def _points(self, gateway_id: str, by_sensor: dict[str, list[RawPoint]]) -> None:
        now = self.state.now_ms()
        oldest, newest = self.state.series_bounds(now)
        for sensor_id, raw in by_sensor.items():
            sensor = self._known_sensor(gateway_id, sensor_id)
            if sensor is None:
                continue
            history = self.state.points.setdefault(sensor_id, [])
            last = self._newest.get(sensor_id)
            if last is None:
                last = max((p.time for p in history), default=0)
            taken = 0
            for point in raw:
                if point.time < last:
                    self.count("points_out_of_order", gateway_id)
                elif (oldest is not None and point.time < oldest) or (
                    newest is not None and point.time > newest
                ):
                    self.count("points_out_of_range", gateway_id)
                else:
                    history.append(Point(point.time, point.value, now))
                    last = point.time
                    taken += 1
            self._newest[sensor_id] = last
            if taken:
                self.count("points", gateway_id, taken)
                self.state.points_accepted += taken
                sensor["series"] = f"series.sensor.{short(sensor_id)}"
                sensor["mtime"] = now

    # -- inspection -------------------------------------------------------------------------------

    def node_status(self, gateway_id: str) -> str:
        """The gateway's status as the server shows it (see the module's docstring)."""
        link = self.links.get(gateway_id)
        if link is None:
            return "off"
        if link.mqtt_status == "err":
            return "err"
        if not link.connected:
            return "off"
        history = self.state.gateway_statuses.get(gateway_id)
        if history:
            last = history[-1]
            if last.expire_at != -1 and self.state.now_ms() > last.expire_at:
                return "off"
            return last.value
        return "on" if link.mqtt_status == "on" else "off"

    def snapshot(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "outage": self.outage.snapshot(),
            "counts": dict(self.counts),
            "known_gateways": self.gateways.snapshot(),
            "links": {
                gid: {
                    **link.view(),
                    "node_status": self.node_status(gid),
                    "commands": self.commands.view(gid),
                }
                for gid, link in self.links.items()
            },
        }
