"""What the daemon-over-MQTT tests share: the test gateway, its inventory, and the environment they run in."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatewayd.inventory.config import Inventory, parse_inventory
from tests.integration.conftest import SENSORS

#: The MQTT test gateway: its id in the portal and its API key.
MQTT_GATEWAY = "0a1b2c3d4e5f"
MQTT_APIKEY = "test-apikey-5f"
#: The integration tests' two sensors plus a simulated power switch on the same device.
MQTT_DEVICES = (
    SENSORS
    + """\
  actuators:
    - {name: Fan, type: powerSwitch, simulate: {}}
"""
)


@dataclass
class MqttEnv:
    """A broker (any that knows the gateway and the observer: mosquitto here, the emulator's later), the
    discovery REST, and a state directory."""

    broker: Any  # .port, .stop(), .start()
    rest: Any  # tests.helpers.discoveryrest.DiscoveryRest
    rest_url: str
    state_dir: Path
    tmp_path: Path

    def inventory_text(
        self, *, apikey: str = MQTT_APIKEY, devices: str = MQTT_DEVICES, extra: str = ""
    ) -> str:
        return (
            'gateway: {name: "MQTT gateway"}\n'
            f"state_dir: {self.state_dir}\n"
            f"{extra}"
            "thingplus:\n"
            f"  endpoint: {self.rest_url}\n"
            "  transport: mqtt\n"
            f"  gateway_id: {MQTT_GATEWAY}\n"
            f"  apikey: {apikey}\n"
            f"  mqtt: {{host: 127.0.0.1, port: {self.broker.port}, tls: false, report_interval: 1s}}\n"
            "devices:\n" + textwrap.indent(textwrap.dedent(devices), "  ")
        )

    def inventory(self, **kw: Any) -> Inventory:
        return parse_inventory(self.inventory_text(**kw), "<test>", env={})


class EmulatorBroker:
    """The emulator's in-process MQTT broker as :class:`MqttEnv`'s ``broker``: its port while it serves.
    An outage is the emulator's own MQTT outage knob (``tp.mqtt.outage``), not a stop of the broker."""

    def __init__(self, server: Any) -> None:  # gatewayd.emulator.EmulatorServer
        self.server = server

    @property
    def port(self) -> int:
        port = self.server.mqtt_port
        assert port is not None, "the emulator's MQTT broker is not running"
        return int(port)


def emulator_inventory(state_dir: Path, tmp_path: Path) -> Inventory:
    """The inventory the emulator is built from: the MQTT test gateway (so it knows its id and API key).
    Its endpoint and broker port are placeholders: the emulator serves, it does not connect."""
    placeholder = MqttEnv(_Placeholder(), None, "http://127.0.0.1:9", state_dir, tmp_path)
    return placeholder.inventory()


class _Placeholder:
    port = 1883
