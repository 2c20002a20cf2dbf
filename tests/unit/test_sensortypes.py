"""Type-safe values: what a numeric Thing+ sensor type can send, judged by ``check`` and at each read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from gatewayd.cli import main
from gatewayd.errors import ConfigError, SourceError
from gatewayd.inventory.sensortypes import is_number_text, numeric_type, value_problem
from gatewayd.runtime.sampler import SampleBuffer, Sampler, SensorRuntime
from gatewayd.sources import thingplus_value
from tests.conftest import VALID


@pytest.mark.parametrize(
    ("sensor_type", "value", "ok"),
    [
        ("temperature", 21.5, True),
        ("temperature", 7, True),
        ("temperature", True, True),  # sent as "1"
        ("temperature", "21.5", True),
        ("temperature", " -3e2 ", True),
        ("temperature", ".5", True),
        ("humidity", "open", False),
        ("percent", "", False),
        ("number", "nan", False),
        ("number", "inf", False),
        ("number", "1e999", False),  # not finite
        ("number", "0x1A", False),
        ("number", "1_000", False),  # Python reads it, a JavaScript server does not
        ("number", "\u0661\u0662", False),  # Arabic-Indic digits: the same
        ("number", "+5", True),
        ("count", "12 apples", False),
        ("conductivity", {"a": 1}, False),
        ("string", "open", True),
        ("onoff", "on", True),
        ("location", {"lat": 37.5, "lng": 127.0}, True),
        ("some_future_type", "anything", True),  # not judged: the cloud decides
    ],
)
def test_what_each_type_can_send(sensor_type: str, value: Any, ok: bool) -> None:
    assert (value_problem(sensor_type, value) is None) is ok


def test_numeric_types_and_number_texts() -> None:
    assert numeric_type("temperature") and numeric_type("percent")
    assert not numeric_type("string") and not numeric_type("location")
    assert is_number_text("36.5") and not is_number_text("36,5")


def problems_of(text: str) -> list[str]:
    from gatewayd.inventory.config import parse_inventory

    with pytest.raises(ConfigError) as info:
        parse_inventory(text, "inv.yaml", env={})
    return [str(p) for p in info.value.problems]


SIMULATION = "simulate: {pattern: sine, min: 18, max: 26, period: 1h}"


@pytest.mark.parametrize(
    ("sensor_type", "simulate", "problem"),
    [
        (
            "temperature",
            'simulate: {pattern: constant, value: "open"}',
            "inv.yaml:15:39: devices[0].sensors[0].simulate.value: a temperature sensor sends numbers, "
            "and 'open' is not one (Thing+ would refuse it)",
        ),
        (
            "percent",
            'simulate: {pattern: step, values: [1, "2.5", full], hold: 1m}',
            "inv.yaml:15:54: devices[0].sensors[0].simulate.values[2]: a percent sensor sends numbers, "
            "and 'full' is not one (Thing+ would refuse it)",
        ),
        (
            "humidity",
            "simulate: {pattern: choice, values: [dry, 50]}",
            "inv.yaml:15:46: devices[0].sensors[0].simulate.values[0]: a humidity sensor sends numbers, "
            "and 'dry' is not one (Thing+ would refuse it)",
        ),
    ],
)
def test_check_refuses_a_simulation_a_numeric_type_cannot_send(
    sensor_type: str, simulate: str, problem: str
) -> None:
    text = VALID.replace("type: temperature", f"type: {sensor_type}").replace(SIMULATION, simulate)
    assert problems_of(text) == [problem]


@pytest.mark.parametrize(
    ("sensor_type", "simulate"),
    [
        ("string", 'simulate: {pattern: constant, value: "open"}'),
        ("onoff", "simulate: {pattern: choice, values: [on, off]}"),
        ("temperature", 'simulate: {pattern: step, values: [1, "2.5", true]}'),
        ("temperature", "simulate: {pattern: constant}"),
    ],
)
def test_check_accepts_values_the_type_can_send(sensor_type: str, simulate: str) -> None:
    from gatewayd.inventory.config import parse_inventory

    text = VALID.replace("type: temperature", f"type: {sensor_type}").replace(SIMULATION, simulate)
    assert simulate in text  # the case is what is parsed, not the sine it replaces
    [(_, sensor)] = list(parse_inventory(text, "inv.yaml", env={}).sensors())
    assert sensor.type == sensor_type and sensor.simulate is not None
    assert f"pattern: {sensor.simulate.pattern}" in simulate


def test_check_exits_2_naming_the_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text(
        VALID.replace(SIMULATION, "simulate: {pattern: constant, value: closed}"), encoding="utf-8"
    )
    assert main(["check", "--config", str(path)]) == 2
    assert (
        f"{path}:15:39: devices[0].sensors[0].simulate.value: a temperature sensor" in capsys.readouterr().err
    )


def test_a_text_read_of_a_numeric_sensor_is_a_failed_read() -> None:
    with pytest.raises(SourceError, match="a temperature sensor sends numbers, and 'open' is not one"):
        thingplus_value("open", "temperature")
    assert thingplus_value("open") == "open"  # a type not judged: sent as it is
    assert thingplus_value(21.5, "temperature") == "21.5"


class _Source:
    def __init__(self, values: list[Any]) -> None:
        self.values = values

    def read_now(self) -> Any:
        return self.values.pop(0)

    async def read(self) -> Any:
        return self.read_now()

    async def close(self) -> None:
        return None


async def test_the_sampler_counts_a_value_the_type_cannot_carry_as_a_read_error_not_a_point() -> None:
    buffer = SampleBuffer(outbox=None)  # type: ignore[arg-type]  # nothing is flushed here
    sampler = Sampler(scheduler=None, buffer=buffer)  # type: ignore[arg-type]
    source = _Source([20.5, "open", "open", "21", "closed"])
    sensor = SensorRuntime("Room", "T", "temperature", "s" * 32, 1.0, source)
    assert sensor.numeric == "temperature"
    with capture_logs() as logs:
        for _ in range(5):
            assert sensor.read_now is not None
            sampler._read_inline(sensor, sensor.read_now, 1_700_000_000_000)
    assert len(buffer) == 2 and sampler.stats.sampled == 2
    assert sampler.stats.read_errors == 3 and sensor.failures == 3
    assert sensor.status == "err" and "'closed'" in (sensor.last_error or "")
    failed = [e for e in logs if e["event"] == "sensor.read_failed"]
    assert len(failed) == 2  # once per change: 'open' (twice in a row), then 'closed'
