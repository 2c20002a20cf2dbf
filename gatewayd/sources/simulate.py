"""Simulated sensors: deterministic with a ``seed``, good enough to test dashboards and alarms.

Time-shaped patterns (sine) are a pure function of the wall-clock time of the read, so two gateways with
the same inventory draw the same curve; random patterns use their own seeded generator.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

from gatewayd.config import ConstantPattern, RandomWalkPattern, SinePattern, UniformPattern
from gatewayd.errors import SourceError

Pattern = ConstantPattern | SinePattern | RandomWalkPattern | UniformPattern


def sine_value(pattern: SinePattern, t: float) -> float:
    """The sine between min and max with the given period (s) and phase (fraction of a period)."""
    mid = (pattern.max + pattern.min) / 2
    amplitude = (pattern.max - pattern.min) / 2
    return mid + amplitude * math.sin(2 * math.pi * (t / pattern.period + pattern.phase))


class Simulation:
    """A source that computes its value; fails only when ``dropout`` says so."""

    def __init__(self, pattern: Pattern, *, clock: Callable[[], float]) -> None:
        self.pattern = pattern
        self.clock = clock
        self.rng = random.Random(pattern.seed)
        self._walk: float | None = None

    async def read(self) -> Any:
        if self.pattern.dropout and self.rng.random() < self.pattern.dropout:
            raise SourceError("simulated dropout")
        return self.next_value()

    def next_value(self) -> Any:
        p = self.pattern
        if isinstance(p, ConstantPattern):
            return p.value
        if isinstance(p, SinePattern):
            return sine_value(p, self.clock())
        if isinstance(p, UniformPattern):
            return self.rng.uniform(p.min, p.max)
        return self._random_walk(p)

    def _random_walk(self, p: RandomWalkPattern) -> float:
        step = p.step if p.step is not None else (p.max - p.min) / 100 or 1.0
        if self._walk is None:
            self._walk = p.start if p.start is not None else (p.min + p.max) / 2
        else:
            self._walk += self.rng.uniform(-step, step)
        # Reflect at the bounds so the walk never sticks to an edge.
        if self._walk > p.max:
            self._walk = max(p.min, 2 * p.max - self._walk)
        elif self._walk < p.min:
            self._walk = min(p.max, 2 * p.min - self._walk)
        return self._walk

    async def close(self) -> None:
        return None
