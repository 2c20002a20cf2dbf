"""Simulated sensors: deterministic with a ``seed``, good enough to test dashboards, alarms and load.

Time-shaped patterns (``sine``, ``sawtooth``, ``step``) are pure functions of the wall-clock time of the
read, so two gateways with the same inventory draw the same curve. Random patterns (``random_walk``,
``uniform``, ``gaussian``, ``choice``) and the common options draw from the source's own seeded
generator (:mod:`gatewayd.sources.randomness`). ``replay`` plays a CSV back, loaded once
(:mod:`gatewayd.sources.replay`).

Common options apply in this order to numeric values: base value -> ``noise`` (gaussian) -> ``spike`` ->
``decimals`` (rounding); text and boolean values skip them. ``dropout`` fails a read (before anything
is computed) with that probability.

Reads are cheap (this runs for thousands of sensors at 1 Hz): the pattern is dispatched once at
construction, no file I/O happens per read, and nothing is allocated per read beyond the value.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from typing import Any

from gatewayd.errors import SourceError
from gatewayd.inventory.sources import (
    ChoicePattern,
    ConstantPattern,
    GaussianPattern,
    RandomWalkPattern,
    ReplayPattern,
    SawtoothPattern,
    Scalar,
    SimulatePattern,
    SinePattern,
    StepPattern,
    UniformPattern,
)
from gatewayd.sources.randomness import SHARED_RNG, Rng, SeededRandom
from gatewayd.sources.replay import load_replay

Pattern = SimulatePattern

# ---------------------------------------------------------------------------------------------- pure shapes


def sine_value(pattern: SinePattern, t: float) -> float:
    """The sine between min and max with the given period (s) and phase (fraction of a period).

    It is at its middle, rising, when ``t / period + phase`` is a whole number, at max a quarter later.
    """
    mid = (pattern.max + pattern.min) / 2
    amplitude = (pattern.max - pattern.min) / 2
    return mid + amplitude * math.sin(2 * math.pi * (t / pattern.period + pattern.phase))


def sawtooth_value(pattern: SawtoothPattern, t: float) -> float:
    """Rises linearly from min (when ``t / period + phase`` is whole) towards max, then drops back."""
    fraction = (t / pattern.period + pattern.phase) % 1.0
    return pattern.min + (pattern.max - pattern.min) * fraction


def step_value(pattern: StepPattern, t: float) -> Scalar:
    """``values[i]`` during the i-th ``hold`` of each cycle, cycles aligned to the unix epoch."""
    return pattern.values[int(t // pattern.hold) % len(pattern.values)]


# ---------------------------------------------------------------------------------------------- the source


class Simulation:
    """A source that computes its value; fails only when ``dropout`` says so (or a replay is over/bad).

    ``clock`` is the wall clock (time-shaped patterns); replays measure elapsed time with ``monotonic``
    when given, else with ``clock``. A replay file that cannot be loaded does not stop construction:
    every read fails with the located problem, so the sensor reports 'err' and the rest go on.
    """

    # Slotted: a simulation of 10,000 sensors holds 10,000 of these.
    __slots__ = (
        "_args",
        "_base",
        "_decimals",
        "_dropout",
        "_elapsed_clock",
        "_finishing",
        "_noise",
        "_spike_p",
        "_spike_size",
        "clock",
        "rng",
    )

    def __init__(
        self,
        pattern: Pattern,
        *,
        clock: Callable[[], float],
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self.clock = clock
        self._elapsed_clock = monotonic or clock
        self._dropout = pattern.dropout
        self._noise = pattern.noise
        self._spike_p = pattern.spike.probability if pattern.spike is not None else 0.0
        self._spike_size = pattern.spike.size if pattern.spike is not None else 0.0
        self._decimals = pattern.decimals
        self._finishing = bool(self._noise or self._spike_p or self._decimals is not None)
        # A generator's state is ~2.5 kB (25 MB at 10,000 sensors): only a seeded source that draws
        # random numbers gets its own; unseeded ones share one, since nobody can expect a sequence.
        draws = self._dropout or self._noise or self._spike_p
        random_pattern = isinstance(
            pattern, (RandomWalkPattern, UniformPattern, GaussianPattern, ChoicePattern)
        )
        self.rng: Rng | None
        if not (draws or random_pattern):
            self.rng = None
        elif pattern.seed is None:
            self.rng = SHARED_RNG
        else:
            self.rng = SeededRandom(pattern.seed)
        self._base = self._dispatch(pattern)

    def _dispatch(self, p: Pattern) -> Callable[[], Scalar]:
        # Constant and uniform, what big simulations are made of, read through a method and ``_args``:
        # ~250 bytes a sensor less than a closure and its cells. The rest keep their closures.
        self._args: tuple[Any, ...] = ()
        rng = self.rng
        clock = self.clock
        if isinstance(p, ConstantPattern):
            self._args = (p.value,)
            return self._constant
        if isinstance(p, SinePattern):
            return lambda: sine_value(p, clock())
        if isinstance(p, SawtoothPattern):
            return lambda: sawtooth_value(p, clock())
        if isinstance(p, StepPattern):
            return lambda: step_value(p, clock())
        if isinstance(p, ReplayPattern):
            return self._replay_reader(p)
        assert rng is not None
        if isinstance(p, UniformPattern):
            self._args = (p.min, p.max)
            return self._uniform
        if isinstance(p, GaussianPattern):
            return self._gaussian(p, rng)
        if isinstance(p, ChoicePattern):
            return self._choice(p, rng)
        return self._random_walk(p, rng)

    async def read(self) -> Scalar:
        return self.read_now()

    def read_now(self) -> Scalar:
        """The read itself: computed, never waits, so the sampler calls it inline (no task per read)."""
        if self._dropout and self.rng is not None and self.rng.random() < self._dropout:
            raise SourceError("simulated dropout")
        return self.next_value()

    def next_value(self) -> Scalar:
        """The next value, without dropout: base, then noise, spike and rounding for numbers."""
        value = self._base()
        if self._finishing and (type(value) is float or type(value) is int):
            return self._finish(value)
        return value

    def _finish(self, value: float) -> float:
        if self._noise:
            assert self.rng is not None
            value += self.rng.gauss(0.0, self._noise)
        if self._spike_p:
            assert self.rng is not None
            r = self.rng.random()
            if r < self._spike_p:
                # One draw decides both whether and which way: below p/2 up, else down.
                value += self._spike_size if r < self._spike_p / 2 else -self._spike_size
        if self._decimals is not None:
            value = round(value, self._decimals)
        return value

    def _constant(self) -> Scalar:
        value: Scalar = self._args[0]
        return value

    def _uniform(self) -> float:
        assert self.rng is not None
        low, high = self._args
        return self.rng.uniform(low, high)

    @staticmethod
    def _gaussian(p: GaussianPattern, rng: Rng) -> Callable[[], float]:
        mean, stddev = p.mean, p.stddev
        if p.clamp is None:
            return lambda: rng.gauss(mean, stddev)
        low, high = p.clamp
        return lambda: min(high, max(low, rng.gauss(mean, stddev)))

    @staticmethod
    def _choice(p: ChoicePattern, rng: Rng) -> Callable[[], Scalar]:
        values = tuple(p.values)
        if p.weights is None:
            return lambda: rng.choice(values)
        cumulative = tuple(_accumulate(p.weights))
        total, last = cumulative[-1], len(values) - 1

        def pick() -> Scalar:
            return values[min(bisect.bisect_right(cumulative, rng.random() * total), last)]

        return pick

    @staticmethod
    def _random_walk(p: RandomWalkPattern, rng: Rng) -> Callable[[], float]:
        low, high = p.min, p.max
        step = p.step if p.step is not None else (high - low) / 100 or 1.0
        position = p.start if p.start is not None else (low + high) / 2
        first = True

        def walk() -> float:
            nonlocal position, first
            if first:
                first = False
                return position
            position += rng.uniform(-step, step)
            # Reflect at the bounds so the walk never sticks to an edge; |change| stays <= step.
            if position > high:
                position = max(low, 2 * high - position)
            elif position < low:
                position = min(high, 2 * low - position)
            return position

        return walk

    def _replay_reader(self, p: ReplayPattern) -> Callable[[], Scalar]:
        try:
            replay = load_replay(p.file)
        except SourceError as exc:
            error = exc

            def broken() -> Scalar:
                raise SourceError(str(error))

            return broken
        elapsed_clock, loop = self._elapsed_clock, p.loop
        start: float | None = None

        def play() -> Scalar:
            nonlocal start
            now = elapsed_clock()
            if start is None:
                start = now  # the first read plays the first row
            return replay.at(max(0.0, now - start), loop=loop)

        return play

    async def close(self) -> None:
        return None


def _accumulate(weights: list[float]) -> list[float]:
    total, out = 0.0, []
    for weight in weights:
        total += weight
        out.append(total)
    return out
