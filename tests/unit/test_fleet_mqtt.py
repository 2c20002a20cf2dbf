"""A fleet over Thing+ MQTT: each gateway's id and API key from the template, and the located checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gatewayd.errors import ConfigError
from gatewayd.inventory.config import parse_inventory
from gatewayd.inventory.fleetmqtt import fleet_credentials, holds_index
from gatewayd.inventory.yamlsource import load_yaml
from tests.helpers.inventories import inventory_yaml
from tests.unit.test_fleet_core import DEVICES

MQTT = {"host": "127.0.0.1", "tls": False}


def mqtt_fleet(gateway_id: str, apikey: str = "key-{index}", gateways: int = 4) -> str:
    return f"fleet: {{gateways: {gateways}}}\n" + inventory_yaml(
        gateway='{name: "G{index:02d}"}',
        state_dir="/tmp/x",
        thingplus_keys={
            "transport": "mqtt",
            "gateway_id": f'"{gateway_id}"',
            "apikey": f'"{apikey}"',
            "mqtt": MQTT,
        },
        devices=DEVICES,
    )


@pytest.mark.parametrize(
    ("gateway_id", "apikey", "index", "shard", "expected"),
    [
        ("gw{index}", "key-{index}", 3, 0, ("gw3", "key-3")),
        ("0090c2{index:06x}", "k", 255, 1, ("0090c20000ff", "k")),  # one key for all: allowed
        ("s{shard}-{index:04d}", "{shard}/{index}", 7, 2, ("s2-0007", "2/7")),
    ],
)
def test_each_gateway_gets_its_own_id_and_key(
    gateway_id: str, apikey: str, index: int, shard: int, expected: tuple[str, str]
) -> None:
    inventory = parse_inventory(mqtt_fleet(gateway_id, apikey, gateways=300), fleet_gateway=(index, shard))
    assert inventory.thingplus.apikey is not None
    assert (inventory.thingplus.gateway_id, inventory.thingplus.apikey.reveal()) == expected


@pytest.mark.parametrize(
    ("gateway_id", "apikey", "message"),
    [
        ("b827eb000001", "k", "needs one gateway id per gateway: 'b827eb000001' has no {index}"),
        ("gw-{shard}", "k", "'gw-{shard}' has no {index} placeholder"),
        ("gw-{index:zz}", "k", "'gw-{index:zz}' has a placeholder with a bad format spec"),
        ("gw-{index}", "k{index:q}", "the API key has a placeholder with a bad format spec"),
    ],
)
def test_a_template_without_an_id_per_gateway_is_a_located_error(
    gateway_id: str, apikey: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_inventory(mqtt_fleet(gateway_id, apikey), "fleet.yaml")
    text = str(info.value)
    assert message in text
    key = "gateway_id" if "API key" not in message else "apikey"
    line = 1 + next(
        i for i, row in enumerate(mqtt_fleet(gateway_id, apikey).splitlines()) if f"{key}:" in row
    )
    assert f"fleet.yaml:{line}:3: thingplus.{key}:" in text


def test_a_single_gateway_keeps_its_id_as_written() -> None:
    """Without ``fleet:`` nothing is filled in, and no {index} is asked for."""
    keys = {"transport": "mqtt", "gateway_id": "b827eb000001", "apikey": "k", "mqtt": MQTT}
    text = inventory_yaml(state_dir="/tmp/x", thingplus_keys=keys)
    assert parse_inventory(text).thingplus.gateway_id == "b827eb000001"


def test_env_references_are_expanded_before_the_placeholders() -> None:
    """``${GW}`` is read when the YAML is; the ``{index}`` it brings is then filled like one written."""
    text = mqtt_fleet("${GW}", "${KEY}-{index}")
    env = {"GW": "aa{index:04x}", "KEY": "secret"}
    inventory = parse_inventory(text, env=env, fleet_gateway=(10, 0))
    assert inventory.thingplus.apikey is not None
    assert (inventory.thingplus.gateway_id, inventory.thingplus.apikey.reveal()) == ("aa000a", "secret-10")
    data: Any = load_yaml(text, "fleet.yaml", env, positions=False).data
    assert fleet_credentials(data) == [(f"aa{i:04x}", f"secret-{i}") for i in range(4)]


def test_credentials_of_every_gateway_fill_the_shard_as_the_shards_do() -> None:
    data: Any = load_yaml(mqtt_fleet("g{index}s{shard}", "k"), "f", {}, positions=False).data
    assert fleet_credentials(data, shards=3) == [("g0s0", "k"), ("g1s1", "k"), ("g2s2", "k"), ("g3s0", "k")]
    https = load_yaml("fleet: {gateways: 2}\n" + inventory_yaml(), "f", {}, positions=False).data
    assert fleet_credentials(https) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [("{index}", True), ("a{index:08x}", True), ("{shard}", False), ("{indexes}", False), ("x", False)],
)
def test_holds_index(text: str, expected: bool) -> None:
    assert holds_index(text) is expected


def test_a_fleet_allows_no_command_that_acts_on_the_machine() -> None:
    text = mqtt_fleet("gw{index}").replace(
        "  transport: mqtt", "  transport: mqtt\n  commands: {allow: [reboot]}", 1
    )
    with pytest.raises(ConfigError, match="would act on the machine running the shard") as info:
        parse_inventory(text)
    assert "thingplus.commands.allow" in str(info.value)


def test_a_restart_command_restarts_one_members_link_not_the_shard() -> None:
    """The daemon stops (exit 75) on ``restart``; in a fleet that would stop every gateway of the shard."""
    from types import SimpleNamespace

    from gatewayd.fleet.member import RESTART_DELAY_S, Member

    calls: list[str] = []
    scheduled: list[tuple[float, Callable[[], None]]] = []
    link = SimpleNamespace(
        go_offline=lambda: calls.append("off"), come_back=lambda resume: calls.append("back")
    )
    gateway: Any = SimpleNamespace(
        mqtt=link, reporting=object(), registration=SimpleNamespace(registered=object())
    )
    member = Member(3, gateway, later=lambda delay, fn: scheduled.append((delay, fn)))
    member.restart()
    assert calls == [] and [d for d, _ in scheduled] == [RESTART_DELAY_S]  # the answer goes out first
    scheduled[0][1]()
    assert calls == ["off", "back"] and not member.offline
