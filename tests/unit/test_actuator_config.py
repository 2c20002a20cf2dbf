"""The actuators of a device and thingplus.commands in the inventory: strict, located, YAML-friendly."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from gatewayd.errors import ConfigError
from gatewayd.inventory.actuators import ActuatorConfig, CommandsConfig
from gatewayd.inventory.config import parse_inventory
from tests.helpers.inventories import inventory_yaml


def actuator(text: str) -> ActuatorConfig:
    return ActuatorConfig.model_validate(yaml.safe_load(text))


def problems_of(devices: str, **keys: Any) -> list[str]:
    text = inventory_yaml(devices=textwrap.indent(textwrap.dedent(devices), "  "), **keys)
    with pytest.raises(ConfigError) as info:
        parse_inventory(text, "inv.yaml", env={})
    return [str(p) for p in info.value.problems]


def test_each_target_with_its_defaults() -> None:
    coil = actuator("{name: fan, type: powerSwitch, modbus: {host: 10.0.0.5, coil: 3}}")
    assert coil.target_kind == "modbus" and coil.modbus is not None
    assert (coil.modbus.address, coil.modbus.on_value, coil.modbus.off_value) == (3, 1, 0)
    assert coil.modbus.endpoint == "tcp://10.0.0.5:502" and coil.modbus.unit == 1
    register = actuator("{name: v, type: led, modbus: {serial: /dev/ttyS1, register: 40, on_value: 255}}")
    assert register.modbus is not None and register.modbus.holding_register == 40
    assert register.modbus.endpoint == "rtu:///dev/ttyS1?9600N81"
    # YAML 1.1 reads bare on/off keys and values as booleans: they still mean the commands and states.
    command = actuator("{name: l, type: led, command: {on: [relay, '{{cmd}}'], off: [relay, 'off']}}")
    assert command.command is not None and command.command.on == ["relay", "{{cmd}}"]
    assert command.command.timeout == 10.0 and command.command.blink is None
    http = actuator("{name: h, type: led, http: {on: {url: 'http://x/on'}, off: {url: 'http://x/off'}}}")
    assert http.http is not None and http.http.on.method == "POST" and http.http.off.body is None
    assert actuator("{name: s, type: led, simulate: {initial: on}}").target.initial == "on"
    assert actuator("{name: s, type: led, simulate: {}}").target.initial == "off"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{name: a, type: led}", "has no target: give exactly one of modbus, command, http, simulate"),
        ("{name: a, type: led, simulate: {}, command: {on: [a], off: [b]}}", "has several targets"),
        ("{name: a, type: led, modbus: {host: h}}", "give exactly one of 'coil' and 'register'"),
        ("{name: a, type: led, modbus: {host: h, coil: 1, register: 2}}", "exactly one of 'coil'"),
        ("{name: a, type: led, modbus: {coil: 1}}", "exactly one of 'host' (Modbus TCP) and 'serial'"),
        ("{name: a, type: led, modbus: {host: h, coil: 1, on_value: 2}}", "a coil is written 0 or 1"),
        ("{name: a, type: led, modbus: {host: h, register: 1, on_value: 0}}", "must differ"),
        ("{name: a, type: led, command: {on: [], off: [b]}}", "at least 1 item"),
        ("{name: a, type: led, command: {on: ['{{nope}}'], off: [b]}}", "unknown placeholder {{nope}}"),
        ("{name: a, type: led, http: {on: {url: 'ftp://x'}, off: {url: 'http://x'}}}", "http:// or https://"),
    ],
)
def test_bad_actuators(text: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        actuator(text)
    assert message in str(info.value)


def test_duplicate_actuator_names_and_https_are_located() -> None:
    problems = problems_of(
        """\
        - name: Room 1
          actuators:
            - {name: Fan, type: powerSwitch, simulate: {}}
            - {name: Fan, type: led, simulate: {}}
        """
    )
    assert problems == [
        "inv.yaml:13:10: devices[0].actuators[1].name: duplicate actuator name 'Fan': names must be unique"
    ]


def test_actuators_need_mqtt() -> None:
    problems = problems_of(
        """\
        - name: Room 1
          actuators:
            - {name: Fan, type: powerSwitch, simulate: {}}
        """
    )
    assert problems == [
        "inv.yaml:11:5: devices[0].actuators: actuators need thingplus.transport: mqtt (Thing+ cannot "
        "link actuators over https): set it, or remove the actuators"
    ]


def test_commands_defaults_and_allow_list() -> None:
    default = CommandsConfig()
    assert default.allow == [] and default.time_sync_warn == 5.0
    assert [default.argv(m) for m in ("poweroff", "reboot", "swUpdate")] == [None, None, None]
    allowed = CommandsConfig.model_validate(
        {"allow": ["reboot", "swUpdate"], "swUpdate": ["/usr/sbin/update-box"], "time_sync_warn": "2s"}
    )
    assert allowed.argv("reboot") == ["systemctl", "reboot"] and allowed.argv("poweroff") is None
    assert allowed.argv("swUpdate") == ["/usr/sbin/update-box"] and allowed.time_sync_warn == 2.0


def test_commands_problems_are_located() -> None:
    problems = problems_of("[]\n", thingplus_keys={"commands": "{allow: [swUpdate, halt]}"})
    assert problems == [
        "inv.yaml:9:32: thingplus.commands.allow[1]: unknown value 'halt': input should be 'poweroff', "
        "'reboot' or 'swUpdate'"
    ]
    problems = problems_of("[]\n", thingplus_keys={"commands": "{allow: [swUpdate]}"})
    assert problems == [
        "inv.yaml:9:3: thingplus.commands: allows swUpdate but gives no 'swUpdate' argv to run: add one "
        "or disallow it"
    ]
