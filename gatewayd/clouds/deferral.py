"""A cloud's "not before": a long Retry-After defers that cloud's requests, without blocking anything else.

Why not sleep it in the call: a 429 with ``Retry-After: 300`` slept inside a heartbeat or an upload held
that caller for five minutes (statuses expired, nothing said why). Instead, the transport notes the
deadline here and every request to that cloud until then fails at once with a
:class:`~gatewayd.errors.DeferredError` — no request sent — so heartbeats keep their schedule (a failed
round is just failed), the outbox keeps the points, and the other clouds and the sampling never notice.

The deadline is kept on the monotonic clock (an NTP step neither shortens nor stretches it) and capped
(:data:`~gatewayd.clouds.retry.MAX_DEFERRAL_S`); it is logged once when it starts and once when it ends.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone

import structlog

from gatewayd.clouds.retry import IN_CALL_RETRY_AFTER_S, MAX_DEFERRAL_S, deferral_s, parse_retry_after
from gatewayd.errors import DeferredError

log = structlog.get_logger(__name__)

#: The answers whose Retry-After defers the cloud (RFC 9110: "too many requests", "unavailable").
DEFERRING_STATUSES = frozenset({429, 503})


class Deferral:
    """The Retry-After deadline of one cloud, checked before each of its requests."""

    def __init__(
        self,
        cloud: str,
        *,
        in_call_s: float = IN_CALL_RETRY_AFTER_S,
        max_s: float = MAX_DEFERRAL_S,
        clock: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cloud = cloud
        self.in_call_s = in_call_s
        self.max_s = max_s
        self.clock = clock
        self.mono = mono
        #: Monotonic time before which no request is sent; None: not deferred.
        self.until: float | None = None

    def check(self, operation: str) -> None:
        """Raise DeferredError while deferred; the first call after the deadline logs the end."""
        if self.until is None:
            return
        left = self.until - self.mono()
        if left > 0:
            raise DeferredError(
                f"deferred by Retry-After until {self._wall(left)} ({math.ceil(left)}s left); no request sent",
                cloud=self.cloud,
                operation=operation,
                retry_after=left,
            )
        self.until = None
        log.info("cloud.deferral_ended", cloud=self.cloud)

    def observe(self, status: int, headers: Mapping[str, str], operation: str) -> None:
        """An answer arrived: a 429/503 whose Retry-After is too long to wait in the call defers the cloud."""
        if status not in DEFERRING_STATUSES:
            return
        asked = parse_retry_after(headers.get("Retry-After"), self.clock())
        seconds = deferral_s(asked, self.in_call_s, self.max_s)
        if seconds is None or asked is None:
            return
        until = self.mono() + seconds
        if self.until is not None and until <= self.until:
            return  # answers to requests sent before the deferral began: already deferred as long
        started = self.until is None
        self.until = until
        if started:
            log.warning(
                "cloud.deferred",
                effect="its requests fail at once until then, nothing else waits",
                cloud=self.cloud,
                operation=operation,
                status=status,
                retry_after_s=round(asked, 3),
                deferred_s=round(seconds, 3),
                until=self._wall(seconds),
                capped=asked > seconds,
            )

    def _wall(self, seconds_from_now: float) -> str:
        when = datetime.fromtimestamp(self.clock() + seconds_from_now, timezone.utc)  # 3.9
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")
