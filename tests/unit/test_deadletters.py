"""Dead letters read from outside the daemon (read-only, beside its writes) and requeued under the lock."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gatewayd.errors import StateDirLockedError, StorageError
from gatewayd.outbox import Outbox, Point, deadletters
from gatewayd.statelock import StateLock
from tests.conftest import logs_of
from tests.helpers.clocks import FakeClock

T0 = (int(time.time()) - 600) * 1000
INVALID = "400 INVALID_INPUT: body.value: a temperature value must be a numeric string, not 'open'"
STALE = "400 INVALID_INPUT: body.time 1 is too far in the past"
MISSING = "404 NOT_FOUND: sensor not found"


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    """An open outbox: sensor a has 6 points, of which a-0..a-2 dead-lettered (one per reason), b has 2,
    of which b-0 dead-lettered as missing."""
    ob = await Outbox.open(deadletters.outbox_path(tmp_path))
    await ob.put(
        [Point("a", T0 + i, f"{i}.5") for i in range(6)] + [Point("b", T0 + 100 + i, "1") for i in range(2)]
    )
    for sensor, reason in (("a", INVALID), ("a", STALE), ("a", INVALID), ("b", MISSING)):
        lease = await ob.lease(sensor, 1)
        assert lease is not None
        await ob.dead_letter(lease, reason)
    try:
        yield ob
    finally:
        await ob.close()


async def test_reads_while_the_outbox_is_open_and_writing(outbox: Outbox, tmp_path: Path) -> None:
    path = deadletters.outbox_path(tmp_path)
    st = deadletters.stats(path, top=1)
    assert (st["pending"], st["oldest_pending_ms"], st["sensors_pending"]) == (4, T0 + 3, 2)
    assert st["top_sensors"] == [{"sensor_id": "a", "pending": 3}]
    assert st["dead_letters"] == 4
    assert st["dead_letters_by_reason"] == {"400 INVALID_INPUT": 3, "404 NOT_FOUND": 1}
    latest = deadletters.latest(path, limit=2)
    assert [(d.sensor_id, d.time_ms, d.value, d.reason) for d in latest] == [
        ("b", T0 + 100, '"1"', MISSING),
        ("a", T0 + 2, '"2.5"', INVALID),
    ]
    await outbox.put([Point("c", T0 + 500, "7")])  # the daemon writes on: the next read sees it
    assert deadletters.stats(path, top=5)["pending"] == 5
    assert [d.time_ms for d in deadletters.every(path)] == [T0, T0 + 1, T0 + 2, T0 + 100]


def test_a_missing_outbox_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    path = deadletters.outbox_path(tmp_path)
    with pytest.raises(StorageError, match=f"no outbox at {path}"):
        deadletters.stats(path, top=3)
    assert not path.exists()


async def test_requeue_by_reason_moves_those_back_to_pending_only(outbox: Outbox, tmp_path: Path) -> None:
    await outbox.close()  # the daemon is stopped
    moved = await deadletters.requeue(tmp_path, "too far in the past")
    assert moved == 1
    path = deadletters.outbox_path(tmp_path)
    assert [d.reason for d in deadletters.every(path)] == [INVALID, INVALID, MISSING]
    async with await Outbox.open(path) as ob:
        assert ob.stats.pending == 5 and ob.stats.pending_by_sensor == {"a": 4, "b": 1}
        assert sorted(p.time_ms for p in await ob.all_points(["a"])) == [T0 + 1, T0 + 3, T0 + 4, T0 + 5]
    assert await deadletters.requeue(tmp_path, None) == 3
    assert list(deadletters.every(path)) == []
    assert deadletters.stats(path, top=3)["pending"] == 8


async def test_requeue_is_refused_while_a_daemon_holds_the_state_directory(
    outbox: Outbox, tmp_path: Path
) -> None:
    with StateLock(tmp_path), pytest.raises(StateDirLockedError, match="is running on state_dir"):
        await deadletters.requeue(tmp_path, None)
    assert len(list(deadletters.every(deadletters.outbox_path(tmp_path)))) == 4


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The outbox files read from outside the outbox from now on, one entry per read."""
    paths: list[Path] = []
    real = deadletters._query

    def counting(path: Path, read: Any) -> Any:
        paths.append(path)
        return real(path, read)

    monkeypatch.setattr(deadletters, "_query", counting)
    return paths


async def test_counts_for_metrics_are_read_again_only_when_the_outbox_dead_lettered(
    outbox: Outbox, tmp_path: Path, reads: list[Path]
) -> None:
    counts = deadletters.DeadLetterCounts(deadletters.outbox_path(tmp_path))
    assert await counts.refresh(outbox.stats.dead_lettered) == {"400 INVALID_INPUT": 3, "404 NOT_FOUND": 1}
    reads.clear()  # counted from here
    await counts.refresh(outbox.stats.dead_lettered)
    assert reads == []  # nothing changed: no query
    lease = await outbox.lease("b", 1)
    assert lease is not None
    await outbox.dead_letter(lease, MISSING)
    assert await counts.refresh(outbox.stats.dead_lettered) == {"400 INVALID_INPUT": 3, "404 NOT_FOUND": 2}
    assert len(reads) == 1


async def test_the_oldest_pending_point_is_looked_up_by_id_and_at_most_every_refresh(
    outbox: Outbox, tmp_path: Path, reads: list[Path]
) -> None:
    mono = FakeClock(100.0)
    oldest = deadletters.OldestPending(deadletters.outbox_path(tmp_path), refresh_s=2.0, mono=mono)
    # a-0..a-2 and b-0 are dead letters: a-3 is first in line.
    assert await oldest.refresh(outbox.stats.pending) == T0 + 3 and len(reads) == 1
    lease = await outbox.lease("a", 10)
    assert lease is not None
    await outbox.ack(lease)
    mono.advance(1.9)
    assert await oldest.refresh(outbox.stats.pending) == T0 + 3 and len(reads) == 1  # not looked up again
    mono.advance(0.1)
    assert await oldest.refresh(outbox.stats.pending) == T0 + 101 and len(reads) == 2
    lease = await outbox.lease("b", 10)
    assert lease is not None
    await outbox.ack(lease)
    assert outbox.stats.pending == 0
    assert await oldest.refresh(0) is None and len(reads) == 2  # nothing pending: nothing to look up
    await outbox.put([Point("c", T0 + 500, "1")])
    assert await oldest.refresh(outbox.stats.pending) == T0 + 500 and len(reads) == 3  # at once


async def test_an_unreadable_outbox_gives_no_oldest_point_nor_counts_and_is_logged_once(
    tmp_path: Path,
) -> None:
    oldest = deadletters.OldestPending(tmp_path / "none.db", refresh_s=0.0)
    counts = deadletters.DeadLetterCounts(tmp_path / "none.db")
    with logs_of(deadletters) as logs:
        for dead_lettered in (1, 2, 3):  # the status page asks every second, the counter moving or not
            assert await oldest.refresh(5) is None
            assert await counts.refresh(dead_lettered) == {}
    assert sorted((e["event"], "no outbox at" in e["error"]) for e in logs) == [
        ("outbox.dead_letters_not_counted", True),
        ("outbox.oldest_not_read", True),
    ]
