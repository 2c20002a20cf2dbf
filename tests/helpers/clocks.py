"""Fake clocks, moved by hand: no test sleeps to make time pass.

:class:`FakeClock` is one clock (call it for the time); :class:`Clocks` a wall clock and a monotonic one,
which time passing moves together and NTP moves apart. :class:`ManualSleeps` a sleep that ends when the test
says.
"""

from __future__ import annotations

import asyncio
from collections import deque


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


class ManualSleeps:
    """A sleep function whose sleeps end only when the test says: for code with timers as tasks.

    ``sleep`` (pass it where ``asyncio.sleep`` would go) waits; :meth:`wake` ends the oldest pending sleep,
    moves ``clock`` by its length and lets the woken task run on until it waits again.
    """

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.pending: deque[tuple[float, asyncio.Future[None]]] = deque()

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((seconds, future))
        await future

    async def settle(self) -> None:
        """Let every ready task run until it waits (a few loop turns, no time passing)."""
        for _ in range(20):
            await asyncio.sleep(0)

    def waiting(self) -> list[float]:
        return [seconds for seconds, future in self.pending if not future.done()]

    async def wake(self) -> float:
        """End the oldest sleep still pending; how long it was."""
        await self.settle()
        while self.pending:
            seconds, future = self.pending.popleft()
            if not future.done():  # a cancelled sleep is skipped
                self.clock.advance(seconds)
                future.set_result(None)
                await self.settle()
                return seconds
        raise AssertionError("nothing is sleeping")
