"""Simulated sensors: deterministic with a ``seed``, good enough to test dashboards, alarms and load.

Time-shaped patterns (``sine``, ``sawtooth``, ``step``) are pure functions of the wall-clock time of the
read, so two gateways with the same inventory draw the same curve. Random patterns (``random_walk``,
``uniform``, ``gaussian``, ``choice``) and the common options use the source's own
``random.Random(seed)``. ``replay`` plays a CSV back, loaded once.

Common options apply in this order to numeric values: base value -> ``noise`` (gaussian) -> ``spike`` ->
``decimals`` (rounding); text and boolean values skip them. ``dropout`` fails a read (before anything
is computed) with that probability.

Reads are cheap (this runs for thousands of sensors at 1 Hz): the pattern is dispatched once at
construction, no file I/O happens per read, and nothing is allocated per read beyond the value.
"""

from __future__ import annotations

import bisect
import csv
import functools
import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, Union

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

Pattern = SimulatePattern

_MASK64 = (1 << 64) - 1
T = TypeVar("T")


class SeededRandom:
    """A seeded generator in a few dozen bytes instead of ``random.Random``'s 2.5 kB (25 MB at 10,000
    seeded sensors): splitmix64, statistically sound for simulations (never for anything secret).

    It offers what the patterns use: ``random``, ``uniform``, ``gauss`` and ``choice``.
    """

    __slots__ = ("_state", "gauss_next")

    def __init__(self, seed: int) -> None:
        self._state = seed & _MASK64
        self.gauss_next: float | None = None

    def random(self) -> float:
        """A float in [0, 1) with 53 random bits."""
        self._state = z = (self._state + 0x9E3779B97F4A7C15) & _MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return ((z ^ (z >> 31)) >> 11) * 1.1102230246251565e-16  # 2**-53

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.random()

    def gauss(self, mu: float, sigma: float) -> float:
        """Box-Muller, as the standard library does it (one pair of draws gives two values)."""
        z = self.gauss_next
        self.gauss_next = None
        if z is None:
            angle = self.random() * math.tau
            radius = math.sqrt(-2.0 * math.log(1.0 - self.random()))
            z = math.cos(angle) * radius
            self.gauss_next = math.sin(angle) * radius
        return mu + z * sigma

    def choice(self, seq: Sequence[T]) -> T:
        return seq[min(int(self.random() * len(seq)), len(seq) - 1)]


#: What the patterns draw from: ``random.Random`` (shared, unseeded) or :class:`SeededRandom`.
Rng = Union[random.Random, SeededRandom]

#: The generator of every source without a seed.
_SHARED_RNG = random.Random()

#: Unix times above this are taken as milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
MS_THRESHOLD = 1e11

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


# ---------------------------------------------------------------------------------------------- replay


@dataclass(frozen=True)
class Replay:
    """A loaded replay: offsets (s, from 0, strictly increasing) and the value of each row."""

    file: str
    offsets: tuple[float, ...]
    values: tuple[Scalar, ...]
    #: How long one play lasts: the last offset plus the gap before it (0 for a single row).
    duration: float

    def at(self, elapsed: float, *, loop: bool) -> Scalar:
        """The value ``elapsed`` seconds into the play; SourceError('replay finished') past the end."""
        if elapsed >= self.duration and self.duration > 0:
            if not loop:
                raise SourceError(f"replay finished: {self.file} lasted {self.duration:g} s")
            elapsed %= self.duration
        index = bisect.bisect_right(self.offsets, elapsed) - 1
        return self.values[index if index > 0 else 0]


def load_replay(file: str) -> Replay:
    """Read and check a replay CSV; SourceError naming the file and line of the first problem.

    The header is ``time,value`` (unix seconds, or milliseconds when the numbers are that large) or
    ``offset_s,value``. Values are numbers (int or float) or else text. Times must increase.
    """
    try:
        stat = os.stat(file)
    except OSError as exc:
        raise SourceError(f"replay {file}: cannot read: {exc.strerror or exc}") from None
    # Many sensors often replay the same file: parse it once while it is unchanged.
    return _load_replay(file, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _load_replay(file: str, _mtime_ns: int, _size: int) -> Replay:
    def problem(line: int, message: str) -> SourceError:
        return SourceError(f"replay {file}:{line}: {message}")

    try:
        with open(file, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            rows = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    except OSError as exc:
        raise SourceError(f"replay {file}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SourceError(f"replay {file}: is not UTF-8 text") from None
    except csv.Error as exc:
        raise SourceError(f"replay {file}: is not valid CSV: {exc}") from None
    if not rows:
        raise SourceError(f"replay {file}: is empty: a header 'time,value' or 'offset_s,value' is needed")
    header_line, header = rows[0]
    kind = ",".join(c.strip().lower() for c in header)
    if kind not in ("time,value", "offset_s,value"):
        raise problem(
            header_line, f"header must be 'time,value' or 'offset_s,value', not {','.join(header)!r}"
        )
    if len(rows) == 1:
        raise problem(header_line, "has no data rows after the header")
    times: list[float] = []
    values: list[Scalar] = []
    column = header[0].strip()
    for line, row in rows[1:]:
        if len(row) != 2:
            raise problem(line, f"expected 2 columns ({column},value), found {len(row)}")
        try:
            at = float(row[0])
        except ValueError:
            raise problem(line, f"{column} {row[0].strip()!r} is not a number") from None
        if not math.isfinite(at):
            raise problem(line, f"{column} {row[0].strip()!r} is not a finite number")
        if times and at <= times[-1]:
            raise problem(line, f"{column} {row[0].strip()} is not after the previous row's ({times[-1]:g})")
        text = row[1].strip()
        if not text:
            raise problem(line, "value is empty")
        times.append(at)
        values.append(_csv_value(text))
    scale = 0.001 if kind == "time,value" and max(abs(times[0]), abs(times[-1])) > MS_THRESHOLD else 1.0
    offsets = tuple((at - times[0]) * scale for at in times)
    duration = offsets[-1] + (offsets[-1] - offsets[-2]) if len(offsets) > 1 else 0.0
    return Replay(file=file, offsets=offsets, values=tuple(values), duration=duration)


def _csv_value(text: str) -> Scalar:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


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
            self.rng = _SHARED_RNG
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
