"""The durable outbox (issue 5): unit tests per operation, then a property test over random op sequences.

The property test drives a real Outbox (SQLite on disk) next to a tiny in-memory model and checks after
every step that nothing accepted was lost, nothing acked or dead-lettered comes back, and a point is sent
again only after a release or a crash/restart that found its lease outstanding.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatewayd.errors import DiskFullError, StorageError
from gatewayd.outbox import Lease, Outbox, Point, opening, queue, schema, store
from tests.conftest import logs_of
from tests.helpers.clocks import Clocks

T0 = (int(time.time()) - 3600) * 1000  # a sample time in ms, an hour ago (inside the default max_age)


def pts(sensor: str, n: int, start: int = 0) -> list[Point]:
    return [Point(sensor, T0 + i, f"{sensor}-{i}") for i in range(start, start + n)]


def values(points: list[Point]) -> list[Any]:
    return [p.value for p in points]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "outbox.db"


@pytest.fixture
async def outbox(db_path: Path) -> AsyncIterator[Outbox]:
    ob = await Outbox.open(db_path)
    try:
        yield ob
    finally:
        await ob.close()


def copy_files(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal"):
        if Path(str(src) + suffix).exists():
            shutil.copyfile(Path(str(src) + suffix), Path(str(dest) + suffix))


async def crash_copy(ob: Outbox, dest: Path) -> Path:
    """What a power cut would leave: the db and WAL files as they are on disk now, no checkpoint, no
    shared-memory index. The original outbox is then closed (it touches only its own files)."""
    copy_files(ob.path, dest)  # the outbox is idle between awaited calls: a consistent image
    await ob.close()
    return dest


def overwrite(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def exists(path: Path) -> bool:
    return path.exists()


def open_bytes(path: Path) -> bytes:
    return path.read_bytes()


def smash_pages(path: Path, first: int, count: int, page: int = 4096) -> None:
    """Garbage over whole pages in the middle of the file, the header left valid."""
    raw = bytearray(path.read_bytes())
    assert len(raw) >= (first + count) * page
    raw[first * page : (first + count) * page] = b"\xff" * (count * page)
    path.write_bytes(bytes(raw))


# ------------------------------------------------------------------------------------------ put / lease


async def test_lease_gives_oldest_first_up_to_the_limit(outbox: Outbox) -> None:
    await outbox.put(pts("a", 3))
    await outbox.put(pts("b", 2))
    await outbox.put(pts("a", 4, start=3))

    lease = await outbox.lease("a", 5)
    assert lease is not None
    assert lease.sensor_id == "a"
    assert len(lease) == 5
    assert values(lease.points()) == [f"a-{i}" for i in range(5)]
    assert lease.times == [T0 + i for i in range(5)]
    assert lease.first_id < lease.last_id


async def test_lease_of_a_sensor_with_nothing_pending_is_none(outbox: Outbox) -> None:
    assert await outbox.lease("nobody", 10) is None
    await outbox.put(pts("a", 1))
    assert await outbox.lease("b", 10) is None


async def test_one_lease_per_sensor_at_a_time(outbox: Outbox) -> None:
    await outbox.put(pts("a", 10) + pts("b", 2))
    first = await outbox.lease("a", 3)
    assert first is not None
    assert await outbox.lease("a", 3) is None  # a's lease is still out
    other = await outbox.lease("b", 3)  # other sensors are not affected
    assert other is not None
    assert values(other.points()) == ["b-0", "b-1"]
    await outbox.ack(first)
    second = await outbox.lease("a", 3)
    assert second is not None
    assert values(second.points()) == ["a-3", "a-4", "a-5"]


async def test_lease_many_one_lease_per_sensor_skipping_leased_and_empty(outbox: Outbox) -> None:
    await outbox.put(pts("a", 3) + pts("b", 3) + pts("c", 3))
    held = await outbox.lease("c", 1)
    assert held is not None
    leases = await outbox.lease_many(["a", "b", "a", "c", "nobody"], 2)
    assert [lease.sensor_id for lease in leases] == ["a", "b"]
    assert [values(lease.points()) for lease in leases] == [["a-0", "a-1"], ["b-0", "b-1"]]
    assert await outbox.lease_many(["a", "b", "c"], 2) == []


async def test_sensors_with_pending_leaves_out_leased_sensors(outbox: Outbox) -> None:
    assert outbox.sensors_with_pending() == []
    await outbox.put(pts("a", 2) + pts("b", 2))
    assert sorted(outbox.sensors_with_pending()) == ["a", "b"]
    lease = await outbox.lease("a", 10)
    assert lease is not None
    assert outbox.sensors_with_pending() == ["b"]
    await outbox.ack(lease)
    assert outbox.sensors_with_pending() == ["b"]


async def test_put_of_nothing_is_a_no_op(outbox: Outbox) -> None:
    await outbox.put([])
    assert outbox.stats.put == 0
    assert await outbox.all_points() == []


# ------------------------------------------------------------------------------- ack / release / dead


async def test_ack_deletes_exactly_the_leased_range(outbox: Outbox) -> None:
    await outbox.put(pts("a", 5) + pts("b", 2))
    lease = await outbox.lease("a", 3)
    assert lease is not None
    await outbox.put(pts("a", 2, start=5))  # arrives while the batch is in flight
    await outbox.ack(lease)
    assert values(await outbox.all_points(["a"])) == ["a-3", "a-4", "a-5", "a-6"]
    assert values(await outbox.all_points(["b"])) == ["b-0", "b-1"]
    nxt = await outbox.lease("a", 10)
    assert nxt is not None
    assert values(nxt.points()) == ["a-3", "a-4", "a-5", "a-6"]


async def test_an_ack_whose_caller_is_cancelled_mid_delete_is_still_counted(outbox: Outbox) -> None:
    # The counts change on the loop from what the store reports: a delete that finished after its
    # caller gave up still took the points off the disk, so they must leave the counts too.
    await outbox.put(pts("a", 3) + pts("b", 1))
    lease = await outbox.lease("a", 10)
    assert lease is not None
    started, go_on = threading.Event(), threading.Event()
    delete = outbox.store.delete

    def held_delete(leases: Any) -> list[int]:
        started.set()
        go_on.wait(10)
        return delete(leases)

    outbox.store.delete = held_delete  # type: ignore[method-assign]
    ack = asyncio.ensure_future(outbox.ack(lease))
    assert await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
    ack.cancel()
    go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await ack
    assert values(await outbox.all_points()) == ["b-0"]  # queued behind the delete: counted by now
    assert (outbox.stats.pending, outbox.stats.acked, outbox.stats.pending_by_sensor) == (1, 3, {"b": 1})
    assert outbox.sensors_with_pending() == ["b"] and not outbox.leased


async def test_ack_many_deletes_every_batch_in_one_go(outbox: Outbox) -> None:
    await outbox.put(pts("a", 4) + pts("b", 4))
    leases = await outbox.lease_many(["a", "b"], 3)
    await outbox.ack_many(leases)
    assert values(await outbox.all_points()) == ["a-3", "b-3"]
    assert outbox.stats.acked == 6
    await outbox.ack_many([])  # nothing to do


async def test_lease_and_ack_of_more_sensors_than_one_statement_takes(outbox: Outbox) -> None:
    # 600 sensors: three lease statements and three delete statements; points of all sensors interleaved
    # on disk, as samples arrive, and values that need escaping inside SQLite's JSON text.
    sensors = [f"s{i:03d}" for i in range(600)]
    for step in range(4):
        await outbox.put([Point(s, T0 + step, f'{s} "{step}"\\') for s in sensors])
    leases = await outbox.lease_many(sensors, 3)
    assert [lease.sensor_id for lease in leases] == sensors
    for lease in leases:
        assert lease.times == [T0, T0 + 1, T0 + 2]
        assert values(lease.points()) == [f'{lease.sensor_id} "{i}"\\' for i in range(3)]
    await outbox.ack_many(leases)
    assert outbox.stats.pending == 600 and outbox.stats.acked == 1800
    assert values(await outbox.all_points(["s599"])) == ['s599 "3"\\']
    assert sum(outbox.stats.pending_by_sensor.values()) == 600


async def test_an_sqlite_without_json_functions_is_named_before_the_outbox_is_touched(db_path: Path) -> None:
    real_connect = sqlite3.connect

    class NoJson:
        def __init__(self) -> None:
            self.db = real_connect(":memory:")

        def execute(self, sql: str, *args: Any) -> Any:
            if "json" in sql:
                raise sqlite3.OperationalError("no such function: json_array")
            return self.db.execute(sql, *args)

        def close(self) -> None:
            self.db.close()

    with (
        mock.patch.object(sqlite3, "connect", lambda *a, **k: NoJson()),
        pytest.raises(StorageError, match=r"no JSON functions.*3\.38"),
    ):
        await Outbox.open(db_path)
    assert not exists(db_path)  # not created, not taken for corrupt and moved aside


async def test_release_makes_the_batch_leasable_again_in_the_same_order(outbox: Outbox) -> None:
    await outbox.put(pts("a", 5))
    lease = await outbox.lease("a", 3)
    assert lease is not None
    await outbox.release(lease)
    again = await outbox.lease("a", 10)
    assert again is not None
    assert values(again.points()) == [f"a-{i}" for i in range(5)]
    assert again.first_id == lease.first_id
    assert outbox.stats.released == 3
    assert outbox.stats.pending == 5


async def test_dead_letter_moves_the_batch_aside_with_the_reason(outbox: Outbox) -> None:
    await outbox.put(pts("a", 4))
    lease = await outbox.lease("a", 2)
    assert lease is not None
    await outbox.dead_letter(lease, "400 invalid value")
    assert values(await outbox.all_points()) == ["a-2", "a-3"]
    nxt = await outbox.lease("a", 10)  # the sensor is free again, the rejected points never come back
    assert nxt is not None
    assert values(nxt.points()) == ["a-2", "a-3"]
    dead = await outbox.dead_letters()
    assert [(d["sensor_id"], d["time_ms"], d["value"], d["reason"]) for d in dead] == [
        ("a", T0 + 1, '"a-1"', "400 invalid value"),
        ("a", T0 + 0, '"a-0"', "400 invalid value"),
    ]
    assert all(isinstance(d["dead_at_ms"], int) for d in dead)
    assert outbox.stats.dead_lettered == 2
    assert outbox.stats.pending == 2


async def test_dead_letter_table_is_bounded_keeping_the_newest(db_path: Path) -> None:
    async with await Outbox.open(db_path, dead_letter_limit=5) as ob:
        await ob.put(pts("a", 9))
        for _ in range(3):
            lease = await ob.lease("a", 3)
            assert lease is not None
            await ob.dead_letter(lease, "rejected")
        dead = await ob.dead_letters(limit=100)
        assert [d["value"] for d in dead] == [f'"a-{i}"' for i in range(8, 3, -1)]
        assert ob.stats.dead_lettered == 9  # counted even when no longer kept
        assert ob.stats.pending == 0


async def test_dead_letter_reason_is_truncated(outbox: Outbox) -> None:
    await outbox.put(pts("a", 1))
    lease = await outbox.lease("a", 1)
    assert lease is not None
    await outbox.dead_letter(lease, "x" * 5000)
    (dead,) = await outbox.dead_letters()
    assert len(dead["reason"]) == 500


# ---------------------------------------------------------------------------------- stats and values


async def test_stats_counters(outbox: Outbox) -> None:
    await outbox.put(pts("a", 6) + pts("b", 3))
    s = outbox.stats
    assert (s.pending, s.put) == (9, 9)
    assert s.pending_by_sensor == {"a": 6, "b": 3}

    la = await outbox.lease("a", 2)
    lb = await outbox.lease("b", 3)
    assert la is not None and lb is not None
    assert s.pending == 9  # leased points are still pending until acked
    await outbox.ack(la)
    await outbox.release(lb)
    lb = await outbox.lease("b", 1)
    assert lb is not None
    await outbox.dead_letter(lb, "no")
    assert (s.pending, s.acked, s.released, s.dead_lettered, s.dropped) == (6, 2, 3, 1, 0)
    assert s.pending_by_sensor == {"a": 4, "b": 2}

    la = await outbox.lease("a", 10)
    assert la is not None
    await outbox.ack(la)
    assert s.pending_by_sensor == {"b": 2}  # a drained sensor disappears from the map
    assert s.pending == len(await outbox.all_points())


async def test_values_round_trip(outbox: Outbox) -> None:
    vals: list[str | dict[str, Any]] = [
        "21.5",
        "",
        'quote " and \\ backslash',
        "unicode: °C, 한국어, emoji 🌡",
        {"lat": 37.5, "lng": 127.0, "alt": None},
        {"nested": {"list": [1, 2.5, "x", True], "empty": {}}},
    ]
    await outbox.put([Point("s", T0 + i, v) for i, v in enumerate(vals)])
    assert values(await outbox.all_points()) == vals
    lease = await outbox.lease("s", 100)
    assert lease is not None
    assert values(lease.points()) == vals
    # values are JSON text, compact, ready to splice into a request body
    assert lease.values[0] == '"21.5"'
    assert lease.values[4] == '{"lat":37.5,"lng":127.0,"alt":null}'


# ------------------------------------------------------------------------------------------- bounds


async def test_max_points_drops_the_oldest_and_counts_them(db_path: Path) -> None:
    async with await Outbox.open(db_path, max_points=10) as ob:
        await ob.put(pts("a", 6))
        await ob.put(pts("b", 6))
        await ob.put(pts("a", 3, start=6))
        remaining = await ob.all_points()
        assert values(remaining) == ["a-5", *[f"b-{i}" for i in range(6)], "a-6", "a-7", "a-8"]
        assert ob.stats.dropped == 5
        assert ob.stats.pending == 10
        assert ob.stats.pending_by_sensor == {"a": 4, "b": 6}
        assert await ob.enforce_bounds() == 0  # already within bounds


async def test_max_points_drop_is_logged(db_path: Path) -> None:
    async with await Outbox.open(db_path, max_points=2) as ob:
        with logs_of(queue) as logs:
            await ob.put(pts("a", 5))
        drops = [e for e in logs if e["event"] == "outbox.max_points_dropped"]
        assert len(drops) == 1
        assert drops[0]["dropped"] == 3
        assert drops[0]["log_level"] == "warning"
        with logs_of(queue) as logs:
            await ob.put(pts("a", 1, start=5))  # within the minute: counted, not logged again
        assert not [e for e in logs if e["event"] == "outbox.max_points_dropped"]
        assert ob.stats.dropped == 4


async def test_max_age_drops_points_stored_longer_than_the_limit(db_path: Path) -> None:
    clocks = Clocks(wall=T0 / 1000)
    async with await Outbox.open(db_path, max_age_s=1800, clock=clocks.wall, mono=clocks.mono) as ob:
        await ob.put([Point("a", T0 + i * 1000, f"old-{i}") for i in range(3)] + [Point("b", T0, "b-old")])
        assert await ob.enforce_bounds() == 0  # the bound check marks them as stored now
        clocks.advance(3000)  # 50 min later
        await ob.put([Point("a", T0 + 3_000_000 + i, f"new-{i}") for i in range(2)])
        assert await ob.enforce_bounds() == 4  # the old ones have been stored 50 min: past 30 min
        assert values(await ob.all_points()) == ["new-0", "new-1"]
        assert ob.stats.dropped == 4
        assert ob.stats.dropped_by_reason == {"max_age": 4}
        assert ob.stats.pending_by_sensor == {"a": 2}
        clocks.advance(3600)  # another hour: the rest ages out too
        assert await ob.enforce_bounds() == 2
        assert ob.stats.pending == 0
        assert await ob.lease("a", 10) is None


async def test_enforce_bounds_also_applies_max_points(db_path: Path) -> None:
    async with await Outbox.open(db_path) as ob:
        await ob.put(pts("a", 8))
    async with await Outbox.open(db_path, max_points=5) as ob:  # limit lowered in the inventory
        assert ob.stats.pending == 8
        assert await ob.enforce_bounds() == 3
        assert values(await ob.all_points()) == [f"a-{i}" for i in range(3, 8)]


async def test_stale_lease_whose_points_were_dropped_never_deletes_newer_points(db_path: Path) -> None:
    """Regression: ids must never be reused, or a late ack of a trimmed lease deletes unsent points."""
    async with await Outbox.open(db_path, max_points=3) as ob:
        await ob.put(pts("a", 3))
        slow = await ob.lease("a", 10)  # a's send hangs ...
        assert slow is not None
        await ob.put(pts("b", 3))  # ... while the outbox fills: a's leased points are the oldest, dropped
        fast = await ob.lease("b", 10)
        assert fast is not None
        await ob.ack(fast)  # the table is empty now
        await ob.put(pts("a", 2, start=3))
        await ob.ack(slow)  # the late ack of the dropped batch
        assert values(await ob.all_points()) == ["a-3", "a-4"]
        assert ob.stats.pending == 2
        nxt = await ob.lease("a", 10)
        assert nxt is not None
        assert values(nxt.points()) == ["a-3", "a-4"]


async def test_ack_of_a_lease_partly_dropped_keeps_counts_right(db_path: Path) -> None:
    async with await Outbox.open(db_path, max_points=4) as ob:
        await ob.put(pts("a", 4))
        lease = await ob.lease("a", 4)
        assert lease is not None
        await ob.put(pts("b", 2))  # drops a-0, a-1 (leased)
        await ob.ack(lease)
        assert values(await ob.all_points()) == ["b-0", "b-1"]
        s = ob.stats
        assert (s.pending, s.acked, s.dropped) == (2, 2, 2)
        assert s.pending_by_sensor == {"b": 2}


# ---------------------------------------------------------------------------------- restart / crash


async def test_reopen_after_close_keeps_pending_points(db_path: Path) -> None:
    async with await Outbox.open(db_path) as ob:
        await ob.put(pts("a", 3) + pts("b", 2))
        lease = await ob.lease("a", 1)
        assert lease is not None
        await ob.ack(lease)
    async with await Outbox.open(db_path) as ob:
        assert ob.stats.pending == 4
        assert ob.stats.pending_by_sensor == {"a": 2, "b": 2}
        assert ob.stats.put == 0  # counters are since start
        lease = await ob.lease("a", 10)
        assert lease is not None
        assert values(lease.points()) == ["a-1", "a-2"]
        await ob.put(pts("a", 1, start=3))
        assert values(await ob.all_points(["a"])) == ["a-1", "a-2", "a-3"]


async def test_leases_outstanding_at_a_restart_are_pending_again(db_path: Path) -> None:
    async with await Outbox.open(db_path) as ob:
        await ob.put(pts("a", 5))
        lease = await ob.lease("a", 3)
        assert lease is not None
    async with await Outbox.open(db_path) as ob:
        again = await ob.lease("a", 3)
        assert again is not None
        assert values(again.points()) == ["a-0", "a-1", "a-2"]


async def test_a_crash_with_a_lease_out_loses_nothing_and_resends_only_that_batch(tmp_path: Path) -> None:
    ob = await Outbox.open(tmp_path / "a" / "outbox.db")
    await ob.put(pts("a", 5) + pts("b", 2))
    done = await ob.lease("b", 10)
    assert done is not None
    await ob.ack(done)
    in_flight = await ob.lease("a", 3)
    assert in_flight is not None
    crashed = await crash_copy(ob, tmp_path / "b" / "outbox.db")
    async with await Outbox.open(crashed) as ob2:
        assert ob2.stats.pending == 5
        assert ob2.stats.pending_by_sensor == {"a": 5}
        again = await ob2.lease("a", 10)
        assert again is not None
        assert values(again.points()) == [f"a-{i}" for i in range(5)]
        assert await ob2.lease("b", 10) is None  # the acked batch does not come back


async def test_a_corrupt_database_is_moved_aside_and_a_fresh_one_started(db_path: Path) -> None:
    async with await Outbox.open(db_path) as ob:
        await ob.put(pts("a", 100))
    overwrite(db_path, b"this is not a database, just garbage " * 200)
    with logs_of(opening) as logs:
        ob = await Outbox.open(db_path)
    try:
        aside = [
            a for a in db_path.parent.glob("outbox.db.corrupt-*") if not a.name.endswith(("-wal", "-shm"))
        ]
        assert len(aside) == 1, list(db_path.parent.iterdir())
        assert open_bytes(aside[0]).startswith(b"this is not a database")  # kept for forensics
        errors = [e for e in logs if e["log_level"] == "error"]
        assert errors and "corrupt" in errors[0]["event"]
        assert ob.stats.recovered_corrupt == 1
        assert ob.stats.pending == 0
        await ob.put(pts("a", 2))
        lease = await ob.lease("a", 10)
        assert lease is not None
        assert values(lease.points()) == ["a-0", "a-1"]
    finally:
        await ob.close()
    async with await Outbox.open(db_path) as ob:  # the fresh file is fine: no crash loop
        assert ob.stats.recovered_corrupt == 0
        assert ob.stats.pending == 2


async def test_a_database_damaged_in_the_middle_is_moved_aside(db_path: Path) -> None:
    async with await Outbox.open(db_path) as ob:
        await ob.put(pts("a", 2000))
    smash_pages(db_path, first=2, count=2)
    async with await Outbox.open(db_path) as ob:
        assert ob.stats.recovered_corrupt == 1
        assert list(db_path.parent.glob("outbox.db.corrupt-*"))
        await ob.put(pts("a", 1))
        assert ob.stats.pending == 1


class _UnreadablePage(sqlite3.Connection):
    """A connection whose integrity check meets a page the disk would not give back (an I/O error), as
    SQLite reports one: a row of the check, not an exception."""

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "PRAGMA quick_check":
            row = "*** in database main ***\nPage 3: unable to get the page. error code=266"
            return super().execute("SELECT ?", (row,))
        return super().execute(sql, *args)


async def test_a_page_the_check_cannot_read_is_an_io_error_and_the_database_stays(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with await Outbox.open(db_path) as ob:
        await ob.put(pts("a", 100))
    real_connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **kw: real_connect(*a, factory=_UnreadablePage, **kw))
    with pytest.raises(StorageError, match="error code=266") as info:
        await Outbox.open(db_path)
    assert not isinstance(info.value, DiskFullError)  # the disk has room: an I/O error, not a full disk
    assert not list(db_path.parent.glob("outbox.db.corrupt-*"))  # not taken for damage: nothing moved
    monkeypatch.undo()
    async with await Outbox.open(db_path) as ob:  # the reads work again: every point is there
        assert ob.stats.recovered_corrupt == 0 and ob.stats.pending == 100


# ------------------------------------------------------------------------------- index merge (bulk)


async def test_points_are_indexed_in_chunks_without_changing_what_leases_see(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "_MERGE_CHUNK", 4)
    async with await Outbox.open(db_path) as ob:
        for k in range(5):  # 3 points per put: every second put merges
            await ob.put(pts("a", 2, start=2 * k) + pts("b", 1, start=k))
        lease = await ob.lease("a", 7)  # merges the rest, 4 rows per transaction
        assert lease is not None
        assert values(lease.points()) == [f"a-{i}" for i in range(7)]
        await ob.ack(lease)
        await ob.put(pts("a", 1, start=10))  # not merged yet
        lb = await ob.lease("b", 10)
        assert lb is not None
        assert values(lb.points()) == [f"b-{i}" for i in range(5)]
        rest = await ob.lease("a", 10)
        assert rest is not None
        assert values(rest.points()) == ["a-7", "a-8", "a-9", "a-10"]
        assert ob.stats.pending == 9


async def test_points_not_yet_indexed_survive_a_crash(tmp_path: Path) -> None:
    ob = await Outbox.open(tmp_path / "a" / "outbox.db")
    await ob.put(pts("a", 3))
    lease = await ob.lease("a", 10)  # indexes a-0..a-2
    assert lease is not None
    await ob.put(pts("a", 2, start=3) + pts("b", 2))  # put after the lease: not indexed at the crash
    crashed = await crash_copy(ob, tmp_path / "b" / "outbox.db")
    async with await Outbox.open(crashed) as ob2:
        assert ob2.stats.pending_by_sensor == {"a": 5, "b": 2}
        again = await ob2.lease("a", 10)
        assert again is not None
        assert values(again.points()) == [f"a-{i}" for i in range(5)]


# ---------------------------------------------------------------------------------------- event loop


async def test_a_big_put_does_not_block_the_event_loop(outbox: Outbox) -> None:
    big = [Point(f"s{i % 50}", T0 + i, str(i)) for i in range(100_000)]
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    t0 = time.perf_counter()
    await outbox.put(big)
    took = time.perf_counter() - t0
    stop.set()
    await task
    assert outbox.stats.pending == 100_000
    # the loop kept turning while the put ran on the outbox thread
    assert len(gaps) >= 5, (took, gaps)
    # blocked, the loop would stall for the whole put; a busy box stretches single gaps, never to that
    assert max(gaps) < max(0.5, took / 2), (took, max(gaps))


async def test_concurrent_puts_and_acks_keep_counts_exact(outbox: Outbox) -> None:
    """Counters change on the loop from what the store returned: no lost updates when calls overlap."""

    async def producer(k: int) -> None:
        for r in range(20):
            await outbox.put([Point(f"s{(k + j) % 7}", T0 + r, f"{k}-{r}-{j}") for j in range(25)])

    async def consumer() -> None:
        for _ in range(60):
            leases = await outbox.lease_many(outbox.sensors_with_pending(), 10)
            await outbox.ack_many(leases[::2])
            for lease in leases[1::2]:
                await outbox.release(lease)
            await asyncio.sleep(0)

    await asyncio.gather(*(producer(k) for k in range(4)), consumer(), consumer())
    stored = await outbox.all_points()
    assert outbox.stats.pending == len(stored)
    assert outbox.stats.pending_by_sensor == dict(Counter(p.sensor_id for p in stored))
    assert outbox.stats.put == outbox.stats.acked + outbox.stats.pending


# ---------------------------------------------------------------------------------------- properties

SENSORS = ("a", "b", "c")
sensor_st = st.sampled_from(SENSORS)
op_st = st.one_of(
    st.tuples(st.just("put"), st.lists(sensor_st, min_size=1, max_size=6)),
    st.tuples(st.just("lease"), sensor_st, st.integers(1, 4)),
    st.tuples(st.just("lease_many"), st.integers(1, 3)),
    st.tuples(st.just("ack"), sensor_st),
    st.tuples(st.just("ack_all")),
    st.tuples(st.just("release"), sensor_st),
    st.tuples(st.just("dead_letter"), sensor_st),
    st.tuples(st.just("restart")),
    st.tuples(st.just("crash")),
)


@dataclass
class Model:
    """What the outbox must hold: every pending point in put order (leased ones included).

    Points are told apart by their sample time, unique per example; the sets hold those times."""

    pending: list[Point] = field(default_factory=list)
    leases: dict[str, tuple[Lease, list[Point]]] = field(default_factory=dict)
    acked: set[int] = field(default_factory=set)
    dead: set[int] = field(default_factory=set)
    dropped: set[int] = field(default_factory=set)
    sent: set[int] = field(default_factory=set)  # ever handed out by a lease
    resend_ok: set[int] = field(default_factory=set)  # released, or in flight at a crash/restart
    resent_after_crash: set[int] = field(default_factory=set)
    in_flight_at_crash: set[int] = field(default_factory=set)

    def expected_lease(self, sensor: str, limit: int) -> list[Point]:
        return [p for p in self.pending if p.sensor_id == sensor][:limit]

    def remove(self, gone: list[Point]) -> None:
        ids = {p.time_ms for p in gone}
        self.pending = [p for p in self.pending if p.time_ms not in ids]


async def run_ops(root: Path, ops: list[tuple[Any, ...]], max_points: int) -> Model:
    gen = 0
    ob = await Outbox.open(root / f"g{gen}" / "outbox.db", max_points=max_points, put_synchronous="NORMAL")
    m = Model()
    seq = 0

    def handed_out(sensor: str, lease: Lease | None, expected: list[Point]) -> None:
        got = lease.points() if lease else []
        assert got == expected, (sensor, got, expected)  # oldest first, exactly the limit
        for p in got:
            assert p.time_ms not in m.acked and p.time_ms not in m.dead and p.time_ms not in m.dropped
            if p.time_ms in m.sent:  # a second send: only after a release or a crash/restart
                assert p.time_ms in m.resend_ok, p
                m.resend_ok.discard(p.time_ms)
                if p.time_ms in m.in_flight_at_crash:
                    m.resent_after_crash.add(p.time_ms)
            m.sent.add(p.time_ms)
        if lease is not None:
            m.leases[sensor] = (lease, got)

    def finished(sensor: str) -> list[Point]:
        """The lease is settled: its points that are still stored (bounds may have dropped some)."""
        _lease, got = m.leases.pop(sensor)
        still = {p.time_ms for p in m.pending}
        return [p for p in got if p.time_ms in still]

    try:
        for op in ops:
            kind = op[0]
            if kind == "put":
                batch = []
                for sensor in op[1]:
                    batch.append(Point(sensor, T0 + seq, f"{sensor}:{seq}" if seq % 3 else {"n": seq}))
                    seq += 1
                await ob.put(batch)
                m.pending.extend(batch)
                if len(m.pending) > max_points:  # the oldest go, leased or not
                    cut = len(m.pending) - max_points
                    m.dropped.update(p.time_ms for p in m.pending[:cut])
                    m.pending = m.pending[cut:]
            elif kind == "lease":
                sensor, limit = op[1], op[2]
                lease = await ob.lease(sensor, limit)
                if sensor in m.leases:
                    assert lease is None
                else:
                    handed_out(sensor, lease, m.expected_lease(sensor, limit))
            elif kind == "lease_many":
                limit = op[1]
                free = [s for s in SENSORS if s not in m.leases]
                expected = {s: m.expected_lease(s, limit) for s in free}
                leases = await ob.lease_many(SENSORS, limit)
                by_sensor = {lease.sensor_id: lease for lease in leases}
                assert set(by_sensor) == {s for s, e in expected.items() if e}
                for s, lease in by_sensor.items():
                    handed_out(s, lease, expected[s])
            elif kind in ("ack", "dead_letter"):
                sensor = op[1]
                if sensor not in m.leases:
                    continue
                lease = m.leases[sensor][0]
                gone = finished(sensor)
                if kind == "ack":
                    await ob.ack(lease)
                    m.acked.update(p.time_ms for p in gone)
                else:
                    await ob.dead_letter(lease, "rejected")
                    m.dead.update(p.time_ms for p in gone)
                m.remove(gone)
            elif kind == "ack_all":
                leases = [lease for lease, _ in m.leases.values()]
                for sensor in list(m.leases):
                    gone = finished(sensor)
                    m.acked.update(p.time_ms for p in gone)
                    m.remove(gone)
                await ob.ack_many(leases)
            elif kind == "release":
                sensor = op[1]
                if sensor not in m.leases:
                    continue
                lease, got = m.leases.pop(sensor)
                await ob.release(lease)
                m.resend_ok.update(p.time_ms for p in got)
            elif kind in ("restart", "crash"):
                in_flight = {p.time_ms for _, got in m.leases.values() for p in got}
                m.resend_ok |= in_flight
                m.in_flight_at_crash |= in_flight
                m.leases.clear()
                if kind == "restart":
                    await ob.close()
                    path = ob.path
                else:
                    gen += 1
                    path = await crash_copy(ob, root / f"g{gen}" / "outbox.db")
                ob = await Outbox.open(path, max_points=max_points, put_synchronous="NORMAL")

            # invariants after every step: nothing lost, nothing twice, counts agree with the disk
            stored = await ob.all_points()
            assert stored == m.pending
            assert len({p.time_ms for p in stored}) == len(stored)
            assert ob.stats.pending == len(m.pending)
            assert ob.stats.pending_by_sensor == dict(Counter(p.sensor_id for p in m.pending))
            assert sorted(ob.sensors_with_pending()) == sorted(
                {p.sensor_id for p in m.pending} - set(m.leases)
            )
    finally:
        await ob.close()
    assert m.resent_after_crash <= m.in_flight_at_crash
    return m


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    ops=st.lists(op_st, min_size=1, max_size=40),
    max_points=st.sampled_from([1_000_000, 1_000_000, 6]),
    merge_chunk=st.sampled_from([50_000, 3]),  # 3: puts trigger merges, merges take several transactions
)
def test_random_operations_never_lose_or_duplicate_a_point(
    ops: list[tuple[Any, ...]], max_points: int, merge_chunk: int
) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="outbox-prop-") as tmp,
        mock.patch.object(store, "_MERGE_CHUNK", merge_chunk),
    ):
        m = asyncio.run(run_ops(Path(tmp), ops, max_points))
    if max_points >= 1_000_000:
        assert not m.dropped


def test_the_schema_never_reuses_point_ids(tmp_path: Path) -> None:
    """Leases name id ranges, so a freed id must never come back (see the stale-lease regression test)."""

    async def fill() -> None:
        async with await Outbox.open(tmp_path / "o.db") as ob:
            await ob.put(pts("a", 3))
            lease = await ob.lease("a", 3)
            assert lease is not None
            await ob.ack(lease)
            await ob.put(pts("a", 1, start=3))

    asyncio.run(fill())
    with sqlite3.connect(tmp_path / "o.db") as db:
        assert db.execute("SELECT id FROM points").fetchall() == [(4,)]
    db.close()


def test_lease_lists_are_put_in_id_order_if_sqlite_ever_aggregates_out_of_order() -> None:
    in_order = schema.in_id_order([1, 5, 9], [10, 50, 90], ['"a"', '"b"', '"c"'])
    assert in_order == ([1, 5, 9], [10, 50, 90], ['"a"', '"b"', '"c"'])
    shuffled = schema.in_id_order([9, 1, 5], [90, 10, 50], ['"c"', '"a"', '"b"'])
    assert shuffled == ([1, 5, 9], [10, 50, 90], ['"a"', '"b"', '"c"'])
