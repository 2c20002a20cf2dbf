"""The faults of one emulated cloud, as data: what is set, how many answers each kind produced, a rate
limit, and the verdict for one request.

:mod:`gatewayd.emulator.faults` keeps one :class:`CloudFaults` per cloud, decides each request with it
and applies the :class:`Verdict` in its middleware.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RateLimit:
    """Answer 429 to the next ``count`` requests, or to every request for ``window_s`` seconds (or both).

    ``retry_after`` is the ``Retry-After`` header in whole seconds; without it a window says how much of
    itself is left (rounded up), and a count says 1.
    """

    count: int | None = None
    window_s: float | None = None
    retry_after: int | None = None

    def __post_init__(self) -> None:
        if self.count is None and self.window_s is None:
            raise ValueError("rate_limit needs 'count' (next K requests) or 'window_s' (seconds), or both")
        if self.count is not None and (isinstance(self.count, bool) or not isinstance(self.count, int)):
            raise ValueError("rate_limit.count must be an integer")
        if self.count is not None and self.count < 1:
            raise ValueError("rate_limit.count must be at least 1")
        if self.window_s is not None and not is_positive_number(self.window_s):
            raise ValueError("rate_limit.window_s must be a positive number of seconds")
        if self.retry_after is not None and (
            isinstance(self.retry_after, bool)
            or not isinstance(self.retry_after, int)
            or self.retry_after < 0
        ):
            raise ValueError("rate_limit.retry_after must be a whole number of seconds, 0 or more")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RateLimit:
        unknown = set(data) - {"count", "window_s", "retry_after"}
        if unknown:
            raise ValueError(f"rate_limit has unknown key(s): {', '.join(sorted(unknown))}")
        return cls(
            count=data.get("count"), window_s=data.get("window_s"), retry_after=data.get("retry_after")
        )


@dataclass(frozen=True)
class Verdict:
    """What the middleware does with one request: wait ``delay_s``, then answer ``status`` or pass on."""

    delay_s: float = 0.0
    status: int | None = None
    reason: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def passes(self) -> bool:
        return self.status is None


#: The verdict for a request nothing happens to (shared: a Verdict is immutable).
PASS = Verdict()


@dataclass
class CloudFaults:
    """The faults set for one cloud, and how many answers each kind has produced."""

    #: Monotonic deadline of the outage; ``math.inf`` lasts until cleared; None: no outage.
    outage_until: float | None = None
    failure_rate: float = 0.0
    failure_statuses: tuple[int, ...] = (503, 500)
    latency_s: float = 0.0
    rate_limit_left: int = 0
    rate_limit_until: float | None = None
    retry_after: int | None = None
    #: loctube: the OAuth2 token endpoint refuses JSON with 415 (read by the emulator, not the middleware).
    oauth2_form_only: bool = False
    injected: Counter[str] = field(default_factory=Counter)

    def armed(self) -> bool:
        """Whether any fault is set, expired or not: checked on every request, so kept to a few reads."""
        return (
            self.outage_until is not None
            or self.rate_limit_left > 0
            or self.rate_limit_until is not None
            or self.failure_rate > 0.0
            or self.latency_s != 0.0
        )

    def snapshot(self, now: float) -> dict[str, Any]:
        outage: dict[str, Any] | None = None
        if self.outage_until is not None and self.outage_until > now:
            forever = math.isinf(self.outage_until)
            outage = {
                "until_cleared": forever,
                "remaining_s": None if forever else round(self.outage_until - now, 3),
            }
        rate: dict[str, Any] | None = None
        window_left = (
            self.rate_limit_until - now
            if self.rate_limit_until is not None and self.rate_limit_until > now
            else None
        )
        if self.rate_limit_left > 0 or window_left is not None:
            rate = {
                "remaining_count": self.rate_limit_left,
                "window_remaining_s": None if window_left is None else round(window_left, 3),
                "retry_after": self.retry_after,
            }
        return {
            "outage": outage,
            "failure_rate": self.failure_rate,
            "failure_statuses": list(self.failure_statuses),
            "latency_s": self.latency_s,
            "rate_limit": rate,
            "oauth2_form_only": self.oauth2_form_only,
            "injected": dict(self.injected),
        }


def is_number(value: Any) -> bool:
    """A real number (not a bool, not NaN): what a fault setting given as a number must be."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def is_positive_number(value: Any) -> bool:
    return is_number(value) and 0.0 < value < math.inf
