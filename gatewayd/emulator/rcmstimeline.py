"""When each emulated RCMS router reports: at its own interval, kept as history that a window can page.

A real router sends its status to RCMS at its own reporting interval, and RCMS keeps the records: a
status-data window returns every record in it, whenever it is asked. Here a router's records are the times
``since + k * interval`` of each of its segments (one interval from a time on); changing a router's interval
starts a new segment at that time, so the records already served stay exactly as they were. Nothing is
stored per record: a window's times are computed, so a day of records at one a second costs nothing.
"""

from __future__ import annotations

from typing import Any

#: A router reports once a minute unless told otherwise (RCMS's usual heartbeat).
DEFAULT_INTERVAL_MS = 60_000


class ReportTimeline:
    """Each router's segments ``(since_ms, interval_ms)``; before any of its own, the default interval
    from time 0 (records on the minute, for the default)."""

    def __init__(self, default_interval_ms: int = DEFAULT_INTERVAL_MS) -> None:
        if default_interval_ms <= 0:
            raise ValueError("a reporting interval must be positive")
        self.default_interval_ms = default_interval_ms
        self._segments: dict[str, list[tuple[int, int]]] = {}

    def segments(self, sn: str) -> list[tuple[int, int]]:
        return self._segments.get(sn, [(0, self.default_interval_ms)])

    def set_interval(self, sn: str, interval_ms: int, since_ms: int) -> None:
        """From ``since_ms`` on, ``sn`` reports every ``interval_ms`` (its first record at ``since_ms``)."""
        if interval_ms <= 0:
            raise ValueError("a reporting interval must be positive")
        kept = [seg for seg in self.segments(sn) if seg[0] < since_ms]
        self._segments[sn] = [*kept, (since_ms, interval_ms)]

    def interval_ms(self, sn: str, at_ms: int) -> int:
        """The interval ``sn`` reports at, at ``at_ms``."""
        current = self.segments(sn)[0][1]
        for since, interval in self.segments(sn):
            if since <= at_ms:
                current = interval
        return current

    def _spans(self, sn: str, begin_ms: int, last_ms: int) -> list[tuple[int, int, int]]:
        """(first record time, interval, count) of each segment's records in [begin, last]."""
        segments = self.segments(sn)
        spans = []
        for i, (since, interval) in enumerate(segments):
            until = segments[i + 1][0] - 1 if i + 1 < len(segments) else last_ms
            low, high = max(begin_ms, since), min(last_ms, until)
            if high < low:
                continue
            first = since + -(-(low - since) // interval) * interval
            if first <= high:
                spans.append((first, interval, (high - first) // interval + 1))
        return spans

    def count(self, sn: str, begin_ms: int, last_ms: int) -> int:
        """How many records ``sn`` has in [begin, last]."""
        return sum(n for _, _, n in self._spans(sn, begin_ms, last_ms))

    def times(self, sn: str, begin_ms: int, last_ms: int, start: int, stop: int) -> list[int]:
        """The times of records ``start`` to ``stop`` (exclusive), oldest first, of ``sn`` in [begin, last]."""
        out: list[int] = []
        offset = 0
        for first, interval, n in self._spans(sn, begin_ms, last_ms):
            lo, hi = max(start - offset, 0), min(stop - offset, n)
            out.extend(first + k * interval for k in range(lo, hi))
            offset += n
            if offset >= stop:
                break
        return out

    def snapshot(self) -> dict[str, Any]:
        return {
            "default_interval_ms": self.default_interval_ms,
            "routers": {sn: [list(seg) for seg in segs] for sn, segs in sorted(self._segments.items())},
        }
