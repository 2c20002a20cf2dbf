"""The outbox on a disk that is really full (a small tmpfs filled up): never taken for corrupt, acks
still go through on the reserve, the file does not grow into that room, and all is well once there is
room again."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gatewayd.errors import DiskFullError
from gatewayd.outbox import Outbox, Point
from gatewayd.outbox.diskreserve import RESERVE_BYTES, DiskReserve
from gatewayd.runtime.diskguard import DiskGuard
from gatewayd.runtime.sampler import SampleBuffer
from tests.conftest import SmallDisk

T0 = (int(time.time()) - 60) * 1000


def pts(sensor: str, n: int, start: int = 0) -> list[Point]:
    return [Point(sensor, T0 + i, f"{sensor}-{i}") for i in range(start, start + n)]


def corrupt_copies(directory: Path) -> list[Path]:
    return list(directory.glob("*.corrupt-*"))


async def outbox_with_points(disk: SmallDisk, n: int = 300) -> Path:
    path = disk.path / "outbox.db"
    async with await Outbox.open(path) as ob:
        await ob.put(pts("a", n))
        assert ob.reserve_held
    assert (disk.path / "outbox.reserve").stat().st_size == RESERVE_BYTES
    return path


async def test_a_full_disk_at_open_is_a_disk_full_error_and_the_database_stays(small_disk: SmallDisk) -> None:
    path = await outbox_with_points(small_disk)
    (small_disk.path / "outbox.reserve").unlink()  # a disk that filled before any reserve was taken
    small_disk.fill()
    with pytest.raises(DiskFullError, match="cannot open outbox"):
        await Outbox.open(path)
    assert corrupt_copies(small_disk.path) == []
    assert path.exists()

    small_disk.unfill()
    async with await Outbox.open(path) as ob:
        assert ob.stats.recovered_corrupt == 0
        assert ob.stats.pending == 300
        lease = await ob.lease("a", 1000)
        assert lease is not None and lease.points() == pts("a", 300)
        assert ob.reserve_held  # taken again: there is room


async def test_on_a_full_disk_the_reserve_lets_it_open_and_ack_but_not_grow(small_disk: SmallDisk) -> None:
    path = await outbox_with_points(small_disk)
    small_disk.fill()
    assert small_disk.free_bytes() < 64 * 1024
    async with await Outbox.open(path) as ob:  # the reserve is given up for it
        assert not ob.reserve_held
        # Opening writes a few pages (the -shm file, the storage clock's age mark), no more.
        assert small_disk.free_bytes() >= RESERVE_BYTES - 128 * 1024
        room = small_disk.free_bytes()
        lease = await ob.lease("a", 200)
        assert lease is not None
        await ob.ack(lease)  # acks go through: the cloud's copy does not come back as a duplicate
        assert ob.stats.pending == 100

        # New points fill the pages the ack freed, and no more: the released room stays for acks.
        await ob.put(pts("b", 50))
        with pytest.raises(DiskFullError, match="outbox write failed"):
            await ob.put(pts("c", 20_000))
        assert small_disk.free_bytes() >= room - 256 * 1024
        assert ob.stats.pending == 150

        small_disk.unfill()
        assert await ob.regain_reserve()
        await ob.put(pts("c", 20_000))  # the file grows again
        assert ob.stats.pending == 20_150
    assert corrupt_copies(small_disk.path) == []


async def test_the_reserve_is_taken_only_with_room_for_it_and_as_much_again(small_disk: SmallDisk) -> None:
    reserve = DiskReserve(small_disk.path / "outbox.reserve", 2 * 1024 * 1024)
    small_disk.fill(leave=3 * 1024 * 1024)
    assert not reserve.take(now=True)
    assert not reserve.path.exists()
    small_disk.unfill()
    assert reserve.take(now=True) and reserve.held
    assert reserve.path.stat().st_blocks * 512 >= reserve.size  # allocated, not a sparse promise
    free = small_disk.free_bytes()
    assert reserve.release() and not reserve.path.exists()
    assert small_disk.free_bytes() >= free + reserve.size
    assert not reserve.release()  # nothing left to give


def test_a_reserve_left_by_an_earlier_run_is_adopted(tmp_path: Path) -> None:
    first = DiskReserve(tmp_path / "outbox.reserve", 1024 * 1024)
    assert first.take(now=True)
    again = DiskReserve(tmp_path / "outbox.reserve", 1024 * 1024)
    assert again.take(now=True) and again.held
    assert again.release() and not (tmp_path / "outbox.reserve").exists()


async def test_a_disk_with_room_short_of_the_reserve_and_as_much_again_still_takes_points(
    small_disk: SmallDisk,
) -> None:
    # 6 MiB free: too little to take the reserve (it wants twice its 4 MiB), plenty for samples.
    small_disk.fill(leave=6 * 1024 * 1024)
    async with await Outbox.open(small_disk.path / "outbox.db") as ob:
        assert not ob.reserve_held
        await ob.put(pts("a", 20_000))  # about 0.7 MiB: the file grows into the room past one reserve
        assert ob.stats.pending == 20_000
        assert small_disk.free_bytes() >= RESERVE_BYTES  # a reserve's worth stays free for the acks
        with pytest.raises(DiskFullError, match="outbox write failed"):
            await ob.put(pts("b", 200_000))  # about 7 MiB: more than there is room for, past that
        assert small_disk.free_bytes() >= RESERVE_BYTES
        assert ob.stats.pending == 20_000
    assert corrupt_copies(small_disk.path) == []


async def test_on_a_full_disk_samples_in_memory_fill_what_acks_freed_even_when_more_wait(
    small_disk: SmallDisk,
) -> None:
    path = await outbox_with_points(small_disk, n=3_000)
    small_disk.fill()
    async with await Outbox.open(path) as ob:
        buffer = SampleBuffer(ob, limit=50_000)
        guard = DiskGuard(ob, buffer)
        await guard.open()
        waiting = pts("m", 12_000)
        for point in waiting:
            buffer.add(point)
        await guard.commit()
        assert not guard.writable and guard.episode.disk_full
        before = buffer.committed  # what the pages free at the fill took, if any

        lease = await ob.lease("a", 3_000)
        assert lease is not None
        await ob.ack(lease)  # the uplink took the backlog: its pages are free, for fewer than 12,000
        await guard.commit()  # retried at once: points left the outbox
        assert buffer.committed - before >= 1_000  # what fits is committed, not left to be dropped
        assert ob.stats.pending == buffer.committed == len(waiting) - len(buffer)
        assert await ob.all_points() == waiting[: buffer.committed]
