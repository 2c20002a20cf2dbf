"""bounded_map: results in order, never more than ``limit`` at once, items pulled lazily, first error."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from gatewayd.runtime.concurrency import bounded_map


async def test_results_come_in_input_order_with_at_most_limit_running() -> None:
    running = peak = 0

    async def slow_square(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001 * (n % 3))  # finish out of order
        running -= 1
        return n * n

    assert await bounded_map(slow_square, range(50), 4) == [n * n for n in range(50)]
    assert peak == 4


async def test_items_are_pulled_lazily_not_all_up_front() -> None:
    pulled = 0
    started: list[int] = []

    def items() -> Iterator[int]:
        nonlocal pulled
        for n in range(1000):
            pulled += 1
            yield n

    async def record(n: int) -> int:
        started.append(pulled)
        await asyncio.sleep(0)
        return n

    assert await bounded_map(record, items(), 8) == list(range(1000))
    assert max(p - i for i, p in enumerate(started)) <= 8, "never more than the bound pulled ahead"


async def test_the_first_error_stops_new_items_and_is_raised() -> None:
    seen: list[int] = []

    async def fail_at_3(n: int) -> int:
        seen.append(n)
        await asyncio.sleep(0)
        if n == 3:
            raise ValueError("three")
        return n

    with pytest.raises(ValueError, match="three"):
        await bounded_map(fail_at_3, range(100), 2)
    assert max(seen) < 6


async def test_nothing_in_nothing_out() -> None:
    async def never(n: int) -> int:
        raise AssertionError("not called")

    assert await bounded_map(never, [], 16) == []
