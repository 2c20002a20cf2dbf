"""The random numbers of simulated sensors: a small seeded generator, and the one shared by unseeded ones.

A seeded simulation must draw the same sequence on every gateway with the same inventory, and thousands
of seeded sensors must not each carry ``random.Random``'s state; an unseeded one shares a single
generator, since nobody can expect its sequence.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import TypeVar, Union

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
SHARED_RNG = random.Random()
