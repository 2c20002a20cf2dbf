"""Simulated sources: the statistical shape of every pattern with a fixed seed, options, replay, validation."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from gatewayd.errors import ConfigError, SourceError
from gatewayd.inventory.config import parse_inventory
from gatewayd.inventory.sources import SawtoothPattern, SimulateSource, SinePattern, StepPattern
from gatewayd.sources import thingplus_value
from gatewayd.sources.replay import load_replay
from gatewayd.sources.simulate import (
    Simulation,
    sawtooth_value,
    sine_value,
    step_value,
)
from tests.conftest import VALID, pairwise
from tests.helpers.clocks import FakeClock

N = 10_000
_ADAPTER: TypeAdapter[Any] = TypeAdapter(SimulateSource)


def pattern(**kw: Any) -> Any:
    return _ADAPTER.validate_python(kw)


def sim(clock: FakeClock | None = None, **kw: Any) -> Simulation:
    return Simulation(pattern(**kw), clock=clock or FakeClock(0.0))


def draws(source: Simulation, n: int = N) -> list[Any]:
    return [source.next_value() for _ in range(n)]


async def reads(source: Simulation, n: int) -> list[Any]:
    """Values of n reads, a failed read as the SourceError's message."""
    out: list[Any] = []
    for _ in range(n):
        try:
            out.append(await source.read())
        except SourceError as exc:
            out.append(str(exc))
    return out


# ---------------------------------------------------------------------------------------------- time shapes


def test_sine_hits_min_and_max_at_the_right_phases_with_its_period() -> None:
    p: SinePattern = pattern(pattern="sine", min=10, max=30, period=3600)
    assert sine_value(p, 0) == pytest.approx(20)  # middle, rising
    assert sine_value(p, 900) == pytest.approx(30)  # a quarter period: max
    assert sine_value(p, 1800) == pytest.approx(20)
    assert sine_value(p, 2700) == pytest.approx(10)  # three quarters: min
    for t in (0, 123.4, 999, 2000, 1.7e9):
        assert sine_value(p, t + 3600) == pytest.approx(sine_value(p, t), abs=1e-6)
    samples = [sine_value(p, t) for t in range(3600)]
    assert min(samples) == pytest.approx(10) and max(samples) == pytest.approx(30)
    assert statistics.mean(samples) == pytest.approx(20, abs=1e-6)
    # phase shifts by a fraction of a period: a quarter puts the max at t = 0
    shifted: SinePattern = pattern(pattern="sine", min=10, max=30, period=3600, phase=0.25)
    assert sine_value(shifted, 0) == pytest.approx(30)
    assert sine_value(shifted, 1800) == pytest.approx(10)


def test_sine_is_a_function_of_wall_clock_time_so_gateways_agree() -> None:
    clock = FakeClock(1_700_000_123.0)
    a = sim(clock, pattern="sine", min=0, max=1, period=60, seed=1)
    b = sim(clock, pattern="sine", min=0, max=1, period=60, seed=2)
    p: SinePattern = pattern(pattern="sine", min=0, max=1, period=60)
    assert a.next_value() == b.next_value() == sine_value(p, clock.now)
    assert a.rng is None  # nothing random to draw: no generator is allocated


def test_sawtooth_rises_linearly_and_wraps_at_the_period() -> None:
    p: SawtoothPattern = pattern(pattern="sawtooth", min=-5, max=5, period=100)
    values = [sawtooth_value(p, t) for t in range(300)]
    assert values[0] == -5 and values[100] == -5 and values[200] == -5
    assert values[50] == pytest.approx(0)
    assert sawtooth_value(p, 99.999) == pytest.approx(5, abs=1e-3)
    rises = [b - a for a, b in pairwise(values)]
    assert sum(1 for r in rises if r < 0) == 2  # the two wraps
    assert all(r == pytest.approx(0.1) for r in rises if r > 0)  # (max - min) / period per second
    assert all(-5 <= v < 5 for v in values)
    shifted: SawtoothPattern = pattern(pattern="sawtooth", min=0, max=10, period=100, phase=0.5)
    assert sawtooth_value(shifted, 0) == pytest.approx(5)


def test_step_holds_each_value_for_hold_and_cycles() -> None:
    p: StepPattern = pattern(pattern="step", values=[1, 2, 3], hold="1m")
    seen = [step_value(p, t) for t in range(0, 360)]
    assert seen[:60] == [1] * 60 and seen[60:120] == [2] * 60 and seen[120:180] == [3] * 60
    assert seen[180:] == seen[:180]
    # aligned to the epoch, not to when the source started
    clock = FakeClock(1_700_000_000.0)  # = 28333333 minutes + 20 s; 28333333 % 3 == 1
    source = sim(clock, pattern="step", values=["idle", "run", "stop"], hold=60)
    assert source.next_value() == "run"
    clock.now += 40
    assert source.next_value() == "stop"


# ---------------------------------------------------------------------------------------------- random shapes


def test_random_walk_stays_in_range_moves_by_at_most_step_and_is_seeded() -> None:
    walk = draws(sim(pattern="random_walk", min=0, max=10, step=0.5, seed=3))
    assert walk == draws(sim(pattern="random_walk", min=0, max=10, step=0.5, seed=3))
    assert walk != draws(sim(pattern="random_walk", min=0, max=10, step=0.5, seed=4))
    assert walk[0] == 5  # the middle of the range unless 'start' says otherwise
    assert all(0 <= v <= 10 for v in walk)
    changes = [b - a for a, b in pairwise(walk)]
    assert max(abs(c) for c in changes) <= 0.5 + 1e-9
    # uniform steps in [-step, step]: stddev step / sqrt(3); the walk visits the whole range
    assert statistics.pstdev(changes) == pytest.approx(0.5 / math.sqrt(3), rel=0.05)
    assert min(walk) < 1 and max(walk) > 9
    assert sim(pattern="random_walk", min=0, max=10, start=2, seed=1).next_value() == 2


def test_uniform_mean_and_variance_match_theory() -> None:
    values = draws(sim(pattern="uniform", min=2, max=8, seed=7))
    assert all(2 <= v <= 8 for v in values)
    assert statistics.mean(values) == pytest.approx(5, abs=0.06)  # sigma of the mean ~ 0.017
    assert statistics.pvariance(values) == pytest.approx(36 / 12, rel=0.05)
    assert values == draws(sim(pattern="uniform", min=2, max=8, seed=7))


def test_gaussian_mean_and_stddev_match_and_clamp_holds() -> None:
    values = draws(sim(pattern="gaussian", mean=50, stddev=4, seed=5))
    assert statistics.mean(values) == pytest.approx(50, abs=0.15)
    assert statistics.pstdev(values) == pytest.approx(4, rel=0.04)
    clamped = draws(sim(pattern="gaussian", mean=50, stddev=4, clamp=[46, 54], seed=5))
    assert all(46 <= v <= 54 for v in clamped)
    # one sigma each side: ~15.9% of draws land on each bound
    assert clamped.count(46) / N == pytest.approx(0.159, abs=0.015)
    assert clamped.count(54) / N == pytest.approx(0.159, abs=0.015)


def test_choice_frequencies_follow_weights() -> None:
    values = draws(sim(pattern="choice", values=["a", "b", "c", "d"], weights=[1, 2, 0, 7], seed=9))
    assert values.count("a") / N == pytest.approx(0.1, abs=0.015)
    assert values.count("b") / N == pytest.approx(0.2, abs=0.02)
    assert values.count("c") == 0  # weight zero: never
    assert values.count("d") / N == pytest.approx(0.7, abs=0.02)
    even = draws(sim(pattern="choice", values=[10, 20], seed=9))
    assert even.count(10) / N == pytest.approx(0.5, abs=0.02)


# ---------------------------------------------------------------------------------------------- options


def test_noise_has_the_configured_stddev() -> None:
    values = draws(sim(pattern="constant", value=10, noise=0.5, seed=2))
    # the standard error of the mean is 0.5 / sqrt(N) = 0.005: allow 5 of them
    assert statistics.mean(values) == pytest.approx(10, abs=0.025)
    assert statistics.pstdev(values) == pytest.approx(0.5, rel=0.04)


def test_spikes_come_at_their_rate_with_their_size_both_ways() -> None:
    values = draws(sim(pattern="constant", value=20.0, spike={"probability": 0.05, "size": 7}, seed=2))
    jumps = [v - 20 for v in values if v != 20]
    assert len(jumps) / N == pytest.approx(0.05, abs=0.01)
    assert {abs(j) for j in jumps} == {7}
    assert sum(1 for j in jumps if j > 0) / len(jumps) == pytest.approx(0.5, abs=0.1)


def test_decimals_round_last_after_noise_and_spike() -> None:
    assert sim(pattern="constant", value=1.23456, decimals=2).next_value() == 1.23
    assert sim(pattern="constant", value=7, decimals=0).next_value() == 7
    values = draws(sim(pattern="sine", min=0, max=1, period=7, noise=0.3, decimals=1, seed=4), 200)
    assert all(round(v, 1) == v for v in values)
    assert len(set(values)) > 5  # the noise is there, rounded


async def test_dropout_fails_reads_at_its_rate() -> None:
    out = await reads(sim(pattern="uniform", min=0, max=1, dropout=0.2, seed=8), N)
    failures = [v for v in out if isinstance(v, str)]
    assert set(failures) == {"simulated dropout"}
    assert len(failures) / N == pytest.approx(0.2, abs=0.015)


def test_same_seed_same_values_with_every_option() -> None:
    kw: dict[str, Any] = {
        "pattern": "gaussian",
        "mean": 0,
        "stddev": 1,
        "noise": 0.1,
        "spike": {"probability": 0.1, "size": 3},
        "decimals": 3,
        "seed": 42,
    }
    assert draws(sim(**kw), 500) == draws(sim(**kw), 500)
    assert len(set(draws(sim(**{**kw, "seed": None}), 50))) > 1  # unseeded works too


@pytest.mark.parametrize("value", ["on", True, False])
def test_text_and_booleans_skip_numeric_options(value: object) -> None:
    source = sim(
        pattern="constant", value=value, noise=5, spike={"probability": 1, "size": 9}, decimals=0, seed=1
    )
    assert all(v is value or v == value for v in draws(source, 50))
    assert all(type(v) is type(value) for v in draws(source, 50))


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"pattern": "constant", "value": "door open"}, "door open"),
        ({"pattern": "constant", "value": True}, "1"),
        ({"pattern": "constant", "value": False}, "0"),
        ({"pattern": "constant", "value": 3}, "3"),
        ({"pattern": "constant", "value": 21.5, "decimals": 0}, "22"),
    ],
)
def test_constants_go_to_thingplus_as_expected(kw: dict[str, Any], expected: str) -> None:
    assert thingplus_value(sim(**kw).next_value()) == expected


def test_choice_of_booleans_goes_to_thingplus_as_1_and_0() -> None:
    values = draws(sim(pattern="choice", values=[True, False], weights=[3, 1], seed=6), 4000)
    sent = [thingplus_value(v) for v in values]
    assert set(sent) == {"1", "0"}
    assert sent.count("1") / 4000 == pytest.approx(0.75, abs=0.03)


# ---------------------------------------------------------------------------------------------- replay


def _csv(tmp_path: Path, text: str, name: str = "replay.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


async def test_replay_of_unix_seconds_keeps_spacing_and_loops(tmp_path: Path) -> None:
    file = _csv(tmp_path, "time,value\n1700000000,1.5\n1700000010,2\n1700000030,on\n")
    clock = FakeClock(5_000.0)
    source = sim(clock, pattern="replay", file=file)
    got = []
    for t in (0, 9.9, 10, 29, 30, 49.9, 50, 60, 85):  # duration 50: the last row lasts the last gap (20)
        clock.now = 5_000.0 + t
        got.append(await source.read())
    assert got == [1.5, 1.5, 2, 2, "on", "on", 1.5, 2, "on"]


async def test_replay_of_unix_milliseconds_is_detected(tmp_path: Path) -> None:
    file = _csv(tmp_path, "time,value\n1700000000000,10\n1700000000500,11\n1700000002000,12\n")
    replay = load_replay(file)
    assert replay.offsets == (0.0, 0.5, 2.0)
    assert replay.duration == 3.5


async def test_replay_of_offsets_without_loop_finishes(tmp_path: Path) -> None:
    file = _csv(tmp_path, "offset_s,value\n0,20\n1,21\n2,22\n")
    clock = FakeClock(100.0)
    source = sim(clock, pattern="replay", file=file, loop=False)
    got = []
    for _ in range(5):
        got.append((await reads(source, 1))[0])
        clock.now += 1
    assert got[:3] == [20, 21, 22]
    assert all(g.startswith("replay finished") for g in got[3:])


async def test_replay_values_take_the_common_options(tmp_path: Path) -> None:
    file = _csv(tmp_path, 'offset_s,value\n0,1.26\n1,"open, latched"\n')
    clock = FakeClock(0.0)
    source = sim(clock, pattern="replay", file=file, decimals=1)
    assert await source.read() == 1.3
    clock.now = 1
    assert await source.read() == "open, latched"


async def test_replay_relative_file_is_resolved_against_the_inventory(tmp_path: Path) -> None:
    _csv(tmp_path, "offset_s,value\n0,7\n")
    text = VALID.replace(
        "{pattern: sine, min: 18, max: 26, period: 1h}", "{pattern: replay, file: replay.csv}"
    )
    inventory = parse_inventory(text, env={}, base_dir=tmp_path)
    p = inventory.devices[0].sensors[0].simulate
    assert p is not None
    assert await Simulation(p, clock=FakeClock(0.0)).read() == 7  # a single row is a constant


async def test_replay_follows_an_edited_file(tmp_path: Path) -> None:
    file = _csv(tmp_path, "offset_s,value\n0,1\n")
    assert load_replay(file).values == (1,)
    _csv(tmp_path, "offset_s,value\n0,2\n1,3\n")
    assert load_replay(file).values == (2, 3)


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("", "", "is empty"),
        ("when,value\n1,2\n", ":1:", "header must be 'time,value' or 'offset_s,value'"),
        ("time,value\n", ":1:", "has no data rows"),
        ("time,value\n1,2\n\nsoon,3\n", ":4:", "time 'soon' is not a number"),
        ("offset_s,value\n0,1\n1,2,3\n", ":3:", "expected 2 columns (offset_s,value), found 3"),
        ("offset_s,value\n0,1\n0,2\n", ":3:", "offset_s 0 is not after the previous row's (0)"),
        ("offset_s,value\n0,1\n1, \n", ":3:", "value is empty"),
        ("offset_s,value\n0,1\nnan,2\n", ":3:", "is not a finite number"),
    ],
)
async def test_bad_replay_files_fail_reads_with_a_located_error(
    tmp_path: Path, text: str, where: str, message: str
) -> None:
    file = _csv(tmp_path, text)
    with pytest.raises(SourceError) as exc:
        load_replay(file)
    assert str(exc.value).startswith(f"replay {file}{where}")
    assert message in str(exc.value)
    # the source is still made (the daemon goes on), and every read fails with the same message
    source = sim(pattern="replay", file=file)
    assert await reads(source, 2) == [str(exc.value)] * 2


async def test_missing_replay_file_fails_reads(tmp_path: Path) -> None:
    source = sim(pattern="replay", file=str(tmp_path / "gone.csv"))
    (message,) = await reads(source, 1)
    assert message.startswith(f"replay {tmp_path / 'gone.csv'}: cannot read")


# ---------------------------------------------------------------------------------------------- validation


def _problem(simulate: dict[str, Any]) -> str:
    text = VALID.replace("{pattern: sine, min: 18, max: 26, period: 1h}", json.dumps(simulate))
    with pytest.raises(ConfigError) as exc:
        parse_inventory(text, "inv.yaml", env={})
    return str(exc.value)


@pytest.mark.parametrize(
    ("simulate", "path", "message"),
    [
        (
            {"pattern": "choice", "values": ["a", "b"], "weights": [1]},
            "simulate.weights",
            "has 1 entries but values has 2",
        ),
        ({"pattern": "choice", "values": [1, 2], "weights": [0, 0]}, "simulate.weights", "all be zero"),
        ({"pattern": "gaussian", "clamp": [3, 1]}, "simulate.clamp", "low (3) must not be greater"),
        ({"pattern": "gaussian", "stddev": 0}, "simulate.stddev", "greater than 0"),
        ({"pattern": "uniform", "min": 5, "max": 1}, "simulate.max", "must not be less than min (5)"),
        ({"pattern": "random_walk", "max": 10, "start": 11}, "simulate.start", "between min (0)"),
        ({"pattern": "step", "values": []}, "simulate.values", "at least 1 item"),
        ({"pattern": "constant", "value": [1]}, "simulate.value", "a number, a string or a boolean"),
        ({"pattern": "sine", "spike": {"probability": 2, "size": 1}}, "simulate.spike.probability", ""),
        ({"pattern": "sine", "dropout": -0.1}, "simulate.dropout", "greater than or equal to 0"),
    ],
)
def test_bad_pattern_configs_name_the_key(simulate: dict[str, Any], path: str, message: str) -> None:
    problem = _problem(simulate)
    assert f"devices[0].sensors[0].{path}: " in problem
    assert message in problem


def test_non_finite_numbers_are_refused() -> None:
    text = VALID.replace("{pattern: sine, min: 18, max: 26, period: 1h}", "{pattern: sine, min: .nan}")
    with pytest.raises(ConfigError, match=r"simulate\.min: input should be a finite number"):
        parse_inventory(text, "inv.yaml", env={})


def correlation(xs: list[float], ys: list[float]) -> float:
    """Pearson's r, as statistics.correlation (Python 3.10+) computes it."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    return cov / math.sqrt(sum((x - mx) ** 2 for x in xs) * sum((y - my) ** 2 for y in ys))


def test_seeded_random_is_uniform_and_independent_across_seeds() -> None:
    """The small generator behind seeded sources: mean, spread and no correlation between seeds."""
    from gatewayd.sources.randomness import SeededRandom

    a, b = SeededRandom(1), SeededRandom(2)
    xs = [a.random() for _ in range(N)]
    ys = [b.random() for _ in range(N)]
    assert all(0.0 <= x < 1.0 for x in xs)
    assert statistics.mean(xs) == pytest.approx(0.5, abs=0.015)
    assert statistics.pvariance(xs) == pytest.approx(1 / 12, rel=0.05)
    assert abs(correlation(xs, ys)) < 0.04
    assert [SeededRandom(7).random() for _ in range(3)] == [SeededRandom(7).random() for _ in range(3)]
