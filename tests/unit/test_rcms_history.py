"""RCMS status data as history: windows, dedup by record time, the reporting interval, staleness, and the
poller's marks across polls and restarts (a fake client; the real one against the emulator is in
tests/integration/test_rcms_history.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gatewayd.errors import SourceError, StorageError, TransientError
from gatewayd.runtime.pollers import RcmsPoller
from gatewayd.runtime.rcmshistory import (
    CHUNK_S,
    LATE_RECORD_S,
    MAX_BACKFILL_S,
    RouterMark,
    advanced,
    chunks,
    fresh_records,
    poll_window,
    reporting_interval_ms,
)
from gatewayd.sources.latest import LatestState, PollStats
from gatewayd.sources.rcmsbridge import RcmsRecordBridge, default_max_age_s, record_staleness
from tests.helpers.clocks import FakeClock

NOW = 1_800_000_000_000  # ms, after the wall clock's build-date floor
H = 3_600_000
MIN = 60_000


# ------------------------------------------------------------------------------------------ windows


@pytest.mark.parametrize(
    ("mark", "lookback_s", "expected"),
    [
        # first poll: the lookback
        (None, 3600, (NOW - H, NOW)),
        (None, 60, (NOW - MIN, NOW)),
        # later: from the newest record, inclusive (it fills the latest state after a restart)
        (RouterMark(NOW - 50_000, NOW - 10_000), 3600, (NOW - 50_000, NOW)),
        # a router silent for long: not further back than LATE_RECORD_S before the last scan
        (RouterMark(NOW - 2 * H, NOW - 10_000), 3600, (NOW - 10_000 - int(LATE_RECORD_S * 1000), NOW)),
        # an outage: the whole gap, however long the lookback ...
        (RouterMark(NOW - 30 * H, NOW - 30 * H), 60, (NOW - 30 * H, NOW)),
        # ... up to MAX_BACKFILL_S
        (RouterMark(NOW - 30 * 24 * H, NOW - 30 * 24 * H), 60, (NOW - int(MAX_BACKFILL_S * 1000), NOW)),
        (None, MAX_BACKFILL_S * 2, (NOW - int(MAX_BACKFILL_S * 1000), NOW)),
        # a mark from a clock that ran ahead: never a window that ends before it begins
        (RouterMark(NOW + H, NOW + H), 60, (NOW, NOW)),
        # no record yet, scanned before
        (RouterMark(-1, NOW - 5_000), 3600, (NOW - 5_000 - int(LATE_RECORD_S * 1000), NOW)),
    ],
)
def test_poll_window(mark: RouterMark | None, lookback_s: float, expected: tuple[int, int]) -> None:
    assert poll_window(mark, NOW, lookback_s) == expected


@pytest.mark.parametrize(
    ("begin", "end", "chunk_s", "expected"),
    [
        (0, 9, 0.01, [(0, 9)]),
        (0, 10, 0.01, [(0, 9), (10, 10)]),
        (0, 25, 0.01, [(0, 9), (10, 19), (20, 25)]),
        (5, 5, 0.01, [(5, 5)]),
        (6, 5, 0.01, []),
        (NOW - H, NOW, CHUNK_S, [(NOW - H, NOW)]),
    ],
)
def test_chunks_cover_the_window_without_gap_or_overlap(
    begin: int, end: int, chunk_s: float, expected: list[tuple[int, int]]
) -> None:
    assert chunks(begin, end, chunk_s) == expected


def test_a_day_long_gap_is_fetched_in_chunks() -> None:
    pieces = chunks(NOW - 24 * H, NOW)
    assert len(pieces) == 5 and pieces[0][0] == NOW - 24 * H and pieces[-1][1] == NOW
    assert all(b == a_end + 1 for (_, a_end), (b, _) in zip(pieces, pieces[1:]))


# ------------------------------------------------------------------------------------------ dedup


def rec(t: Any, rssi: int = -60) -> dict[str, Any]:
    return {"time": t, "data": {"cellular": {"rssi": rssi}}}


@pytest.mark.parametrize(
    ("times", "after", "fresh", "newest", "ignored"),
    [
        ([10, 20, 30], -1, [10, 20, 30], 30, 0),
        ([30, 10, 20], -1, [10, 20, 30], 30, 0),  # newest first from RCMS: oldest first as points
        ([10, 20, 20, 30], -1, [10, 20, 30], 30, 0),  # repeated across pages: once
        ([10, 20, 30], 20, [30], 30, 0),  # already sent up to 20
        ([10, 20], 20, [], 20, 0),  # nothing new; the newest still fills the latest state
        ([5, 10, 200], -1, [10], 10, 2),  # outside [10, 100]: not points
        ([None, "12", True, 20.0, 30.5], -1, [20], 20, 4),  # no usable time
        ([], -1, [], None, 0),
    ],
)
def test_fresh_records(
    times: list[Any], after: int, fresh: list[int], newest: int | None, ignored: int
) -> None:
    records = [rec(t) for t in times]
    got = fresh_records(records, 10, 100, after)
    assert [int(r["time"]) for r in got.records] == fresh
    assert (got.newest["time"] if got.newest else None) == newest
    assert got.ignored == ignored


def test_fresh_records_keep_the_first_of_a_repeated_time() -> None:
    got = fresh_records([rec(10, -61), rec(10, -62)], 0, 100, -1)
    assert got.records == [rec(10, -61)]


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ([], None),
        ([NOW], None),
        ([NOW, NOW], None),
        ([NOW, NOW + MIN], MIN),
        ([NOW + 2 * MIN, NOW, NOW + MIN], MIN),  # order does not matter
        ([NOW + i * MIN for i in range(10)] + [NOW + 60 * MIN], MIN),  # an outage gap is not the interval
        ([NOW, NOW + 10_000, NOW + 20_000, NOW + 80_000], 10_000),
        ([NOW, NOW + 10_000, NOW + 30_000], 20_000),  # two gaps: the larger
        ([NOW, NOW + 1, NOW + MIN, NOW + MIN + 1, NOW + 2 * MIN], MIN - 1),  # records sent twice
    ],
)
def test_reporting_interval_from_record_spacing(times: list[int], expected: int | None) -> None:
    assert reporting_interval_ms(times) == expected


def test_marks_advance_and_read_back() -> None:
    mark = advanced(None, [rec(NOW - 20), rec(NOW - 10)], NOW, 10)
    assert mark == RouterMark(NOW - 10, NOW, 10)
    later = advanced(mark, [], NOW + 5, None)
    assert later == RouterMark(NOW - 10, NOW + 5, 10)  # no record: the newest stays, the interval too
    assert RouterMark.from_json(later.as_json()) == later
    assert RouterMark.from_json(NOW) == RouterMark(NOW, NOW)  # an earlier release's window end
    for junk in (None, "x", True, {"record_ms": "1", "scanned_ms": 2}, {"record_ms": 1}):
        assert RouterMark.from_json(junk) is None


# ------------------------------------------------------------------------------------------ staleness


@pytest.mark.parametrize(
    ("interval_s", "poll_s", "expected"),
    [
        (None, 60, 180),  # no spacing known yet: three polls
        (60, 60, 180),
        (300, 60, 900),  # a router reporting every 5 min: 15 min
        (10, 60, 180),  # records faster than polls: a record is only seen once polled
        (0.2, 0.3, 0.9),
    ],
)
def test_default_max_age(interval_s: float | None, poll_s: float, expected: float) -> None:
    assert default_max_age_s(interval_s, poll_s) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("record_ms", "now_s", "max_age_s", "expected"),
    [
        (NOW, NOW / 1000, 180, None),
        (NOW - 180_000, NOW / 1000, 180, None),  # exactly the limit: still fresh
        (NOW - 181_000, NOW / 1000, 180, 181.0),
        (NOW + 5_000, NOW / 1000, 180, None),  # a record a little ahead of the box's clock
    ],
)
def test_record_staleness(record_ms: int, now_s: float, max_age_s: float, expected: float | None) -> None:
    assert record_staleness(record_ms, now_s, max_age_s) == expected


class Sink:
    """What the sampler gives a bound bridge, recording what it is told."""

    def __init__(self) -> None:
        self.points: list[tuple[int, Any]] = []
        self.refreshes = 0
        self.commits = 0
        self.fail_commit = False

    def point(self, time_ms: int, value: Any) -> None:
        self.points.append((time_ms, value))

    def refreshed(self) -> None:
        self.refreshes += 1

    async def commit(self) -> None:
        self.commits += 1
        if self.fail_commit:
            raise StorageError("disk full")


def make_bridge(
    latest: LatestState, clock: FakeClock, field: str = "cellular.rssi", **kw: Any
) -> RcmsRecordBridge:
    return RcmsRecordBridge("SN1", field, latest=latest, poll_interval_s=60, clock=clock, **kw)


async def test_bridge_makes_one_point_per_record_and_judges_by_the_record_time() -> None:
    latest, clock = LatestState(), FakeClock(NOW / 1000)
    bridge, sink = make_bridge(latest, clock), Sink()
    bridge.bind(sink)
    with pytest.raises(SourceError, match="no rcms data for 'SN1' yet"):
        bridge.check_now()
    records = [rec(NOW - 2 * MIN, -61), {"time": NOW - MIN, "data": {}}, rec(NOW, -63)]
    latest.put("rcms", "SN1", clock(), records[-1])
    await latest.feed.publish("rcms", "SN1", records)
    assert sink.points == [(NOW - 2 * MIN, -61), (NOW, -63)]  # the record without the field: no point
    assert bridge.unusable == 1 and sink.refreshes == 1 and sink.commits == 1
    assert bridge.check_now() == -63
    clock.advance(180)  # three polls later, no new record: still fresh; one second more: stale
    assert await bridge.read() == -63
    clock.advance(1)
    with pytest.raises(SourceError, match=r"stale \(newest record 181s old, limit 180s\)"):
        bridge.check_now()
    latest.feed.intervals[("rcms", "SN1")] = 300.0  # the router reports every 5 min: 15 min allowed
    assert bridge.max_age_s == 900 and bridge.check_now() == -63


async def test_bridge_max_age_set_per_sensor_and_unbinding() -> None:
    latest, clock = LatestState(), FakeClock(NOW / 1000)
    bridge, sink = make_bridge(latest, clock, max_age_s=30.0), Sink()
    bridge.bind(sink)
    latest.put("rcms", "SN1", clock(), rec(NOW - 31_000))
    with pytest.raises(SourceError, match="limit 30s"):
        bridge.check_now()
    await bridge.close()
    assert latest.feed.subscribers("rcms", "SN1") == 0
    await latest.feed.publish("rcms", "SN1", [rec(NOW)])
    assert sink.points == [] and bridge.commit is None


async def test_feed_commits_once_per_sink_and_passes_a_storage_error_on() -> None:
    latest, clock = LatestState(), FakeClock(NOW / 1000)
    sink = Sink()
    first, second = make_bridge(latest, clock), make_bridge(latest, clock, field="data.cellular.rssi")
    first.bind(sink)
    second.bind(sink)
    await latest.feed.publish("rcms", "SN1", [rec(NOW)])
    assert sink.points == [(NOW, -60), (NOW, -60)] and sink.commits == 1
    await latest.feed.publish("rcms", "SN1", [])
    assert sink.commits == 1  # nothing to commit
    sink.fail_commit = True
    with pytest.raises(StorageError):
        await latest.feed.publish("rcms", "SN1", [rec(NOW + 1)])


# ------------------------------------------------------------------------------------------ the poller


class FakeRcms:
    """Records every 10 s up to now, as RCMS keeps them; ``down`` fails every call as an outage would."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.down = False
        self.windows: list[tuple[int, int]] = []

    async def status_data(self, sn: str, begin_ms: int, end_ms: int) -> list[dict[str, Any]]:
        self.windows.append((begin_ms, end_ms))
        if self.down:
            raise TransientError("HTTP 503", cloud="rcms", operation="status_data", status=503)
        last = min(end_ms, int(self.clock() * 1000))
        first = -(-begin_ms // 10_000) * 10_000
        return [rec(t, -(t // 10_000) % 40 - 50) for t in range(first, last + 1, 10_000)]


def make_poller(client: FakeRcms, latest: LatestState, tmp_path: Path, clock: FakeClock) -> RcmsPoller:
    return RcmsPoller(
        client,  # type: ignore[arg-type]
        ["SN1"],
        60.0,
        latest,
        PollStats(),
        tmp_path,
        lookback_s=60.0,
        clock=clock,
    )


async def test_poller_sends_each_record_once_across_polls_outages_and_restarts(tmp_path: Path) -> None:
    clock = FakeClock(NOW / 1000)
    client = FakeRcms(clock)
    latest, sink = LatestState(), Sink()
    make_bridge(latest, clock).bind(sink)
    poller = make_poller(client, latest, tmp_path, clock)
    await poller.poll()  # the lookback: the last minute's 7 records (both ends included)
    assert [t for t, _ in sink.points] == list(range(NOW - MIN, NOW + 1, 10_000))
    assert latest.feed.intervals[("rcms", "SN1")] == 10.0
    clock.advance(25)
    await poller.poll()
    clock.advance(25)
    client.down = True
    for _ in range(3):  # an outage of 3 minutes
        clock.advance(60)
        await poller.poll()
    client.down = False
    await poller.poll()
    # a restart: a new poller (and latest state) from the saved marks
    restarted_latest = LatestState()
    restarted_latest.feed = latest.feed
    clock.advance(15)
    await make_poller(client, restarted_latest, tmp_path, clock).poll()
    times = [t for t, _ in sink.points]
    assert times == list(range(NOW - MIN, int(clock() * 1000) + 1, 10_000)), "each record once, no gap"
    entry = restarted_latest.get("rcms", "SN1")
    assert entry is not None and entry[1]["time"] == times[-1]
    begin, _end = client.windows[-1]
    assert begin == times[-2]  # after the restart the window starts at the newest record sent


async def poll_once_then_fail_to_commit(
    tmp_path: Path,
) -> tuple[FakeClock, FakeRcms, Sink, RcmsPoller, RouterMark]:
    """A poll that commits, then one 30 s later whose commit fails (a full disk): its records wait in
    memory. Returns the clock, the RCMS, the sink, the poller and the mark saved after the first poll."""
    clock = FakeClock(NOW / 1000)
    client = FakeRcms(clock)
    latest, sink = LatestState(), Sink()
    make_bridge(latest, clock).bind(sink)
    poller = make_poller(client, latest, tmp_path, clock)
    await poller.poll()
    saved = RouterMark.from_json(poller._marks_file.load()["SN1"])  # type: ignore[index]
    sink.fail_commit = True
    clock.advance(30)
    await poller.poll()
    return clock, client, sink, poller, saved


async def test_a_storage_error_keeps_the_saved_mark_back(tmp_path: Path) -> None:
    _clock, _client, _sink, poller, saved = await poll_once_then_fail_to_commit(tmp_path)
    assert poller.marks["SN1"].record_ms == NOW + 30_000  # the next window goes on after them ...
    assert RouterMark.from_json(poller._marks_file.load()["SN1"]) == saved  # type: ignore[index]
    # ... but a restart fetches them again: the points held in memory would be lost with it


async def test_no_poll_before_the_wall_clock_is_set(tmp_path: Path) -> None:
    clock = FakeClock(1_000.0)  # 1970: a box without an RTC before NTP
    client = FakeRcms(clock)
    poller = make_poller(client, LatestState(), tmp_path, clock)
    await poller.poll()
    assert client.windows == [] and poller.marks == {}


async def test_a_mark_held_back_is_not_saved_by_a_poll_that_commits_nothing(tmp_path: Path) -> None:
    clock, client, sink, poller, saved = await poll_once_then_fail_to_commit(tmp_path)  # 3 records in memory
    client.clock = FakeClock(clock() - 30)  # the router goes silent: the next windows bring nothing new
    sink.fail_commit = False
    clock.advance(60)
    await poller.poll()
    assert sink.commits == 2, "nothing new, so nothing committed"
    assert RouterMark.from_json(poller._marks_file.load()["SN1"]) == saved  # type: ignore[index]
    client.clock = clock  # it reports again: its commit flushes the held points, the mark may go on
    clock.advance(10)
    await poller.poll()
    assert sink.commits == 3
    assert poller._marks_file.load()["SN1"]["record_ms"] == int(clock() * 1000)  # type: ignore[index]


class GatedRcms(FakeRcms):
    """A FakeRcms whose answers wait for ``gate`` (a poll still under way)."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.gate = asyncio.Event()

    async def status_data(self, sn: str, begin_ms: int, end_ms: int) -> list[dict[str, Any]]:
        await self.gate.wait()
        return await super().status_data(sn, begin_ms, end_ms)


async def test_a_reloaded_poller_goes_on_from_the_one_it_replaces(tmp_path: Path) -> None:
    clock = FakeClock(NOW / 1000)
    client = GatedRcms(clock)
    latest, sink = LatestState(), Sink()
    make_bridge(latest, clock).bind(sink)
    old = make_poller(client, latest, tmp_path, clock)
    client.gate.set()
    await old.poll()
    client.gate.clear()
    clock.advance(30)
    under_way = asyncio.ensure_future(old.poll())  # the reload comes while this poll waits for RCMS
    await asyncio.sleep(0)
    new = RcmsPoller(
        client,  # type: ignore[arg-type]
        ["SN1"],
        30.0,
        latest,
        PollStats(),
        tmp_path,
        lookback_s=60.0,
        clock=clock,
        previous=old,
    )
    polling = asyncio.ensure_future(new.poll())
    await asyncio.sleep(0)
    client.gate.set()
    await asyncio.gather(under_way, polling)
    times = [t for t, _ in sink.points]
    assert times == list(range(NOW - MIN, NOW + 30_000 + 1, 10_000)), "each record once"
    assert new.marks["SN1"].record_ms == NOW + 30_000
