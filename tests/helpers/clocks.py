"""Fake clocks, moved by hand: no test sleeps to make time pass.

:class:`FakeClock` is one clock (call it for the time); :class:`Clocks` a wall clock and a monotonic one,
which time passing moves together and NTP moves apart.
"""

from __future__ import annotations


class FakeClock:
    """Seconds (unix or monotonic) that move only when told.

    ``sleep`` stands in for ``asyncio.sleep`` in code that takes a sleep function: it records the wait
    and moves the clock by it, or by ``min_sleep`` when that is longer (so that code sleeping 0 s in a
    loop still sees time pass).
    """

    def __init__(self, now: float = 1_700_000_000.0, *, min_sleep: float = 0.0) -> None:
        self.now = now
        self.min_sleep = min_sleep
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += max(seconds, self.min_sleep)


class Clocks:
    """A wall clock and a monotonic clock for tests (seconds): ``clocks.wall()``, ``clocks.mono()``.

    ``advance`` moves both, as time passing does; ``jump`` moves the wall clock alone, as NTP or a
    manual date change does.
    """

    def __init__(self, wall: float, mono: float = 1000.0) -> None:
        self.wall = FakeClock(wall)
        self.mono = FakeClock(mono)

    def advance(self, seconds: float) -> None:
        self.wall.advance(seconds)
        self.mono.advance(seconds)

    def jump(self, seconds: float) -> None:
        self.wall.advance(seconds)
