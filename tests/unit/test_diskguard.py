"""The disk guard's decisions, on a fake outbox and a fake clock: when to retry, what health says, what
is dropped and counted. No sleeps: :meth:`DiskGuard.commit` is driven by hand; the loop runs only with a
flush interval of an hour, to see what wakes it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar, cast

import pytest
import structlog

from gatewayd.errors import DiskFullError, StorageError
from gatewayd.inventory.config import parse_inventory
from gatewayd.outbox import OutboxStats, Point
from gatewayd.runtime.diskguard import DiskGuard, memory_points_for
from gatewayd.runtime.retryepisode import retry_delay
from gatewayd.runtime.sampler import SampleBuffer
from tests.helpers.clocks import FakeClock
from tests.helpers.inventories import inventory_yaml

T = TypeVar("T")


class FakeOutbox:
    """What the guard (and the registry's saver) use of an Outbox; ``full`` makes opening, putting and
    writing aside fail as a full disk does."""

    def __init__(self) -> None:
        self.stats = OutboxStats()
        self.is_open = False
        self.reserve_held = True
        self.full = False
        self.room = False  # what regain_reserve finds
        self.error: StorageError | None = None  # another failure than a full disk, when set
        self.opens = 0
        self.puts = 0
        self.committed: list[Point] = []
        #: ``essential`` of each write aside tried.
        self.asides: list[bool] = []

    def _fail(self, what: str) -> None:
        if self.error is not None:
            raise self.error
        if self.full:
            raise DiskFullError(f"{what}: database or disk is full")

    async def open_db(self) -> None:
        self.opens += 1
        self._fail("cannot open outbox")
        self.is_open = True

    async def put(self, points: list[Point]) -> None:
        self.puts += 1
        self._fail("outbox write failed")
        self.committed.extend(points)

    async def write_aside(self, write: Callable[[], T], *, essential: bool = False) -> T:
        self.asides.append(essential)
        self._fail("cannot write state file")
        return write()

    async def regain_reserve(self) -> bool:
        self.reserve_held = self.reserve_held or self.room
        return self.reserve_held


def make(limit: int = 1000) -> tuple[DiskGuard, FakeOutbox, SampleBuffer, FakeClock]:
    outbox = FakeOutbox()
    clock = FakeClock(1000.0)
    buffer = SampleBuffer(cast(Any, outbox), limit=limit)
    return DiskGuard(cast(Any, outbox), buffer, mono=clock), outbox, buffer, clock


def sample(buffer: SampleBuffer, first: int, count: int) -> list[Point]:
    points = [Point("s1", t, str(t)) for t in range(first, first + count)]
    for point in points:
        buffer.add(point)
    return points


@pytest.mark.parametrize(
    ("failures", "delay"), [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (50, 60.0), (10_000, 60.0)]
)
def test_retry_backoff_doubles_from_1_s_to_1_min(failures: int, delay: float) -> None:
    assert retry_delay(failures) == delay


def sensors_yaml(count: int, interval: str) -> str:
    sensors = "".join(
        f"      - {{name: S{i}, type: number, interval: {interval}, simulate: {{pattern: constant}}}}\n"
        for i in range(count)
    )
    return "  - name: D\n    sensors:\n" + sensors


@pytest.mark.parametrize(
    ("count", "interval", "outbox", "expected"),
    [
        (1, "10s", "", 10_000),  # 60 points in 10 minutes: the floor
        (100, "1s", "", 60_000),  # 100 a second for 10 minutes
        (50, "500ms", "", 60_000),
        (3, "1ms", "", 1_000_000),  # 1.8 million in 10 minutes: the cap
        (0, "1s", "", 10_000),
        (100, "1s", "outbox: {memory_points: 500}\n", 500),  # set: used as it is
        (3, "1ms", "outbox: {memory_points: 2000000}\n", 2_000_000),
    ],
)
def test_memory_points_default_is_ten_minutes_of_sampling_within_bounds(
    count: int, interval: str, outbox: str, expected: int
) -> None:
    text = inventory_yaml("http://127.0.0.1:9", gateway="{name: G}", state_dir=None)
    text += outbox + "devices:\n" + (sensors_yaml(count, interval) if count else "  []\n")
    assert memory_points_for(parse_inventory(text, "<test>", env={})) == expected


async def test_a_full_disk_at_open_is_waited_out_and_the_samples_committed_once_it_has_room() -> None:
    guard, outbox, buffer, clock = make()
    outbox.full = True
    await guard.open()  # no exception: the daemon runs on
    assert not guard.writable and guard.episode.disk_full
    assert guard.problem() == "outbox not writable (disk full): 0 points waiting in memory, 0 dropped"

    points = sample(buffer, 0, 3)
    await guard.commit()  # no retry due yet: not even tried
    assert outbox.opens == 1
    clock.advance(1.0)
    await guard.commit()  # due after 1 s: tried, still full; next in 2 s
    assert outbox.opens == 2
    assert guard.problem() == "outbox not writable (disk full): 3 points waiting in memory, 0 dropped"

    outbox.full = False
    clock.advance(1.5)
    await guard.commit()
    assert outbox.opens == 2  # the backoff holds
    clock.advance(0.5)
    await guard.commit()
    assert outbox.opens == 3 and outbox.is_open
    assert guard.writable and guard.problem() is None and guard.episode.failures == 0
    assert outbox.committed == points and len(buffer) == 0


async def test_past_the_memory_bound_the_oldest_samples_are_dropped_and_counted() -> None:
    guard, outbox, buffer, clock = make(limit=5)
    await guard.open()
    outbox.full = True
    sample(buffer, 0, 2)
    await guard.commit()  # fails: the 2 stay in memory
    assert not guard.writable and len(buffer) == 2
    newest = sample(buffer, 2, 6)[-5:]
    assert buffer.dropped == 3
    assert guard.dropped() == {"memory_full": 3, "shutdown": 0}
    assert guard.problem() == "outbox not writable (disk full): 5 points waiting in memory, 3 dropped"

    outbox.full = False
    clock.advance(1.0)
    await guard.commit()
    assert guard.writable
    assert outbox.committed == newest  # the newest five, in order


async def test_points_leaving_the_outbox_trigger_a_retry_before_the_backoff_ends() -> None:
    guard, outbox, buffer, clock = make()
    await guard.open()
    outbox.full = True
    for _ in range(4):  # four failures in a row: the next try would be 8 s away
        sample(buffer, 0, 1)
        clock.advance(60.0)
        await guard.commit()
    assert guard.episode.failures == 4
    puts = outbox.puts
    clock.advance(1.0)
    await guard.commit()
    assert outbox.puts == puts  # nothing changed: wait
    outbox.stats.acked += 500  # an upload was acknowledged: its pages are free
    outbox.full = False
    await guard.commit()
    assert outbox.puts == puts + 1 and guard.writable


async def test_room_for_the_reserve_again_triggers_a_retry() -> None:
    guard, outbox, buffer, clock = make()
    await guard.open()
    outbox.full = True
    outbox.reserve_held = False  # released when the disk filled
    sample(buffer, 0, 1)
    await guard.commit()
    for _ in range(3):
        clock.advance(60.0)
        await guard.commit()
    puts = outbox.puts
    clock.advance(1.0)
    await guard.commit()
    assert outbox.puts == puts  # checked for room: none
    outbox.full, outbox.room = False, True  # the filler was removed
    clock.advance(1.0)
    await guard.commit()
    assert outbox.reserve_held and guard.writable and outbox.puts == puts + 1


async def test_no_samples_no_recovery_claimed_until_a_commit_worked() -> None:
    guard, outbox, _buffer, clock = make()
    await guard.open()
    outbox.full = True
    await guard.commit()
    assert guard.writable  # nothing to write: nothing failed
    _buffer.add(Point("s1", 1, "1"))
    await guard.commit()
    assert not guard.writable
    outbox.full = False
    clock.advance(10.0)
    await guard.commit()
    assert guard.writable


async def test_other_storage_errors_at_open_stop_the_start() -> None:
    guard, outbox, _buffer, _clock = make()
    outbox.error = StorageError("cannot open outbox /x/outbox.db: unable to open database file")
    with pytest.raises(StorageError, match="unable to open"):
        await guard.open()


async def test_another_storage_error_while_running_is_waited_out_too_and_named() -> None:
    guard, outbox, buffer, _clock = make()
    await guard.open()
    outbox.error = StorageError("outbox write failed: disk I/O error")
    sample(buffer, 0, 2)
    await guard.commit()
    assert not guard.episode.disk_full
    assert guard.problem() == (
        "outbox not writable (outbox write failed: disk I/O error): 2 points waiting in memory, 0 dropped"
    )


async def test_at_stop_what_cannot_be_written_is_dropped_with_a_count() -> None:
    guard, outbox, buffer, _clock = make(limit=3)
    outbox.full = True
    await guard.open()
    sample(buffer, 0, 5)
    with structlog.testing.capture_logs() as logs:
        await guard.final_commit()
    assert len(buffer) == 0
    assert guard.dropped() == {"memory_full": 2, "shutdown": 3}
    [line] = [e for e in logs if e["log_level"] == "error"]
    assert line["dropped"] == 3 and line["dropped_before"] == 2


async def test_at_stop_an_outbox_with_room_again_takes_the_samples() -> None:
    guard, outbox, buffer, _clock = make()
    outbox.full = True
    await guard.open()
    points = sample(buffer, 0, 5)
    outbox.full = False
    await guard.final_commit()
    assert outbox.committed == points and guard.dropped() == {"memory_full": 0, "shutdown": 0}


async def test_while_not_writable_a_line_a_minute_with_the_counts() -> None:
    guard, outbox, buffer, clock = make(limit=10)
    await guard.open()
    outbox.full = True
    with structlog.testing.capture_logs() as logs:
        for second in range(150):
            sample(buffer, second, 1)
            await guard.commit()
            clock.advance(1.0)
    assert logs[0]["event"] == "outbox.not_writable"
    reports = [e for e in logs if e["event"] == "outbox.still_not_writable"]
    assert len(reports) == 2  # at 60 s and 120 s
    assert reports[0]["in_memory"] == 10
    assert reports[0]["dropped"] + reports[1]["dropped"] == reports[1]["dropped_total"] > 0
    outbox.full = False
    clock.advance(60.0)
    with structlog.testing.capture_logs() as logs:
        await guard.commit()
    assert logs[-1]["event"] == "outbox.writable_again"


@contextlib.asynccontextmanager
async def guard_loop(guard: DiskGuard) -> AsyncIterator[list[bool]]:
    """The guard's loop running as a task; yields the passes it made (``writable`` after each commit),
    and cancels it after (again until it ends: ``wait_for`` may swallow a cancel that comes as its wait
    completes)."""
    passes: list[bool] = []
    commit = guard.commit

    async def counted() -> None:
        await commit()
        passes.append(guard.writable)

    guard.commit = counted  # type: ignore[method-assign]
    loop = asyncio.ensure_future(guard.run())
    try:
        yield passes
    finally:
        while not loop.done():
            loop.cancel()
            await asyncio.sleep(0)


async def test_while_not_writable_the_loop_is_not_woken_by_each_sample() -> None:
    """Past ``max_points`` waiting, the buffer signals "full" at every sample: while no retry is due that
    would wake the loop for nothing, at every sample (thousands a second in a big simulation)."""
    guard, outbox, buffer, _clock = make()
    buffer.flush_s = 3600.0  # within the test, only the "full" signal could wake the loop
    buffer.max_points = 10
    outbox.full = True
    await guard.open()
    async with guard_loop(guard) as passes:
        for t in range(100):
            sample(buffer, t, 1)
            await asyncio.sleep(0)
        assert passes == [] and outbox.opens == 1  # not woken: the outbox is not tried again either


async def test_while_writable_the_loop_commits_as_soon_as_max_points_wait() -> None:
    guard, outbox, buffer, _clock = make()
    buffer.flush_s = 3600.0
    buffer.max_points = 10
    await guard.open()
    async with guard_loop(guard) as passes:
        points = sample(buffer, 0, 10)
        for _ in range(50):
            if passes:
                break
            await asyncio.sleep(0)
        assert passes == [True] and outbox.committed == points
