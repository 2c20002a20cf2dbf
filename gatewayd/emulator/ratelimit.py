"""The emulator's rate-limit fault as a value: checked whole when it is made, so setting a bad one changes
nothing (see :mod:`gatewayd.emulator.faults`, which applies it). Its own module to keep that one to the
rules of applying faults.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
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
        if self.window_s is not None and not positive_number(self.window_s):
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


def positive_number(value: Any) -> bool:
    """A finite number above zero (a bool is no number)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf
