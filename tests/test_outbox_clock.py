"""The outbox and the clocks (issue 14): age on the storage clock, provisional points, the v1 -> v2 upgrade.

Every clock is a :class:`~tests.conftest.Clocks` moved by hand and every boot id is made up, so a 40-day
jump or a reboot takes no time. The pure maths behind this is tabled in tests/unit/test_wallclock.py.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import structlog

from gatewayd.errors import StorageError
from gatewayd.outbox import Outbox, Point
from gatewayd.wallclock import BUILD_EPOCH_MS, TIME_UNKNOWN_REASON, provisional_stamp
from tests.helpers.clocks import Clocks

DAY = 86400.0
NOW = BUILD_EPOCH_MS / 1000 + 30 * DAY  # a wall clock that is set
BOOT_A, BOOT_B = "boot-a", "boot-b"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "outbox.db"


async def open_outbox(path: Path, clocks: Clocks, *, boot: str = BOOT_A, **kw: object) -> Outbox:
    return await Outbox.open(path, clock=clocks.wall, mono=clocks.mono, boot=boot, **kw)  # type: ignore[arg-type]


def sampled(sensor: str, clocks: Clocks, n: int, *, every_s: float = 1.0, tag: str = "") -> list[Point]:
    """``n`` points read ``every_s`` apart ending now, stamped as the sampler does (moves the clocks)."""
    points = []
    for i in range(n):
        wall_ms = int(clocks.wall() * 1000)
        stamp = wall_ms if wall_ms >= BUILD_EPOCH_MS else provisional_stamp(clocks.mono())
        points.append(Point(sensor, stamp, f"{tag or sensor}-{i}"))
        clocks.advance(every_s)
    return points


def table(path: Path, sql: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


# ------------------------------------------------------------------------------------------- age


async def test_a_40_day_forward_wall_jump_drops_nothing(db_path: Path) -> None:
    clocks = Clocks(wall=NOW)
    async with await open_outbox(db_path, clocks, max_age_s=30 * DAY) as ob:
        points = sampled("a", clocks, 5) + sampled("b", clocks, 3)
        await ob.put(points)
        assert await ob.enforce_bounds() == 0
        clocks.jump(40 * DAY)  # NTP steps the clock: every point now looks 40 days old by the wall
        clocks.advance(120)
        assert await ob.enforce_bounds() == 0
        assert ob.stats.dropped == 0 and ob.stats.pending == 8
        lease = await ob.lease("a", 10)
        assert lease is not None and lease.times == [p.time_ms for p in points[:5]]


async def test_a_backward_wall_jump_does_not_keep_points_past_max_age(db_path: Path) -> None:
    clocks = Clocks(wall=NOW)
    async with await open_outbox(db_path, clocks, max_age_s=30 * DAY) as ob:
        await ob.put(sampled("a", clocks, 3))
        await ob.enforce_bounds()
        clocks.jump(-60 * DAY)
        clocks.advance(30 * DAY + 120)
        assert await ob.enforce_bounds() == 3


async def test_an_age_drop_is_counted_and_logged_as_max_age_not_as_outbox_full(db_path: Path) -> None:
    clocks = Clocks(wall=NOW)
    async with await open_outbox(db_path, clocks, max_age_s=60, max_points=100) as ob:
        await ob.put(sampled("a", clocks, 4))
        await ob.enforce_bounds()
        clocks.advance(61)
        with structlog.testing.capture_logs() as logs:
            assert await ob.enforce_bounds() == 4
        drops = [e for e in logs if "dropped" in e["event"]]
        assert [(e["event"], e["reason"], e["dropped"]) for e in drops] == [
            ("outbox.max_age_dropped", "max_age", 4)
        ]
        assert not any("full" in e["event"] for e in logs)
        assert ob.stats.dropped_by_reason == {"max_age": 4}


async def test_points_stored_after_the_last_check_age_from_the_next_open(db_path: Path) -> None:
    clocks = Clocks(wall=NOW)
    async with await open_outbox(db_path, clocks, max_age_s=600) as ob:
        await ob.put(sampled("a", clocks, 2))  # no bound check before the close
    clocks.advance(300)
    async with await open_outbox(db_path, clocks, max_age_s=600) as ob:
        clocks.advance(599)
        assert await ob.enforce_bounds() == 0  # stored 900 s ago, but only marked at this open
        clocks.advance(2)
        assert await ob.enforce_bounds() == 2


async def test_a_restart_within_the_boot_counts_the_time_stopped_a_reboot_does_not(db_path: Path) -> None:
    clocks = Clocks(wall=NOW)
    async with await open_outbox(db_path, clocks, max_age_s=1800) as ob:
        await ob.put(sampled("a", clocks, 2))
        await ob.enforce_bounds()
    clocks.advance(1200)  # stopped for 20 min, same boot: the monotonic clock kept counting
    async with await open_outbox(db_path, clocks, max_age_s=1800) as ob:
        clocks.advance(601)
        assert await ob.enforce_bounds() == 2

    async with await open_outbox(db_path, clocks, max_age_s=1800) as ob:
        await ob.put(sampled("b", clocks, 2))
        await ob.enforce_bounds()
    rebooted = Clocks(wall=clocks.wall() + 1200, mono=5.0)  # off for 20 min: the monotonic clock restarts
    async with await open_outbox(db_path, rebooted, boot=BOOT_B, max_age_s=1800) as ob:
        rebooted.advance(601)
        assert await ob.enforce_bounds() == 0  # the 20 min powered off are not known, so not counted
        rebooted.advance(1200)
        assert await ob.enforce_bounds() == 2


async def test_marks_that_cover_no_point_are_forgotten(db_path: Path) -> None:
    clocks = Clocks(wall=NOW)
    async with await open_outbox(db_path, clocks) as ob:
        for _ in range(3):
            await ob.put(sampled("a", clocks, 2))
            await ob.enforce_bounds()
            clocks.advance(60)
        assert len(table(db_path, "SELECT * FROM age_marks")) == 3
        lease = await ob.lease("a", 4)
        assert lease is not None
        await ob.ack(lease)
        await ob.enforce_bounds()
        assert [row[0] for row in table(db_path, "SELECT upto_id FROM age_marks")] == [6]
        lease = await ob.lease("a", 10)
        assert lease is not None
        await ob.ack(lease)
        await ob.enforce_bounds()
        assert table(db_path, "SELECT * FROM age_marks") == []


# ------------------------------------------------------------------------------------------- provisional points


async def test_points_stamped_before_the_clock_is_set_are_held_then_restamped(db_path: Path) -> None:
    clocks = Clocks(wall=12.0, mono=40.0)  # a box without RTC, 40 s after boot: the wall says 1970
    async with await open_outbox(db_path, clocks) as ob:
        early = sampled("a", clocks, 3, every_s=2.0) + sampled("b", clocks, 2, every_s=2.0)
        await ob.put(early)
        assert (ob.stats.pending, ob.provisional, ob.stats.pending_by_sensor) == (5, 5, {})
        assert ob.sensors_with_pending() == []
        assert await ob.lease("a", 10) is None
        assert await ob.restamp() == 0  # still 1970: nothing to do

        clocks.jump(NOW - clocks.wall())  # NTP sets the clock, 10 s after the first sample
        assert await ob.restamp() == 5
        now_ms = int(NOW * 1000)
        expected_a = [now_ms - 10_000, now_ms - 8_000, now_ms - 6_000]
        expected_b = [now_ms - 4_000, now_ms - 2_000]
        assert (ob.stats.pending, ob.provisional) == (5, 0)
        assert ob.stats.pending_by_sensor == {"a": 3, "b": 2}
        later = sampled("a", clocks, 1, tag="later")
        await ob.put(later)
        lease = await ob.lease("a", 10)
        assert lease is not None
        assert lease.times == [*expected_a, later[0].time_ms]
        assert [p.value for p in lease.points()] == ["a-0", "a-1", "a-2", "later-0"]
        assert (await ob.lease("b", 10) or pytest.fail("b")).times == expected_b
        assert await ob.restamp() == 0


async def test_provisional_points_outlive_a_restart_within_the_boot(db_path: Path) -> None:
    clocks = Clocks(wall=12.0, mono=40.0)
    async with await open_outbox(db_path, clocks) as ob:
        await ob.put(sampled("a", clocks, 2, every_s=5.0))
    clocks.advance(30)
    async with await open_outbox(db_path, clocks) as ob:
        assert (ob.stats.pending, ob.provisional) == (2, 2)
        assert await ob.lease("a", 10) is None
        clocks.jump(NOW - clocks.wall())
        assert await ob.restamp() == 2
        lease = await ob.lease("a", 10)
        assert lease is not None
        assert lease.times == [int(NOW * 1000) - 40_000, int(NOW * 1000) - 35_000]


async def test_provisional_points_of_an_earlier_boot_are_dead_lettered_with_the_reason(db_path: Path) -> None:
    clocks = Clocks(wall=12.0, mono=40.0)
    async with await open_outbox(db_path, clocks) as ob:
        await ob.put(sampled("a", clocks, 3))
    rebooted = Clocks(wall=NOW, mono=8.0)
    with structlog.testing.capture_logs() as logs:
        ob = await open_outbox(db_path, rebooted, boot=BOOT_B)
    async with ob:
        assert (ob.stats.pending, ob.provisional, ob.stats.dead_lettered) == (0, 0, 3)
        dead = await ob.dead_letters()
        assert sorted(json.loads(d["value"]) for d in dead) == ["a-0", "a-1", "a-2"]
        assert {(d["reason"], d["time_ms"], d["sensor_id"]) for d in dead} == {(TIME_UNKNOWN_REASON, 0, "a")}
        assert await ob.restamp() == 0
    warned = [e for e in logs if e["log_level"] == "warning" and e.get("reason") == TIME_UNKNOWN_REASON]
    assert len(warned) == 1 and warned[0]["points"] == 3


async def test_a_batch_with_both_kinds_of_stamps_holds_only_the_provisional_ones(db_path: Path) -> None:
    clocks = Clocks(wall=NOW - 5 * 365 * DAY)  # an RTC years behind
    async with await open_outbox(db_path, clocks) as ob:
        early = sampled("a", clocks, 2, tag="early")
        clocks.jump(NOW - clocks.wall())
        valid = sampled("a", clocks, 2, tag="valid")
        await ob.put(early + valid)
        assert (ob.stats.pending, ob.provisional, ob.stats.pending_by_sensor) == (4, 2, {"a": 2})
        lease = await ob.lease("a", 10)
        assert lease is not None and [p.value for p in lease.points()] == ["valid-0", "valid-1"]


async def test_a_lease_out_while_points_are_restamped_never_deletes_them(db_path: Path) -> None:
    """Re-stamped points get new ids: an ack of a lease taken around them leaves them alone."""
    clocks = Clocks(wall=NOW)
    async with await open_outbox(db_path, clocks) as ob:
        first = sampled("a", clocks, 1, tag="first")
        clocks.jump(-NOW)  # the clock is lost (set back to 1970) ...
        lost = sampled("a", clocks, 1, tag="lost")
        clocks.jump(NOW)  # ... and set again
        last = sampled("a", clocks, 1, tag="last")
        await ob.put(first + lost + last)
        lease = await ob.lease("a", 10)
        assert lease is not None and [p.value for p in lease.points()] == ["first-0", "last-0"]
        assert await ob.restamp() == 1
        await ob.ack(lease)
        assert [p.value for p in await ob.all_points()] == ["lost-0"]
        assert (ob.stats.pending, ob.stats.pending_by_sensor) == (1, {"a": 1})


async def test_a_count_drop_of_provisional_points_keeps_every_count_right(db_path: Path) -> None:
    clocks = Clocks(wall=12.0, mono=40.0)
    async with await open_outbox(db_path, clocks, max_points=3) as ob:
        await ob.put(sampled("a", clocks, 3))
        clocks.jump(NOW - clocks.wall())
        await ob.put(sampled("b", clocks, 2))  # over max_points: the two oldest (provisional) go
        assert (ob.stats.pending, ob.provisional, ob.stats.pending_by_sensor) == (3, 1, {"b": 2})
        assert ob.stats.dropped_by_reason == {"max_points": 2}
        assert await ob.restamp() == 1
        assert ob.stats.pending_by_sensor == {"a": 1, "b": 2}


# ------------------------------------------------------------------------------------------- schema

#: The schema gatewayd wrote before the storage clock (schema_version 1).
V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sensors (num INTEGER PRIMARY KEY, sensor_id TEXT NOT NULL UNIQUE);
CREATE TABLE points (
    id INTEGER PRIMARY KEY AUTOINCREMENT, sensor INTEGER NOT NULL, time_ms INTEGER NOT NULL,
    value TEXT NOT NULL, merged INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX points_by_sensor ON points (sensor, id) WHERE merged = 1;
CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY, sensor_id TEXT NOT NULL, time_ms INTEGER NOT NULL, value TEXT NOT NULL,
    reason TEXT NOT NULL, dead_at_ms INTEGER NOT NULL
);
INSERT INTO meta VALUES ('schema_version', '1'), ('merged_upto', '2');
INSERT INTO sensors VALUES (1, 'a');
"""


def write_v1(path: Path, times_ms: list[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    db.executemany(
        "INSERT INTO points (sensor, time_ms, value, merged) VALUES (1, ?, ?, ?)",
        [(t, f'"v{i}"', int(i < 2)) for i, t in enumerate(times_ms)],
    )
    db.commit()
    db.close()


async def test_a_version_1_database_is_upgraded_and_its_points_age_from_the_upgrade(db_path: Path) -> None:
    clocks = Clocks(wall=NOW)
    old = [int((NOW - 60 * DAY) * 1000) + i for i in range(3)]  # sampled 60 days ago, by the wall
    write_v1(db_path, old)
    with structlog.testing.capture_logs() as logs:
        ob = await open_outbox(db_path, clocks, max_age_s=30 * DAY)
    async with ob:
        assert any(e["event"] == "outbox.schema_upgraded" for e in logs)
        assert table(db_path, "SELECT value FROM meta WHERE key = 'schema_version'") == [("2",)]
        assert (ob.stats.pending, ob.stats.pending_by_sensor) == (3, {"a": 3})
        clocks.advance(120)
        assert await ob.enforce_bounds() == 0
        lease = await ob.lease("a", 10)
        assert lease is not None and lease.times == old
        await ob.release(lease)
        clocks.advance(30 * DAY)
        assert await ob.enforce_bounds() == 3


async def test_a_database_of_a_later_schema_is_refused(db_path: Path) -> None:
    write_v1(db_path, [])
    db = sqlite3.connect(db_path)
    db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StorageError, match="schema version 3 is newer"):
        await open_outbox(db_path, Clocks(wall=NOW))
