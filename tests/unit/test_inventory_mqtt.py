"""``thingplus.transport: mqtt``: the keys each transport requires, located at the key."""

from __future__ import annotations

import pytest

from gatewayd.errors import ConfigError
from gatewayd.inventory.config import parse_inventory

HEAD = 'gateway: {name: "Edge"}\nthingplus:\n  endpoint: https://api.thingplus.net\n'
MQTT = HEAD + "  transport: mqtt\n  gateway_id: 0a1b2c\n  apikey: k3y\n"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_inventory(text, "inv.yaml")
    return [str(p) for p in info.value.problems]


def test_mqtt_inventory_needs_no_oauth_keys() -> None:
    inventory = parse_inventory(MQTT + "  mqtt: {host: broker.example}\n", "inv.yaml")
    tp = inventory.thingplus
    assert (tp.transport, tp.gateway_id, tp.client_id) == ("mqtt", "0a1b2c", None)
    assert tp.apikey is not None and tp.apikey.reveal() == "k3y" and "k3y" not in repr(tp)
    assert tp.mqtt is not None
    assert (tp.mqtt.tls, tp.mqtt.effective_port, tp.mqtt.keepalive, tp.mqtt.report_interval) == (
        True,
        8883,
        None,
        60.0,
    )


@pytest.mark.parametrize(
    ("mqtt", "port"),
    [("{host: b, tls: false}", 1883), ("{host: b, tls: false, port: 11883}", 11883), ("{host: b}", 8883)],
)
def test_default_port_follows_tls(mqtt: str, port: int) -> None:
    inventory = parse_inventory(MQTT + f"  mqtt: {mqtt}\n", "inv.yaml")
    assert inventory.thingplus.mqtt is not None and inventory.thingplus.mqtt.effective_port == port


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HEAD + "  transport: mqtt\n", ["gateway_id", "apikey", "mqtt"]),
        (MQTT, ["mqtt"]),
    ],
)
def test_mqtt_keys_missing_are_each_named(text: str, expected: list[str]) -> None:
    assert problems(text) == [f"inv.yaml:2:1: thingplus.{key}: required key is missing" for key in expected]


def test_mqtt_keys_refused_with_https() -> None:
    text = HEAD + "  client_id: c\n  client_secret: s\n  username: u\n  password: p\n  apikey: k\n"
    assert problems(text) == ["inv.yaml:8:3: thingplus.apikey: is used only with 'transport: mqtt'"]


def test_unknown_transport_and_mqtt_key_typo_are_located() -> None:
    text = HEAD + "  transport: amqp\n"
    assert problems(text)[0].startswith("inv.yaml:4:3: thingplus.transport: unknown value 'amqp'")
    found = problems(MQTT + "  mqtt:\n    host: b\n    prot: 1\n")
    assert found == ["inv.yaml:9:5: thingplus.mqtt.prot: unknown key; did you mean 'port'?"]


def test_mqtt_ca_file_is_checked() -> None:
    found = problems(MQTT + "  mqtt: {host: b, ca_file: /nonexistent/ca.pem}\n")
    assert len(found) == 1 and found[0].startswith("inv.yaml:7:19: thingplus.mqtt.ca_file: CA bundle")
