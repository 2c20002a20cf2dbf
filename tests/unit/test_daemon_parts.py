"""Pure parts of the daemon: ids, windows, model parsing, value formatting, simulation, clock jumps.

When statuses and uploads are due is tested as tables in test_schedule.py."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest

from gatewayd.errors import ConfigError, SourceError
from gatewayd.inventory.config import parse_inventory
from gatewayd.runtime.registrar import GatewayModel, check_types
from gatewayd.runtime.registry import Registry
from gatewayd.runtime.sampler import ClockJumpGuard
from gatewayd.sources import thingplus_value
from gatewayd.sources.simulate import Simulation, sine_value
from tests.conftest import VALID, pairwise

MODEL = {
    "id": "52",
    "reportInterval": "300000",
    "deviceModels": [
        {
            "id": "open-api-device-v1.0",
            "sensors": [
                {
                    "driverName": "openApiSensor",
                    "model": "openApiTemp",
                    "type": "temperature",
                    "category": "sensor",
                },
                {
                    "driverName": "openApiSensor",
                    "model": "openApiHumi",
                    "type": "humidity",
                    "category": "sensor",
                },
                {"driverName": "x", "model": "y", "type": "relay", "category": "actuator"},
            ],
        }
    ],
}


def test_registry_ids_are_uuid_hex_and_survive_a_restart(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    gateway = registry.gateway_id()
    sensor = registry.sensor_id("Room 1", "Temperature")
    assert len(gateway) == 32 and all(c in "0123456789abcdef" for c in gateway)
    assert gateway != sensor
    registry.mark_sensor_registered("Room 1", "Temperature")
    registry.flush()
    again = Registry(tmp_path)
    assert again.gateway_id() == gateway
    assert again.sensor_id("Room 1", "Temperature") == sensor
    assert again.sensor_registered("Room 1", "Temperature")
    assert not again.device_registered("Room 1")
    assert again.registered_sensor_ids() == {sensor}
    assert (tmp_path / "registry.json").stat().st_mode & 0o777 == 0o600


def test_registry_saves_new_ids_before_returning_them(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    registry.ensure_ids([("A", "t"), ("A", "h"), ("B", "t")])
    saved = json.loads((tmp_path / "registry.json").read_text())
    assert set(saved["sensors"]) == {"A/t", "A/h", "B/t"}
    assert set(saved["devices"]) == {"A", "B"}
    assert saved["gateway"]["registered"] is False


def test_gateway_model_parse_keeps_sensors_only() -> None:
    model = GatewayModel.parse("52", MODEL)
    assert model.device_model == "open-api-device-v1.0"
    assert set(model.sensors) == {"temperature", "humidity"}
    assert model.sensors["humidity"].model == "openApiHumi"


def test_type_missing_from_model_is_a_config_error_naming_the_sensor() -> None:
    inventory = parse_inventory(VALID.replace("type: temperature", "type: lux"), env={})
    with pytest.raises(ConfigError) as info:
        check_types(inventory, GatewayModel.parse("52", MODEL), "inv.yaml")
    (problem,) = info.value.problems
    assert problem.path == "devices[0].sensors[0].type"
    assert "'Room 1/Temperature' has type 'lux'" in problem.message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (36.5, "36.5"),
        (18.0, "18"),
        (1 / 3, "0.333333"),
        (-0.0000001, "0"),
        (7, "7"),
        (True, "1"),
        (False, "0"),
        ("on", "on"),
        ({"lat": 1}, {"lat": 1}),
    ],
)
def test_thingplus_value(value: object, expected: object) -> None:
    assert thingplus_value(value) == expected  # type: ignore[arg-type]


def test_non_finite_values_are_failed_reads() -> None:
    with pytest.raises(SourceError):
        thingplus_value(math.nan)


def _sim(pattern: str, **kw: object) -> Simulation:
    return Simulation(_pattern(pattern, **kw), clock=lambda: 0.0)


def _pattern(pattern: str, **kw: object) -> Any:
    inventory = parse_inventory(
        VALID.replace(
            "simulate: {pattern: sine, min: 18, max: 26, period: 1h}",
            "simulate: " + json.dumps({"pattern": pattern, **kw}),
        ),
        env={},
    )
    source = inventory.devices[0].sensors[0].simulate
    assert source is not None
    return source


def test_sine_spans_min_to_max_over_a_period() -> None:
    pattern = _pattern("sine", min=10, max=20, period=100, seed=1)
    values = [sine_value(pattern, t) for t in range(100)]
    assert min(values) == pytest.approx(10, abs=0.01)
    assert max(values) == pytest.approx(20, abs=0.01)
    assert values[0] == pytest.approx(15)
    assert values[25] == pytest.approx(20)


def test_uniform_and_random_walk_stay_in_range_and_are_seeded() -> None:
    a = [_sim("uniform", min=1, max=2, seed=7).next_value() for _ in range(1)]
    sim1, sim2 = (
        _sim("random_walk", min=0, max=10, step=2, seed=3),
        _sim("random_walk", min=0, max=10, step=2, seed=3),
    )
    walk1 = [sim1.next_value() for _ in range(2000)]
    walk2 = [sim2.next_value() for _ in range(2000)]
    assert walk1 == walk2
    assert all(0 <= v <= 10 for v in walk1)
    assert max(abs(b - a) for a, b in pairwise(walk1)) <= 2 + 1e-9
    assert walk1[0] == 5
    uniform = _sim("uniform", min=1, max=2, seed=7)
    values = [uniform.next_value() for _ in range(5000)]
    assert all(1 <= v <= 2 for v in values)
    assert statistics.mean(values) == pytest.approx(1.5, abs=0.02)
    assert a[0] == _sim("uniform", min=1, max=2, seed=7).next_value()


async def test_dropout_fails_reads_at_its_rate() -> None:
    sim = _sim("constant", value=3, dropout=0.25, seed=11)
    failures = 0
    for _ in range(4000):
        try:
            assert await sim.read() == 3
        except SourceError:
            failures += 1
    assert failures / 4000 == pytest.approx(0.25, abs=0.03)


@pytest.mark.parametrize(
    ("wall_delta", "mono_delta", "jumped"),
    [(1.0, 1.0, False), (1.5, 1.0, False), (3601.0, 1.0, True), (-3599.0, 1.0, True), (1.0, 4.0, True)],
)
def test_clock_jump_detection(wall_delta: float, mono_delta: float, jumped: bool) -> None:
    assert ClockJumpGuard.jumped(wall_delta, mono_delta, tolerance_s=2.0) is jumped


async def test_reanchor_brings_far_future_runs_back_to_now() -> None:
    from datetime import datetime, timedelta, timezone

    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    scheduler = AsyncIOScheduler(timezone=timezone.utc)
    scheduler.start(paused=True)
    try:
        # As if the wall clock had jumped an hour back after the job was scheduled.
        scheduler.add_job(
            print,
            IntervalTrigger(seconds=10),
            id="j",
            next_run_time=datetime.now(timezone.utc) + timedelta(hours=1),
        )
        ClockJumpGuard(scheduler).reanchor()
        job = scheduler.get_job("j")
        assert job.next_run_time - datetime.now(timezone.utc) < timedelta(seconds=1)
        assert job.trigger.interval == timedelta(seconds=10)
    finally:
        scheduler.shutdown(wait=False)
