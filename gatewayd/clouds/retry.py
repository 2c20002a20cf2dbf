"""Retry policy shared by the three clients: capped exponential backoff with full jitter, bounded.

Pure maths that takes its randomness as an argument (:meth:`RetryPolicy.delay`), and the loop that
applies it to transient errors. Kept apart from the HTTP layer so the daemon can use the policy without
importing aiohttp.

A server's Retry-After is waited inside the call only up to ``RetryPolicy.max_retry_after`` (a few
seconds): minutes of it slept in a call would stall that caller (heartbeats, uploads) for minutes. A
longer one ends the call at once, and the transport defers that cloud's next requests until then
(:func:`deferral_s`, :mod:`gatewayd.clouds.deferral`).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import TypeVar

import structlog

from gatewayd.errors import DeferredError, TransientError

log = structlog.get_logger(__name__)

T = TypeVar("T")


#: Longest Retry-After waited inside one call (seconds); longer ones defer the cloud instead.
IN_CALL_RETRY_AFTER_S = 5.0
#: Longest a cloud is deferred by one Retry-After (seconds): a larger (or absurd) value is capped.
MAX_DEFERRAL_S = 600.0


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter, bounded in attempts.

    ``attempts`` counts every try, the first included. ``max_retry_after`` is the longest server's
    Retry-After waited inside a call; a longer one fails the call at once (and defers the cloud).
    """

    attempts: int = 4
    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = IN_CALL_RETRY_AFTER_S

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
    """Retry-After as seconds from ``now`` (unix seconds); accepts delta-seconds or an HTTP date.

    None for anything else (an empty, non-finite or unreadable value): as if the header were absent.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT; parsedate gives naive for "-0000"
        when = when.replace(tzinfo=timezone.utc)  # Python 3.9 has no datetime.UTC
    return max(0.0, when.timestamp() - now)


def deferral_s(
    retry_after: float | None, in_call: float = IN_CALL_RETRY_AFTER_S, most: float = MAX_DEFERRAL_S
) -> float | None:
    """How long a Retry-After defers the cloud: None when there is none or it is short enough to be
    waited in the call (``<= in_call``), else the Retry-After capped at ``most``."""
    if retry_after is None or retry_after <= in_call:
        return None
    return min(retry_after, most)


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rand: Callable[[], float] = random.random,
) -> T:
    """Run ``attempt`` until it succeeds, retrying only TransientError, at most ``policy.attempts`` times.

    ``attempt`` is a factory so each try is built anew (fresh timestamp, fresh signature). A Retry-After
    longer than ``policy.max_retry_after``, and a deferred call, end the loop at once.
    """
    retry = 0
    while True:
        try:
            return await attempt()
        except DeferredError:
            raise  # nothing was sent, and nothing may be before the deferral ends
        except TransientError as exc:
            if retry + 1 >= policy.attempts:
                raise
            if deferral_s(exc.retry_after, policy.max_retry_after) is not None:
                raise  # too long to wait here: the transport defers the cloud's next requests
            wait = policy.delay(retry, rand(), exc.retry_after)
            log.debug(
                "cloud.retrying",
                cloud=exc.cloud,
                operation=exc.operation,
                error=exc.message,
                wait_s=round(wait, 3),
                retry=retry + 1,
            )
            retry += 1
            await sleep(wait)
