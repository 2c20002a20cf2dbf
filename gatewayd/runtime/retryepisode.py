"""One stretch of failures of a write that is tried again with backoff, from the first failure to the
success that ends it (the outbox under a full disk, the registry's save).

Why one class: both writes wait for the same thing (room on the disk) and must say the same things
about it (since when, how many times, why, whether the disk is full), so they keep that state alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gatewayd.errors import DiskFullError, StorageError

#: Backoff of the retries while a write fails: from 1 s, doubling, up to 1 min.
RETRY_S = 1.0
RETRY_MAX_S = 60.0


def retry_delay(failures: int, base_s: float = RETRY_S, cap_s: float = RETRY_MAX_S) -> float:
    """Seconds before the next try after ``failures`` failures in a row (1 or more)."""
    return min(cap_s, base_s * 2 ** min(failures - 1, 32))


class RetryEpisode:
    """The failures in a row of one write: counted, timed, and when the next try is due."""

    def __init__(
        self,
        mono: Callable[[], float] = time.monotonic,
        *,
        retry_s: float = RETRY_S,
        retry_max_s: float = RETRY_MAX_S,
    ) -> None:
        self.mono = mono
        self.retry_s = retry_s
        self.retry_max_s = retry_max_s
        #: Why the last try failed, until one succeeds.
        self.error: str | None = None
        self.disk_full = False
        self.failures = 0  # in a row
        self.since: float | None = None  # monotonic time the write last stopped working
        #: Monotonic time the next try is due (backoff since the last failure).
        self.next_try = 0.0

    @property
    def failing(self) -> bool:
        return self.since is not None

    def failed(self, exc: StorageError) -> tuple[bool, float]:
        """Count a failure: whether it begins the episode, and the seconds until the next try."""
        self.failures += 1
        now = self.mono()
        delay = retry_delay(self.failures, self.retry_s, self.retry_max_s)
        self.next_try = now + delay
        first = self.since is None
        if first:
            self.since = now
        self.error = str(exc)
        self.disk_full = isinstance(exc, DiskFullError)
        return first, delay

    def due(self) -> bool:
        """The backoff since the last failure ran out."""
        return self.mono() >= self.next_try

    def for_s(self, digits: int = 3) -> float | None:
        """Seconds since the write stopped working (rounded), or None while it works."""
        return None if self.since is None else round(self.mono() - self.since, digits)

    def ended(self) -> None:
        """A try succeeded: the episode is over."""
        self.error = None
        self.disk_full = False
        self.failures = 0
        self.since = None
