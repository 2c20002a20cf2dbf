"""Inventory validation: every bad input gets FILE:LINE:COL: path: message, all at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gatewayd.errors import ConfigError
from gatewayd.inventory.config import load_inventory, parse_duration, parse_inventory
from gatewayd.secret import Secret
from tests.conftest import VALID
from tests.helpers.inventories import loctube


def problems_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_inventory(text, "inv.yaml", env=env or {})
    return [str(p) for p in info.value.problems]


def test_valid_inventory_loads_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text(VALID)
    inv = load_inventory(path)
    assert inv.gateway.model == "52"
    assert inv.gateway.site is None
    assert inv.state_dir == tmp_path / "state"  # relative to the inventory file
    ((device, sensor),) = inv.sensors()
    assert device.name == "Room 1"
    assert sensor.interval == 10.0
    assert sensor.source_kind == "simulate"
    assert sensor.simulate is not None and sensor.simulate.pattern == "sine"
    assert sensor.simulate.period == 3600.0
    assert inv.rcms is None and inv.loctube is None and inv.http is None


def test_password_is_sent_as_md5() -> None:
    import hashlib

    inv = parse_inventory(VALID, env={})

    assert inv.thingplus.password_hash().reveal() == hashlib.md5(b"hunter2-password").hexdigest()


def test_password_md5_is_accepted_lowercased() -> None:
    text = VALID.replace("password: hunter2-password", "password_md5: 0B54B2A7B72F1EFEB2C86885C3247787")
    inv = parse_inventory(text, env={})
    assert inv.thingplus.password_hash().reveal() == "0b54b2a7b72f1efeb2c86885c3247787"


def test_missing_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_inventory("/nonexistent/inv.yaml")
    assert str(info.value) == "/nonexistent/inv.yaml: file does not exist"


def test_empty_file() -> None:
    assert problems_of("") == ["inv.yaml: is empty: an inventory is needed"]
    assert problems_of("# only a comment\n") == ["inv.yaml: is empty: an inventory is needed"]


def test_yaml_syntax_error_has_its_line() -> None:
    text = VALID.replace("  username: serviceadmin", "  username: [serviceadmin")
    (problem,) = problems_of(text)
    assert problem.startswith("inv.yaml:")
    assert "YAML syntax error" in problem
    line = int(problem.split(":")[1])
    assert line in (7, 8)


def test_unset_env_var_names_the_variable_and_key() -> None:
    text = VALID.replace("client_secret: testClientPwd12", "client_secret: ${TP_SECRET}")
    assert problems_of(text) == [
        "inv.yaml:6:18: thingplus.client_secret: environment variable TP_SECRET is not set"
    ]


def test_env_and_file_references_expand(tmp_path: Path) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text("from-file\n")
    text = VALID.replace("client_secret: testClientPwd12", "client_secret: ${TP_SECRET}").replace(
        "password: hunter2-password", f"password: ${{file:{secret_file}}}"
    )
    inv = parse_inventory(text, env={"TP_SECRET": "from-env"})
    assert inv.thingplus.client_secret.reveal() == "from-env"
    assert inv.thingplus.password is not None and inv.thingplus.password.reveal() == "from-file"


def test_env_default_and_literal_dollar() -> None:
    text = VALID.replace("username: serviceadmin", "username: ${TP_USER:-fallback}$${x}")
    inv = parse_inventory(text, env={})
    assert inv.thingplus.username == "fallback${x}"


def test_missing_secret_file_is_located() -> None:
    text = VALID.replace("password: hunter2-password", "password: ${file:/nonexistent/pw}")
    assert problems_of(text) == [
        "inv.yaml:8:13: thingplus.password: file /nonexistent/pw (from ${file:...}) does not exist"
    ]


def test_bad_url() -> None:
    text = VALID.replace("endpoint: https://api.sandbox.thingplus.net", "endpoint: api.sandbox")
    (problem,) = problems_of(text)
    assert problem.startswith("inv.yaml:4:3: thingplus.endpoint: must be an http:// or https:// URL")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "must be greater than zero (got 0)"),
        ("-5", "must be greater than zero (got -5)"),
        ("'0s'", "must be greater than zero (got '0s')"),
        ("ten", "cannot parse duration 'ten'"),
        ("10x", "cannot parse duration '10x'"),
    ],
)
def test_bad_interval(value: str, message: str) -> None:
    text = VALID.replace("interval: 10", f"interval: {value}")
    (problem,) = problems_of(text)
    assert problem.startswith(f"inv.yaml:14:9: devices[0].sensors[0].interval: {message}")


def test_unknown_enum_value() -> None:
    text = VALID + textwrap_loctube(sign="sha1")
    (problem,) = problems_of(text)
    assert problem.startswith("inv.yaml:20:3: loctube.sign: unknown value 'sha1'")
    assert "'md5' or 'sha256'" in problem


def test_unknown_auth_mode() -> None:
    text = VALID + textwrap_loctube(auth="apikey")
    (problem,) = problems_of(text)
    assert problem.startswith("inv.yaml:21:3: loctube.auth: unknown value 'apikey'")


def test_unknown_pattern() -> None:
    text = VALID.replace("pattern: sine, min: 18, max: 26, period: 1h", "pattern: zigzag")
    (problem,) = problems_of(text)
    assert problem.startswith("inv.yaml:15:9: devices[0].sensors[0].simulate: unknown value 'zigzag'")


def test_sensor_without_source() -> None:
    text = VALID.replace("        simulate: {pattern: sine, min: 18, max: 26, period: 1h}\n", "")
    assert problems_of(text) == [
        "inv.yaml:12:9: devices[0].sensors[0]: has no source: give exactly one of simulate, file, command, http, modbus, rcms, loctube"
    ]


def test_unknown_key_is_an_error_with_a_hint() -> None:
    text = VALID.replace("  username: serviceadmin", "  usename: serviceadmin")
    problems = problems_of(text)
    assert "inv.yaml:7:3: thingplus.usename: unknown key; did you mean 'username'?" in problems
    assert "inv.yaml:3:1: thingplus.username: required key is missing" in problems


def test_unknown_key_in_pattern() -> None:
    text = VALID.replace("period: 1h}", "period: 1h, amplitude: 3}")
    (problem,) = problems_of(text)
    assert problem.startswith("inv.yaml:15:65: devices[0].sensors[0].simulate.amplitude: unknown key")


def test_duplicate_names() -> None:
    text = VALID + (
        "      - name: Temperature\n"
        "        type: temperature\n"
        "        simulate: {pattern: constant, value: 1}\n"
        "  - name: Room 1\n"
    )
    assert problems_of(text) == [
        "inv.yaml:16:9: devices[0].sensors[1].name: duplicate sensor name 'Temperature': names must be unique",
        "inv.yaml:19:5: devices[1].name: duplicate device name 'Room 1': names must be unique",
    ]


def test_duplicate_yaml_key() -> None:
    text = VALID.replace("  username: serviceadmin", "  username: serviceadmin\n  username: other")
    (problem,) = problems_of(text)
    assert problem.startswith("inv.yaml:8:3: thingplus.username: duplicate key")


def test_password_and_md5_are_exclusive() -> None:
    text = VALID.replace(
        "password: hunter2-password", "password: x\n  password_md5: 0b54b2a7b72f1efeb2c86885c3247787"
    )
    (problem,) = problems_of(text)
    assert problem == "inv.yaml:3:1: thingplus: give exactly one of 'password' and 'password_md5'"


def test_all_problems_reported_at_once_in_line_order() -> None:
    text = VALID.replace("interval: 10", "interval: 0").replace("usernam", "usrnam")
    problems = problems_of(text)
    lines = [int(p.split(":")[1]) for p in problems]
    assert lines == sorted(lines)
    assert len(problems) == 3  # unknown key, missing username, bad interval


def test_top_level_must_be_mapping() -> None:
    assert problems_of("- a\n- b\n") == [
        "inv.yaml:1:1: must be a mapping of sections (gateway, thingplus, ...)"
    ]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(10, 10.0), (0.5, 0.5), ("500ms", 0.5), ("10s", 10.0), ("5m", 300.0), ("1h", 3600.0), ("1d", 86400.0)],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


def textwrap_loctube(sign: str = "md5", auth: str = "signature") -> str:
    return loctube("https://loctube.example.com", sign=sign, auth=auth)


def test_anchors_aliases_and_merge_keys() -> None:
    text = (
        VALID.split("devices:")[0]
        + "devices:\n"
        + "  - name: Room 1\n"
        + "    sensors:\n"
        + "      - &base {name: A, type: humidity, interval: 5s, simulate: &sim {pattern: constant, value: 1}}\n"
        + "      - {<<: *base, name: B}\n"
        + "      - {<<: [*base], name: C, interval: 1s, simulate: *sim}\n"
    )
    sensors = parse_inventory(text, env={}).devices[0].sensors
    assert [(s.name, s.type, s.interval) for s in sensors] == [
        ("A", "humidity", 5.0),
        ("B", "humidity", 5.0),
        ("C", "humidity", 1.0),
    ]


def test_problems_in_merged_mappings_are_still_located() -> None:
    text = (
        VALID.split("devices:")[0]
        + "devices:\n"
        + "  - name: Room 1\n"
        + "    sensors:\n"
        + "      - {<<: {type: temperature, interval: 0}, name: A, simulate: {pattern: constant}}\n"
    )
    (problem,) = problems_of(text)
    # located where the merged value is written
    assert problem.startswith("inv.yaml:12:34: devices[0].sensors[0].interval: must be greater than zero")


def test_unknown_alias_and_two_documents() -> None:
    assert "inv.yaml:1:10: gateway: unknown alias *nope" in problems_of("gateway: *nope\n")
    assert problems_of(VALID + "---\nfoo: 1\n") == ["inv.yaml:16:1: YAML error: more than one document"]


# ------------------------------------------------------------------------------------------------ fingerprints


def test_a_fingerprint_changes_with_any_value_and_sees_secrets() -> None:
    from gatewayd.inventory.config import fingerprint

    def sensor(**changes: str) -> Any:
        text = VALID
        for old, new in changes.items():
            text = text.replace(old, new)
        return parse_inventory(text, env={}).devices[0].sensors[0]

    base = sensor()
    assert fingerprint(base) == fingerprint(sensor())
    assert fingerprint(base) != fingerprint(sensor(**{"max: 26": "max: 27"}))
    assert fingerprint(Secret("a")) != fingerprint(Secret("b")), "a secret's repr is *** but its value counts"
    assert fingerprint({"a": [1, 2]}) != fingerprint({"a": [2, 1]})


def test_without_devices_keeps_every_other_section() -> None:
    inventory = parse_inventory(VALID, env={})
    slim = inventory.without_devices()
    assert slim.devices == [] and inventory.devices
    assert slim.model_dump(exclude={"devices"}) == inventory.model_dump(exclude={"devices"})


def test_devices_are_validated_one_by_one_yet_every_problem_is_located() -> None:
    """Valid devices become models before the whole inventory is validated (a lower memory peak); the
    problems of the others, and of the sections around them, are still all reported in place."""
    text = (
        VALID.replace("gateway: {", "gateway: {bogus: 1, ")
        + "  - name: Cellar\n"
        + "    sensors:\n"
        + "      - {name: Level, type: percent, interval: soon, simulate: {pattern: constant, value: 1}}\n"
        + "  - name: Attic\n"
        + "    sensors:\n"
        + "      - {name: Fan, type: onoff, interval: 1s, simulate: {pattern: constant, value: 1}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_inventory(text, "inv.yaml", env={})
    paths = [(p.line, p.path) for p in caught.value.problems]
    assert paths == [(1, "gateway.bogus"), (18, "devices[1].sensors[0].interval")]
    fixed = parse_inventory(text.replace("bogus: 1, ", "").replace("soon", "2s"), env={})
    assert [d.name for d in fixed.devices] == ["Room 1", "Cellar", "Attic"]


def test_models_with_the_same_given_keys_share_one_fields_set_and_copies_do_not_leak() -> None:
    from gatewayd.inventory.config import SensorConfig

    raw = {"name": "t", "type": "number", "simulate": {"pattern": "constant", "value": 1}}
    a = SensorConfig.model_validate(raw)
    b = SensorConfig.model_validate({**raw, "name": "u"})
    assert a.model_fields_set is b.model_fields_set  # one set for the 10,000 alike, not one each
    assert a.model_fields_set == {"name", "type", "simulate"}

    c = a.model_copy(update={"interval": 5.0})
    assert c.model_fields_set == {"name", "type", "simulate", "interval"}
    assert a.model_fields_set == b.model_fields_set == {"name", "type", "simulate"}
    with pytest.raises(ValueError):
        a.interval = 2.0  # type: ignore[misc]  # frozen: nothing can add to the shared set
    assert a.model_dump(exclude_unset=True)["simulate"] == {"pattern": "constant", "value": 1}
