"""Points Thing+ accepted per second, from its running total: what the console's points card shows.

Why from a running total sampled over a window, not from the points themselves: with 10,000 sensors a
pass over every sensor's history each second would cost the emulator more than serving them. Thing+
keeps one counter (``points_accepted``, bumped by the HTTPS series handler and the MQTT data path); the
rate is its growth over the last few seconds, from samples taken when a page asks (every open page asks
once a tick; samples closer together than :data:`MIN_GAP_S` are not kept, so many pages cost no more).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

#: The rate is the growth over about this many seconds: smooth enough to read, recent enough to follow.
WINDOW_S = 5.0
#: Samples closer together than this are not kept.
MIN_GAP_S = 0.2


class RateMeter:
    """The growth per second of ``total()`` over the last :data:`WINDOW_S` (``clock``: monotonic s)."""

    def __init__(
        self,
        total: Callable[[], int],
        *,
        clock: Callable[[], float] = time.monotonic,
        window_s: float = WINDOW_S,
    ) -> None:
        self._total = total
        self._clock = clock
        self._window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()

    def rate(self) -> float:
        """Per second, rounded to a tenth; 0 until two samples are at least :data:`MIN_GAP_S` apart."""
        now, total = self._clock(), self._total()
        samples = self._samples
        if samples and now - samples[-1][0] > 2 * self._window_s:
            samples.clear()  # nobody asked for a while: an average over the silence would mislead
        if not samples or now - samples[-1][0] >= MIN_GAP_S:
            samples.append((now, total))
        while len(samples) > 2 and now - samples[1][0] >= self._window_s:
            samples.popleft()
        first_t, first_total = samples[0]
        elapsed = now - first_t
        if elapsed < MIN_GAP_S:
            return 0.0
        return round(max(0, total - first_total) / elapsed, 1)
