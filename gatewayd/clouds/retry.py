"""Retry policy shared by the three clients: capped exponential backoff with full jitter, bounded.

Pure maths that takes its randomness as an argument (:meth:`RetryPolicy.delay`), and the loop that
applies it to transient errors. Kept apart from the HTTP layer so the daemon can use the policy without
importing aiohttp.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar

import structlog

from gatewayd.errors import RateLimitedError, TransientError

log = structlog.get_logger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter, bounded in attempts.

    ``attempts`` counts every try, the first included. ``max_retry_after`` bounds how long a server's
    Retry-After may make us wait in one step.
    """

    attempts: int = 4
    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 300.0

    def delay(self, retry: int, rand: float, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0-based), ``rand`` in [0, 1).

        A server's Retry-After wins (bounded by ``max_retry_after``); otherwise full jitter:
        uniform in [0, min(cap, base * 2**retry)).
        """
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_retry_after)
        ceiling = min(self.cap, self.base * (2**retry))
        return rand * ceiling


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from ``now`` (unix seconds); accepts delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rand: Callable[[], float] = random.random,
) -> T:
    """Run ``attempt`` until it succeeds, retrying only TransientError, at most ``policy.attempts`` times.

    ``attempt`` is a factory so each try is built anew (fresh timestamp, fresh signature).
    """
    retry = 0
    while True:
        try:
            return await attempt()
        except TransientError as exc:
            if retry + 1 >= policy.attempts:
                raise
            retry_after = exc.retry_after if isinstance(exc, RateLimitedError) else None
            wait = policy.delay(retry, rand(), retry_after)
            log.debug(
                "retrying",
                cloud=exc.cloud,
                operation=exc.operation,
                error=exc.message,
                wait_s=round(wait, 3),
                retry=retry + 1,
            )
            retry += 1
            await sleep(wait)
