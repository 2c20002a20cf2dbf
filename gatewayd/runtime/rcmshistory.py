"""RCMS status data as a time series: which window to ask for, which records are new, how often a router
reports. Pure functions and the small mark kept per router; the poller (:mod:`gatewayd.runtime.pollers`)
does the I/O.

Why a mark of two times per router, persisted in ``rcms-poll.json``:

* ``record_ms``, the newest record time already turned into points: a record becomes points only when it
  is newer, so overlapping windows, a retried poll and a restart never send a record twice;
* ``scanned_ms``, the end of the last window fetched whole: the next window starts from the newest record
  (inclusive, so after a restart that record fills the latest state again) but never reaches more than
  :data:`LATE_RECORD_S` before ``scanned_ms``, so a router silent for a day is not asked for that day at
  every poll, while a record RCMS stores a little after its own time is still found.

The mark advances only past what the outbox holds (the poller commits the points first), so a crash can
repeat a record (Thing+ keeps one value per time: the same value again changes nothing) but never skip
one. After an outage the window covers the whole gap, up to :data:`MAX_BACKFILL_S`, fetched in chunks of
:data:`CHUNK_S`, each committed and marked before the next.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gatewayd.inventory.config import MAX_RCMS_HISTORY_S

#: History never reaches further back than this, however long the box or RCMS was away: Thing+ refuses a
#: point about 5 days old, and a day is left for the points to wait in the outbox.
MAX_BACKFILL_S = MAX_RCMS_HISTORY_S
#: One request window at most (a poll after an outage asks for several, oldest first).
CHUNK_S = 6 * 3600.0
#: How long after its own time a record may reach RCMS and still be found.
LATE_RECORD_S = 300.0
#: The router's reporting interval is read from this many of its newest record times.
SPACING_SAMPLE = 16


@dataclass(frozen=True)
class RouterMark:
    """Where the history of one router stands (see the module docstring)."""

    #: The newest record time already turned into points; -1: none yet.
    record_ms: int
    #: The end of the last window fetched whole.
    scanned_ms: int
    #: The router's reporting interval as its records show it (ms); None until two records were seen.
    interval_ms: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"record_ms": self.record_ms, "scanned_ms": self.scanned_ms, "interval_ms": self.interval_ms}

    @classmethod
    def from_json(cls, value: Any) -> RouterMark | None:
        """A saved mark, or None when it is not one. A bare integer is the mark of an earlier release (the
        end of its last window, whose records it never sent stamped with their times): history goes on
        from there."""
        if _is_int(value):
            return cls(record_ms=value, scanned_ms=value)
        if not isinstance(value, dict) or not _is_int(value.get("record_ms")):
            return None
        if not _is_int(value.get("scanned_ms")):
            return None
        interval = value.get("interval_ms")
        return cls(value["record_ms"], value["scanned_ms"], interval if _is_int(interval) else None)


def poll_window(mark: RouterMark | None, now_ms: int, lookback_s: float) -> tuple[int, int]:
    """The [begin, end] ms window (both inclusive) of a router's next poll.

    The first poll looks back ``lookback_s``; later ones start at the newest record known (see the module
    docstring). Never before ``now - MAX_BACKFILL_S``; never after now (a mark from a clock that ran ahead).
    """
    if mark is None:
        begin = now_ms - int(lookback_s * 1000)
    else:
        begin = max(mark.record_ms, mark.scanned_ms - int(LATE_RECORD_S * 1000))
    begin = max(begin, now_ms - int(MAX_BACKFILL_S * 1000))
    return min(begin, now_ms), now_ms


def chunks(begin_ms: int, end_ms: int, chunk_s: float = CHUNK_S) -> list[tuple[int, int]]:
    """[begin, end] cut into inclusive windows of at most ``chunk_s``, oldest first, neither gap nor overlap."""
    size = max(1, int(chunk_s * 1000))
    out = []
    start = begin_ms
    while start <= end_ms:
        stop = min(end_ms, start + size - 1)
        out.append((start, stop))
        start = stop + 1
    return out


def record_time(record: Any) -> int | None:
    """A record's own ``time`` (unix ms), or None when it has none usable."""
    value = record.get("time") if isinstance(record, dict) else None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if _is_int(value) else None


@dataclass(frozen=True)
class Fresh:
    """What one window's answer holds."""

    #: Records newer than the mark, oldest first, one per time.
    records: list[dict[str, Any]]
    #: The newest record in the window (new or not): the router's latest state.
    newest: dict[str, Any] | None
    #: Records without a usable time, or outside the window asked for: never points.
    ignored: int


def fresh_records(records: Iterable[Any], begin_ms: int, end_ms: int, after_ms: int) -> Fresh:
    """The records of a window answer that become points: in [begin, end], newer than ``after_ms``, one
    per time (a record repeated across pages counts once), oldest first whatever order RCMS sent."""
    by_time: dict[int, dict[str, Any]] = {}
    ignored = 0
    for record in records:
        at = record_time(record)
        if at is None or not begin_ms <= at <= end_ms:
            ignored += 1
            continue
        by_time.setdefault(at, record)
    newest = by_time[max(by_time)] if by_time else None
    fresh = [by_time[t] for t in sorted(by_time) if t > after_ms]
    return Fresh(fresh, newest, ignored)


def reporting_interval_ms(times: Sequence[int]) -> int | None:
    """A router's reporting interval from its record times: the upper median of the gaps between
    consecutive ones.

    A median, so that a gap (the router or its uplink away) does not move it; the upper one, so that a
    record sent twice makes it longer rather than shorter (a sensor wrongly ``err`` is worse than one that
    goes ``err`` an interval late). None for fewer than two distinct times.
    """
    ordered = sorted(set(times))
    gaps = sorted(b - a for a, b in zip(ordered, ordered[1:]))
    return gaps[len(gaps) // 2] if gaps else None


def advanced(
    mark: RouterMark | None, fresh: Sequence[dict[str, Any]], scanned_ms: int, interval_ms: int | None
) -> RouterMark:
    """The mark once ``fresh`` is in the outbox and the window up to ``scanned_ms`` fetched whole."""
    newest = max((t for t in map(record_time, fresh) if t is not None), default=None)
    record_ms = mark.record_ms if mark is not None else -1
    if newest is not None:
        record_ms = max(record_ms, newest)
    if interval_ms is None and mark is not None:
        interval_ms = mark.interval_ms
    return RouterMark(record_ms, scanned_ms, interval_ms)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
