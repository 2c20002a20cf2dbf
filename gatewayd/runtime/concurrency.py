"""Running many small coroutines with a bound, without creating them all up front.

Why not ``gather`` under a semaphore: gather makes every coroutine at once, and 10,000 suspended
coroutines (a heartbeat or a registration at 10,000 sensors) cost tens of MB; a few workers pulling
from one iterator hold only ``limit`` of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def bounded_map(func: Callable[[T], Awaitable[R]], items: Iterable[T], limit: int) -> list[R]:
    """``[await func(item) for item in items]`` with at most ``limit`` running at once, results in order.

    The first exception stops the workers from starting new items and is raised once the running ones
    finish (like ``gather`` without ``return_exceptions``).
    """
    results: list[R | None] = []
    feed = enumerate(items)  # pulled lazily by the workers: a generator of 10,000 items stays one
    failure: list[BaseException] = []

    async def worker() -> None:
        for index, item in feed:
            if failure:
                return
            try:
                result = await func(item)
            except Exception as exc:
                failure.append(exc)
                return
            if index >= len(results):
                results.extend([None] * (index + 1 - len(results)))
            results[index] = result

    await asyncio.gather(*(worker() for _ in range(max(1, limit))))
    if failure:
        raise failure[0]
    return results  # type: ignore[return-value]
