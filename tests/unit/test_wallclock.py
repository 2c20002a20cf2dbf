"""Clock maths as tables (issue 14): when the wall clock counts as set, provisional stamps and their
re-stamping, where the storage clock resumes, and the re-stamp trigger. No sleeps, no real clocks."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import structlog

from gatewayd.errors import StorageError
from gatewayd.outbox import Point
from gatewayd.outbox.timekeeping import age_cutoff_ms, resume_ms
from gatewayd.runtime.sampler import ClockJumpGuard, SampleBuffer, Sampler, SensorRuntime
from gatewayd.runtime.triggers import JumpSafeIntervalTrigger
from gatewayd.wallclock import (
    BUILD_EPOCH_MS,
    RestampOnClockSet,
    Stamper,
    is_provisional,
    is_set,
    provisional_stamp,
    restamp_base_ms,
    restamped,
    sampled_at_mono_ms,
)
from tests.helpers.clocks import Clocks

BUILD_S = BUILD_EPOCH_MS / 1000
UTC = timezone(timedelta(0))  # datetime.UTC is Python 3.11+
DAY = 86400.0


def test_the_build_date_floor_is_midnight_utc_of_2026_12_01() -> None:
    assert BUILD_EPOCH_MS == 1_796_083_200_000


@pytest.mark.parametrize(
    ("wall_ms", "expected"),
    [
        (0, False),  # a box without RTC, at boot
        (86_400_000, False),  # 1970-01-02
        (BUILD_EPOCH_MS - 1, False),
        (BUILD_EPOCH_MS, True),
        (BUILD_EPOCH_MS + int(400 * DAY * 1000), True),
    ],
)
def test_the_wall_clock_is_set_from_the_build_date_on(wall_ms: int, expected: bool) -> None:
    assert is_set(wall_ms) is expected


@pytest.mark.parametrize(
    ("mono_s", "stamp"),
    [(0.0, -1), (0.0009, -1), (0.001, -2), (12.345, -12_346), (3 * DAY, -259_200_001)],
)
def test_provisional_stamps_are_negative_and_give_back_their_monotonic_ms(mono_s: float, stamp: int) -> None:
    assert provisional_stamp(mono_s) == stamp
    assert is_provisional(stamp)
    assert sampled_at_mono_ms(stamp) == int(mono_s * 1000)


@pytest.mark.parametrize(
    ("wall_s", "mono_s", "sampled_mono_s", "expected_ms"),
    [
        # the clock set 10 s after the sample: the sample was 10 s before now
        (BUILD_S + 100, 50.0, 40.0, int((BUILD_S + 90) * 1000)),
        # sampled at the very moment the clock was read
        (BUILD_S + 100, 50.0, 50.0, int((BUILD_S + 100) * 1000)),
        # a day of running without a clock: the true time may be before the build date
        (BUILD_S + 3600, DAY + 7.5, 7.5, int((BUILD_S + 3600 - DAY) * 1000)),
    ],
)
def test_restamping_takes_the_time_elapsed_since_the_sample_off_the_wall_clock_now(
    wall_s: float, mono_s: float, sampled_mono_s: float, expected_ms: int
) -> None:
    stamp = provisional_stamp(sampled_mono_s)
    assert restamped(stamp, restamp_base_ms(wall_s, mono_s)) == expected_ms


@pytest.mark.parametrize(
    ("saved", "now", "expected_ms"),
    [
        # (clock ms, boot, monotonic ms) saved at the close; (boot, monotonic ms) at the open
        ((5_000, "b1", 100_000), ("b1", 160_000), 65_000),  # restart within the boot: 60 s stopped count
        ((5_000, "b1", 100_000), ("b2", 3_000), 5_000),  # reboot: the time off is not known
        ((5_000, "b1", 100_000), ("b1", 90_000), 5_000),  # monotonic went back: a reboot in disguise
        ((0, "", 0), ("b1", 42_000), 0),  # nothing saved yet (a v1 database)
    ],
)
def test_the_storage_clock_resumes_without_the_wall_clock(
    saved: tuple[int, str, int], now: tuple[str, int], expected_ms: int
) -> None:
    assert resume_ms(*saved, *now) == expected_ms


@pytest.mark.parametrize(
    ("now_ms", "max_age_s", "cutoff_ms"),
    [(100_000, 30.0, 70_000), (10_000, 30.0, -20_000), (30 * 86_400_000 + 5, 30 * DAY, 5)],
)
def test_age_cutoff_on_the_storage_clock(now_ms: int, max_age_s: float, cutoff_ms: int) -> None:
    assert age_cutoff_ms(now_ms, max_age_s) == cutoff_ms


@pytest.mark.parametrize(
    ("wall_delta", "mono_delta", "jumped"),
    # NTP moving an RTC 40 days on; a box booted in 1970 set to the present; a second of scheduling noise
    [(40 * DAY + 1, 1.0, True), (BUILD_S + 1, 1.0, True), (1.9, 1.0, False)],
)
def test_the_jumps_of_issue_14_are_detected(wall_delta: float, mono_delta: float, jumped: bool) -> None:
    assert ClockJumpGuard.jumped(wall_delta, mono_delta, tolerance_s=2.0) is jumped


@pytest.mark.parametrize(
    ("start", "late_s", "interval_s"),
    [
        (BUILD_S, 0.05, 0.1),  # on time
        (BUILD_S, 0.35, 0.1),  # a few runs late (a busy loop)
        (BUILD_S, 40 * DAY, 0.1),  # NTP moved the clock 40 days on: 35 million runs "missed"
        (0.0, BUILD_S + 2 * DAY, 60.0),  # booted in 1970, then the clock was set
    ],
)
def test_a_late_interval_job_finds_its_next_run_in_a_step_or_two(
    start: float, late_s: float, interval_s: float
) -> None:
    first = datetime.fromtimestamp(start, tz=UTC)
    trigger = JumpSafeIntervalTrigger(seconds=interval_s, start_date=first, timezone=UTC)
    now = first + timedelta(seconds=late_s)
    # What APScheduler's Job._get_run_times does with the trigger when the job is due at ``first``.
    due, steps = first, 0
    while due is not None and due <= now:
        due = trigger.get_next_fire_time(due, now)
        steps += 1
        assert steps <= 3, "the trigger walked the missed runs one by one"
    assert due is not None and now < due <= now + timedelta(seconds=interval_s)
    runs = (due - first).total_seconds() / interval_s
    assert abs(runs - round(runs)) < 1e-3, "still on the job's grid"


def test_the_stamper_stamps_provisionally_until_the_clock_is_set_and_says_so_once() -> None:
    clocks = Clocks(wall=3.0, mono=20.0)
    stamp = Stamper(wall=clocks.wall, mono=clocks.mono)
    with structlog.testing.capture_logs() as logs:
        stamps = []
        for _ in range(3):
            stamps.append(stamp())
            clocks.advance(1.5)
        clocks.jump(BUILD_S)
        stamps.append(stamp())
    assert stamps == [-20_001, -21_501, -23_001, int((BUILD_S + 7.5) * 1000)]
    assert [e["event"] for e in logs] == ["wallclock.not_set"]


class FakeOutbox:
    def __init__(self, provisional: int, fail: int = 0) -> None:
        self.provisional = provisional
        self.fail = fail
        self.calls = 0

    async def restamp(self) -> int:
        self.calls += 1
        if self.fail:
            self.fail -= 1
            raise StorageError("disk full")
        restamped, self.provisional = self.provisional, 0
        return restamped


@pytest.mark.parametrize(
    ("provisional", "wall_s", "calls"),
    [(0, BUILD_S + 1, 0), (5, 10.0, 0), (5, BUILD_S - 1, 0), (5, BUILD_S, 1)],
)
async def test_the_restamp_is_asked_for_only_with_points_held_and_the_clock_set(
    provisional: int, wall_s: float, calls: int
) -> None:
    outbox = FakeOutbox(provisional)
    await RestampOnClockSet(outbox).check(wall_s, 100.0)
    assert outbox.calls == calls


async def test_a_failed_restamp_is_retried_with_a_doubling_backoff() -> None:
    outbox = FakeOutbox(5, fail=2)
    trigger = RestampOnClockSet(outbox)
    tried_at = []
    for mono in [0.0, 0.5, 1.0, 2.0, 2.9, 3.0, 4.0]:  # one check a second (or so) from the clock watch
        before = outbox.calls
        await trigger.check(BUILD_S + 10, mono)
        if outbox.calls > before:
            tried_at.append(mono)
    assert tried_at == [0.0, 1.0, 3.0]  # failed at 0 (retry after 1 s), at 1 (after 2 s), done at 3
    assert outbox.provisional == 0


class Collect:
    """Stands in for the outbox: keeps what the sample buffer commits."""

    def __init__(self) -> None:
        self.points: list[Point] = []

    async def put(self, points: list[Point]) -> None:
        self.points.extend(points)


class One:
    """A source that always reads 1, at once."""

    def read_now(self) -> str:
        return "1"

    async def read(self) -> str:
        return "1"

    async def close(self) -> None:
        return None


@pytest.mark.parametrize(
    ("stamps", "kept"),
    [
        ([5_000, 5_000, 5_001], [5_000, 5_001]),  # two overdue ticks run back to back after a stall
        ([-41, -41, -42], [-41, -42]),  # the same, stamped provisionally
        ([5_000, 5_001, 5_000], [5_000, 5_001, 5_000]),  # not the latest stamp: a read all the same
    ],
)
async def test_a_second_tick_in_the_same_millisecond_reads_nothing(
    stamps: list[int], kept: list[int]
) -> None:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.start(paused=True)
    outbox = Collect()
    buffer = SampleBuffer(outbox)  # type: ignore[arg-type]
    next_stamp = iter(stamps)
    sampler = Sampler(scheduler, buffer, stamp=lambda: next(next_stamp))
    try:
        sampler.set_sensors([SensorRuntime("Room", "Level", "number", "s1", 0.1, One())])  # type: ignore[arg-type]
        for _ in stamps:
            await sampler._tick(0.1)
        await buffer.flush()
    finally:
        scheduler.shutdown(wait=False)
    assert [p.time_ms for p in outbox.points] == kept
    assert sampler.stats.skipped_same_time == len(stamps) - len(kept)
