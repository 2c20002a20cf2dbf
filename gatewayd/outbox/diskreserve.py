"""A few MiB of disk held in the state directory, given back the moment the disk fills.

Why: on a full disk, the writes that would free space need some space themselves. Deleting delivered
points from SQLite writes the changed pages to the WAL first, a checkpoint may grow the database file,
and the last commit at shutdown needs room too. Without a reserve, a disk filled by anything (logs, a
neighbour, the outbox itself) stops uploads from draining it: every batch the cloud took fails to be
deleted and is sent again. The reserve is an ordinary file, preallocated, so its blocks are really
taken; when a write fails for lack of room it is deleted, and those blocks are there for the acks. It is
taken again only once the filesystem has room for it and as much again, so holding it never fills the
disk by itself. (The same trick as ext4's reserved blocks or a database's "ballast" file.)

While the reserve is not held the outbox grows only into the room past a reserve's worth: a put may
fill pages that acks freed, and add pages while more than the reserve's size stays free
(:meth:`DiskReserve.hold_size`; on a disk that has never had room for the reserve and as much again, a
cap at the file's size would call a disk with megabytes free "full" and drop samples). Every write is
followed by a checkpoint so that the next one starts the WAL over instead of growing it
(:meth:`DiskReserve.restart_wal`; SQLite checkpoints on its own only every 1,000 pages, and a WAL
growing to that would take the room left for the acks).
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from gatewayd.outbox.storagefaults import free_space

log = structlog.get_logger(__name__)

#: Size of the reserve: room for a WAL full of deletes (SQLite checkpoints at 1,000 pages, ~4 MiB).
RESERVE_BYTES = 4 * 1024 * 1024
#: Least time between two attempts to take the reserve back (each is a statvfs, maybe an allocation).
RETAKE_EVERY_S = 1.0

_ZEROS = bytes(64 * 1024)


class DiskReserve:
    """The reserve file at ``path``, of ``size`` bytes (0: no reserve). Not thread-safe: owned by the
    outbox's thread."""

    def __init__(
        self, path: Path, size: int = RESERVE_BYTES, *, mono: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = Path(path)
        self.size = size
        self.mono = mono
        self._held = False
        self._last_try = float("-inf")

    @property
    def held(self) -> bool:
        """True while the reserve's blocks are ours (always True when there is no reserve to hold)."""
        return self._held or self.size == 0

    def take(self, *, now: bool = False) -> bool:
        """Hold the reserve if the filesystem has room for it and as much again; True when held.

        Attempts are at most one per :data:`RETAKE_EVERY_S` unless ``now``. A reserve file left by an
        earlier run is adopted when it has the full size.
        """
        if self.held:
            return True
        moment = self.mono()
        if not now and moment - self._last_try < RETAKE_EVERY_S:
            return False
        self._last_try = moment
        try:
            if self.path.stat().st_blocks * 512 >= self.size:  # allocated, not sparse
                self._held = True
                return True
        except FileNotFoundError:
            pass
        except OSError:
            return False
        room = free_space(self.path.parent)
        if room is None or room < 2 * self.size:
            return False
        try:
            self._allocate()
        except OSError as exc:
            self._remove()
            log.warning("outbox.reserve_not_taken", path=str(self.path), error=exc.strerror or str(exc))
            return False
        self._held = True
        return True

    def release(self, why: str = "") -> bool:
        """Give the reserve's space back to the filesystem (logged, with ``why``); True when there was
        one to give."""
        if not self._held:
            return False
        self._remove()
        self._held = False
        log.warning(
            "outbox.reserve_released",
            effect="the disk is full: the reserve's room goes to acks and shutdown; until the disk has room "
            "again the outbox file grows only while a reserve's worth stays free",
            reserve_bytes=self.size,
            error=why,
        )
        return True

    def hold_size(self, db: sqlite3.Connection) -> int | None:
        """Unless the reserve is held (or can be taken back now), limit ``db`` to the pages it has and
        half the room past the reserve's size (a put writes its pages twice: the WAL, then the file);
        SQLite's own limit to restore afterwards, or None when the file may grow freely."""
        if self.take():
            return None
        limit = int(db.execute("PRAGMA max_page_count").fetchone()[0])
        pages = int(db.execute("PRAGMA page_count").fetchone()[0])
        page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
        spare = max(0, (free_space(self.path.parent) or 0) - self.size) // (2 * page_size)
        db.execute(f"PRAGMA max_page_count = {pages + spare}")
        return limit

    def restart_wal(self, db: sqlite3.Connection | None) -> None:
        """Unless the reserve is held, checkpoint ``db`` so its next write starts the WAL over."""
        if self.held or db is None:
            return
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            pass  # the next write's checkpoint tries again

    def _allocate(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            allocate: Callable[[int, int, int], None] | None = getattr(os, "posix_fallocate", None)
            if allocate is not None:
                try:
                    allocate(fd, 0, self.size)
                    return
                except OSError as exc:
                    if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # not unsupported: no room
                        raise
            left = self.size  # no fallocate here: really write the blocks
            while left > 0:
                left -= os.write(fd, _ZEROS[: min(left, len(_ZEROS))])
        finally:
            os.close(fd)

    def _remove(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:  # a read-only filesystem, say: nothing to free then anyway
            log.warning("outbox.reserve_not_removed", path=str(self.path), error=exc.strerror or str(exc))
