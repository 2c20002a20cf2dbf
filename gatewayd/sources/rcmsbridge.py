"""A field of an RCMS router's status records as a sensor: one point per record, stamped with its own time.

Why not sampled: the status data is the router's own time series. Every record the poller fetches comes
here through the feed (:mod:`gatewayd.sources.records`) and becomes one point, so an outage leaves no
gap on Thing+ and one record never becomes two points. The sensor's ``interval`` only says how often
its status is judged again.

Why the record's time and not the box's clock decides staleness: a record fetched a minute ago may be an
hour old (the router's uplink was down, RCMS stored nothing new). The sensor is ``err`` when its newest
record is older than ``max_age``, measured from that record's time: by default three of the router's
reporting intervals (as the spacing of its records shows it) and at least three poll intervals, since a
record can only be seen once a poll fetched it.

Record times come from the cloud: a true unix time even on a box whose own clock is not set yet, so these
points are never stamped provisionally, held or re-stamped (:mod:`gatewayd.wallclock` applies to the
box's own samples only). The poller does not poll before the box's clock is set, since RCMS refuses a
request whose timestamp is more than a few minutes off.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from gatewayd.errors import SourceError
from gatewayd.sources.bridge import field_value
from gatewayd.sources.latest import LatestState
from gatewayd.sources.records import RecordSink

CLOUD = "rcms"
#: Default max_age: this many of the router's reporting intervals ...
STALE_AFTER_RECORDS = 3
#: ... and at least this many poll intervals.
STALE_AFTER_POLLS = 3


def default_max_age_s(interval_s: float | None, poll_interval_s: float) -> float:
    """How old the newest record may be before the sensor is ``err``, when the inventory does not say."""
    floor = STALE_AFTER_POLLS * poll_interval_s
    if interval_s is None:
        return floor
    return max(STALE_AFTER_RECORDS * interval_s, floor)


def record_staleness(record_ms: int, now_s: float, max_age_s: float) -> float | None:
    """The age (s) of a record of time ``record_ms`` when it is older than ``max_age_s``, else None."""
    age = now_s - record_ms / 1000
    return age if age > max_age_s else None


class RcmsRecordBridge:
    """``field`` of every status record of router ``sn``; bound to a sensor's sink by the sampler."""

    def __init__(
        self,
        sn: str,
        field: str,
        *,
        latest: LatestState,
        poll_interval_s: float,
        max_age_s: float | None = None,
        clock: Callable[[], float],
    ) -> None:
        self.sn = sn
        self.field = field
        self.latest = latest
        self.poll_interval_s = poll_interval_s
        self.configured_max_age_s = max_age_s
        self.clock = clock
        self._sink: RecordSink | None = None
        #: Records whose field gave no usable value (no point made for them).
        self.unusable = 0

    @property
    def max_age_s(self) -> float:
        if self.configured_max_age_s is not None:
            return self.configured_max_age_s
        return default_max_age_s(self.latest.feed.intervals.get((CLOUD, self.sn)), self.poll_interval_s)

    # ----------------------------------------------------------------- the feed side

    def bind(self, sink: RecordSink) -> None:
        """From now on every record of the router makes a point into ``sink``."""
        self._sink = sink
        self.latest.feed.subscribe(CLOUD, self.sn, self)

    def unbind(self) -> None:
        self.latest.feed.unsubscribe(CLOUD, self.sn, self)
        self._sink = None

    def take(self, records: list[dict[str, Any]]) -> None:
        """One point per record (oldest first, each with a time: the poller checked), then the status."""
        sink = self._sink
        if sink is None:
            return
        for record in records:
            try:
                value = field_value(CLOUD, self.sn, self.field, record)
            except SourceError:
                self.unusable += 1  # the status says so when it is the newest record (check_now)
                continue
            sink.point(int(record["time"]), value)
        sink.refreshed()

    @property
    def commit(self) -> Callable[[], Awaitable[None]] | None:
        return self._sink.commit if self._sink is not None else None

    # ----------------------------------------------------------------- the status side

    def check_now(self) -> Any:
        """The newest record's value; SourceError when the sensor's status must be ``err``: no record
        yet, the newest too old, or its field unusable."""
        entry = self.latest.get(CLOUD, self.sn)
        if entry is None:
            raise SourceError(f"no rcms data for {self.sn!r} yet")
        return self._fresh_value(entry[1])

    async def read(self) -> Any:
        """What a one-off read shows: the newest record's value, with the status's checks."""
        return self.check_now()

    def _fresh_value(self, record: Any) -> Any:
        at = record.get("time") if isinstance(record, dict) else None
        if isinstance(at, (int, float)) and not isinstance(at, bool):
            limit = self.max_age_s
            age = record_staleness(int(at), self.clock(), limit)
            if age is not None:
                raise SourceError(
                    f"rcms data for {self.sn!r} is stale (newest record {age:.0f}s old, limit {limit:.0f}s)"
                )
        return field_value(CLOUD, self.sn, self.field, record)

    async def close(self) -> None:
        self.unbind()
