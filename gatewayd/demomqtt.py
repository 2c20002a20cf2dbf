"""The demo's second gateway: Thing+ over MQTT beside the HTTPS one, and commands sent to it by the portal.

Why it is in the demo: the MQTT mode is the one that links actuators and takes commands from the cloud, so
the demo shows a command going out through the emulator's broker (as the portal would send it), the
daemon acting on it and its answer coming back. The emulator's broker needs amqtt (the ``emulator-mqtt``
extra, Python >= 3.10): without it the demo runs the HTTPS gateway alone and says why in one line.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any, Optional

from gatewayd.emulator.app import mqtt_available
from gatewayd.emulator.thingplus import ThingPlusEmulator
from gatewayd.emulator.thingplus.mqttrpc import CommandTimeout, NotConnected
from gatewayd.inventory.config import Inventory

#: The MQTT gateway's inventory beside config/demo.yaml (and in the installed copy's share directory).
MQTT_DEMO_NAME = "demo-mqtt.yaml"
#: How long the demo waits for the gateway's answer to one command.
COMMAND_TIMEOUT_S = 5.0
#: The blink the demo asks of the first actuator: toggling every half second for three seconds.
BLINK_OPTIONS = {"interval": 500, "duration": 3000}


def unavailable_reason() -> str | None:
    """Why the MQTT gateway cannot run here (one line), or None when it can."""
    if mqtt_available():
        return None
    return (
        "MQTT gateway not run: the emulator's MQTT broker needs amqtt "
        "(pip install 'gatewayd[emulator-mqtt]', Python >= 3.10)"
    )


def with_broker(inventory: Inventory, host: str, port: int, report_interval_ms: int) -> Inventory:
    """An MQTT inventory pointed at the emulator's broker (plain MQTT on loopback), reporting at the demo's
    interval until a command sets another."""
    mqtt = inventory.thingplus.mqtt
    if inventory.thingplus.transport != "mqtt" or mqtt is None:
        raise ValueError("the demo's MQTT inventory must have thingplus.transport: mqtt")
    broker = mqtt.model_copy(
        update={"host": host, "port": port, "tls": False, "report_interval": report_interval_ms / 1000}
    )
    return inventory.model_copy(update={"thingplus": inventory.thingplus.model_copy(update={"mqtt": broker})})


def make_known(inventory: Inventory, thingplus: ThingPlusEmulator) -> str:
    """Make the emulated portal know the inventory's gateway and API key (as the portal would have them
    registered); returns the gateway id."""
    gateway_id, apikey = inventory.thingplus.gateway_id, inventory.thingplus.apikey
    if gateway_id is None or apikey is None:
        raise ValueError("the demo's MQTT inventory must have thingplus.gateway_id and apikey")
    thingplus.mqtt.gateways.add(gateway_id, apikey.reveal())
    return gateway_id


@dataclass
class SentCommand:
    """One command the demo sent through the emulator, and what came back."""

    method: str
    params: dict[str, Any]
    #: The gateway's JSON-RPC answer (``{"id", "result"}`` or ``{"id", "error"}``), when one came.
    answer: Optional[dict[str, Any]] = None  # noqa: UP045 - Python 3.9
    #: Why no answer came (not connected, timed out).
    failure: Optional[str] = None  # noqa: UP045
    elapsed_ms: float = 0.0

    @property
    def answered(self) -> bool:
        return self.answer is not None and "result" in self.answer

    def line(self) -> str:
        request = f"{self.method} {json.dumps(self.params, separators=(',', ':'))}"
        if self.answer is None:
            return f"{request} -> no answer ({self.failure})"
        body = {k: v for k, v in self.answer.items() if k != "id"}
        return f"{request} -> {json.dumps(body, separators=(',', ':'))} in {self.elapsed_ms:.0f} ms"


def actuator_ids(thingplus: ThingPlusEmulator, gateway_id: str) -> list[str]:
    """The gateway's actuators as the portal lists them (registered by its discovery)."""
    return [str(r["id"]) for r in thingplus.sensors.of(gateway_id) if r.get("category") == "actuator"]


def script(actuators: list[str], report_interval_ms: int, now_ms: int) -> list[tuple[str, dict[str, Any]]]:
    """The commands the demo sends, in order: blink the first actuator, halve the report interval (as a
    string, as the portal may send it), sync the time, ask the software version."""
    commands: list[tuple[str, dict[str, Any]]] = []
    if actuators:
        commands.append(("controlActuator", {"id": actuators[0], "cmd": "blink", "options": BLINK_OPTIONS}))
    commands.append(("setProperty", {"reportInterval": str(max(1000, report_interval_ms // 2))}))
    commands.append(("timeSync", {"time": now_ms}))
    commands.append(("swInfo", {}))
    return commands


def reported(thingplus: ThingPlusEmulator, gateway_id: str) -> bool:
    """Connected and its first gateway status arrived: the gateway subscribed to its commands before it
    reported (a command published before that SUBSCRIBE would reach nobody)."""
    return thingplus.mqtt.is_connected(gateway_id) and bool(thingplus.gateway_statuses.get(gateway_id))


async def send_commands(
    thingplus: ThingPlusEmulator,
    gateway_id: str,
    report_interval_ms: int,
    sent: list[SentCommand],
    *,
    poll_s: float = 0.1,
) -> None:
    """Once the gateway :func:`reported`, send :func:`script` one command at a time through the emulator's
    broker, appending each to ``sent`` once answered (or given up on)."""
    # Polled: neither the emulator nor the daemon offers an event for "reported", and this runs once.
    while not reported(thingplus, gateway_id):  # noqa: ASYNC110
        await asyncio.sleep(poll_s)
    for method, params in script(actuator_ids(thingplus, gateway_id), report_interval_ms, thingplus.now_ms()):
        command = SentCommand(method, params)
        started = time.monotonic()
        try:
            command.answer = await thingplus.mqtt.commands.call(gateway_id, method, params, COMMAND_TIMEOUT_S)
        except NotConnected:
            command.failure = "the gateway is not connected"
        except CommandTimeout:
            command.failure = f"no answer within {COMMAND_TIMEOUT_S:g} s"
        command.elapsed_ms = 1000 * (time.monotonic() - started)
        sent.append(command)
