"""Dead letters and pending points seen from outside the outbox's own connection, and their requeue.

Why a second connection: ``gatewayd outbox`` and the daemon's /metrics, /status and status page read
while the daemon writes.
SQLite in WAL mode lets readers work beside its one writer without blocking it; the reader opens the file
read-only (``mode=ro``), so it never creates the database, never changes its schema and never takes a
write lock. A missing outbox is an error, not an empty one made on the spot.

Writing is different: ``requeue`` moves dead letters back to pending through the daemon's own
:class:`~gatewayd.outbox.Outbox` (one transaction, the same insert path as samples), and only while it
holds the state directory's lock, so that no running daemon's in-memory counts go stale under it.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import structlog

from gatewayd.errors import StorageError
from gatewayd.outbox.refusals import reason_code

log = structlog.get_logger(__name__)

OUTBOX_NAME = "outbox.db"


class DeadLetter(NamedTuple):
    """One dead letter as stored: ``value`` is the JSON text Thing+ was sent."""

    id: int
    sensor_id: str
    time_ms: int
    value: str
    reason: str
    dead_at_ms: int


def outbox_path(state_dir: Path) -> Path:
    return Path(state_dir) / OUTBOX_NAME


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection to an existing outbox (StorageError when there is none)."""
    if not path.is_file():
        raise StorageError(f"no outbox at {path}: the daemon has not run with this state_dir yet")
    try:
        db = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)
        db.execute("SELECT 1 FROM dead_letters LIMIT 1")
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read outbox {path}: {exc}") from exc
    return db


def close_readonly(db: sqlite3.Connection, path: Path) -> None:
    """Close a reader; files it had SQLite create beside the database get the database's owner.

    Why: a reader started as root while the daemon is stopped creates the ``-wal``/``-shm`` files; left
    owned by root, the daemon (its own user) could not open its outbox at the next start.
    """
    db.close()
    give_back(path, [Path(str(path) + suffix) for suffix in ("-wal", "-shm")])


def give_back(path: Path, files: list[Path]) -> None:
    """Run as root, make ``files`` (those that exist) belong to ``path``'s owner, the daemon's user."""
    if os.geteuid() != 0:
        return
    try:
        owner = path.stat()
        for file in files:
            if file.exists() and file.stat().st_uid != owner.st_uid:
                os.chown(file, owner.st_uid, owner.st_gid)
    except OSError as exc:
        log.warning("statefile.chown_failed", path=str(path), error=str(exc))


def _query(path: Path, read: Any) -> Any:
    db = connect_readonly(path)
    try:
        return read(db)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read outbox {path}: {exc}") from exc
    finally:
        close_readonly(db, path)


def counts_by_code(db: sqlite3.Connection) -> dict[str, int]:
    """Dead letters by :func:`~gatewayd.outbox.refusals.reason_code` ("400 INVALID_INPUT": n)."""
    counts: dict[str, int] = {}
    for reason, n in db.execute("SELECT reason, COUNT(*) FROM dead_letters GROUP BY reason"):
        code = reason_code(reason)
        counts[code] = counts.get(code, 0) + n
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def stats(path: Path, top: int) -> dict[str, Any]:
    """Pending points (count, oldest time, the ``top`` sensors by count) and dead letters by code."""

    def read(db: sqlite3.Connection) -> dict[str, Any]:
        pending, oldest = db.execute("SELECT COUNT(*), MIN(time_ms) FROM points").fetchone()
        by_sensor = db.execute(
            "SELECT s.sensor_id, n FROM (SELECT sensor, COUNT(*) AS n FROM points GROUP BY sensor) "
            "JOIN sensors AS s ON s.num = sensor ORDER BY n DESC, s.sensor_id LIMIT ?",
            (top,),
        ).fetchall()
        (sensors,) = db.execute("SELECT COUNT(DISTINCT sensor) FROM points").fetchone()
        by_code = counts_by_code(db)
        return {
            "pending": pending,
            "oldest_pending_ms": oldest,
            "sensors_pending": sensors,
            "top_sensors": [{"sensor_id": sid, "pending": n} for sid, n in by_sensor],
            "dead_letters": sum(by_code.values()),
            "dead_letters_by_reason": by_code,
        }

    return dict(_query(path, read))


_COLUMNS = "id, sensor_id, time_ms, value, reason, dead_at_ms"


def latest(path: Path, limit: int) -> list[DeadLetter]:
    """The ``limit`` dead letters most recently set aside, newest first."""

    def read(db: sqlite3.Connection) -> list[DeadLetter]:
        rows = db.execute(f"SELECT {_COLUMNS} FROM dead_letters ORDER BY id DESC LIMIT ?", (limit,))
        return [DeadLetter(*row) for row in rows]

    return list(_query(path, read))


def every(path: Path) -> Iterator[DeadLetter]:
    """Every dead letter, oldest first, read as it is consumed (an export of 100,000 stays small).

    The outbox is opened here, before the first row is asked for: a missing one fails before any output.
    """
    return _every(connect_readonly(path), path)


def _every(db: sqlite3.Connection, path: Path) -> Iterator[DeadLetter]:
    try:
        for row in db.execute(f"SELECT {_COLUMNS} FROM dead_letters ORDER BY id"):
            yield DeadLetter(*row)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read outbox {path}: {exc}") from exc
    finally:
        close_readonly(db, path)


def iso_ms(ms: int | None) -> str | None:
    """Unix ms as ISO 8601 UTC with milliseconds (``2024-05-01T10:00:00.000Z``)."""
    if ms is None:
        return None
    utc = timezone.utc  # datetime.UTC is not in Python 3.9
    stamp = datetime.fromtimestamp(ms / 1000, utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


async def requeue(state_dir: Path, reason: str | None, **outbox_options: Any) -> int:
    """Move dead letters (all, or those whose reason contains ``reason``) back to pending; how many.

    Holds the state directory's lock meanwhile: StateDirLockedError while a daemon runs on it.
    """
    from gatewayd.outbox import Outbox
    from gatewayd.statelock import StateLock

    path = outbox_path(state_dir)
    if not path.is_file():
        raise StorageError(f"no outbox at {path}: the daemon has not run with this state_dir yet")
    lock = StateLock(Path(state_dir))
    with lock:
        outbox = await Outbox.open(path, **outbox_options)
        try:
            moved = await outbox.requeue_dead_letters(reason)
        finally:
            await outbox.close()
            give_back(path, [lock.path, *(Path(str(path) + suffix) for suffix in ("-wal", "-shm"))])
    return moved


#: What a failed read of each kind logs (see :class:`_Reads`).
_NOT_READ = {"dead_letters": "outbox.dead_letters_not_counted", "oldest": "outbox.oldest_not_read"}


class _Reads:
    """One kind of read of the outbox, on a read-only connection in a thread, repeated: the status page
    asks every second for each open page. A failure is logged when it is new (the first, or another
    than the last), not at every read."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path = path
        self.kind = kind
        self._failure: str | None = None

    async def read(self, query: Callable[[sqlite3.Connection], Any]) -> tuple[bool, Any]:
        """(True, what ``query`` answered), or (False, None) when the outbox could not be read."""
        try:
            value = await asyncio.to_thread(_query, self.path, query)
        except StorageError as exc:
            if str(exc) != self._failure:
                log.warning(_NOT_READ[self.kind], error=str(exc))
            self._failure = str(exc)
            return False, None
        self._failure = None
        return True, value


class DeadLetterCounts:
    """Dead letters by reason code for /metrics and /status, counted from the table (so they include
    those of earlier runs) on a read-only connection, and counted again only when the outbox has
    dead-lettered since: a scrape costs nothing while nothing changes.

    A failure is logged once until it changes or a count succeeds: the status page refreshes every
    second per open page, and an outbox that cannot be read would otherwise log a line each time.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.counts: dict[str, int] = {}
        self._seen: int | None = None
        self._reads = _Reads(path, "dead_letters")
        self._lock = asyncio.Lock()

    async def refresh(self, dead_lettered: int) -> dict[str, int]:
        """The counts, read again when ``dead_lettered`` (the outbox's counter) moved since last time."""
        async with self._lock:
            if dead_lettered != self._seen:
                ok, counts = await self._reads.read(counts_by_code)
                if ok:  # else the last counts stay; the next refresh tries again
                    self.counts, self._seen = counts, dead_lettered
            return self.counts


#: The first pending point is looked up again at most this often (s) while something is pending.
OLDEST_REFRESH_S = 2.0


def first_pending_time(db: sqlite3.Connection) -> int | None:
    """The stamp of the first pending point in line (the lowest id): a primary-key lookup."""
    row = db.execute("SELECT time_ms FROM points ORDER BY id LIMIT 1").fetchone()
    return int(row[0]) if row is not None else None


class OldestPending:
    """The stamp of the oldest pending point for /status and the status page, read on a read-only
    connection at most every ``refresh_s``, and not at all while nothing is pending.

    Why the first in line and not ``MIN(time_ms)``: points are stored in the order they were read, so
    the lowest id is the oldest, and finding it is a primary-key lookup whatever the backlog; the time
    column has no index (one would cost every put), so ``MIN`` scans every row. Points put later with
    older stamps (re-stamped at the wall clock's setting, requeued dead letters, a late RCMS window)
    are not seen until they are first in line; ``gatewayd outbox stats`` gives the exact minimum.
    """

    def __init__(
        self,
        path: Path,
        *,
        refresh_s: float = OLDEST_REFRESH_S,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.refresh_s = refresh_s
        self.mono = mono
        self.time_ms: int | None = None
        self._read_at: float | None = None
        self._reads = _Reads(path, "oldest")
        self._lock = asyncio.Lock()

    async def refresh(self, pending: int) -> int | None:
        """The stamp (unix ms; negative: provisional), or None when nothing is pending (``pending``:
        the outbox's count). Read again when the last reading is ``refresh_s`` old."""
        async with self._lock:
            if pending <= 0:
                self.time_ms, self._read_at = None, None  # the next point is looked up at once
                return None
            now = self.mono()
            if self._read_at is not None and now - self._read_at < self.refresh_s:
                return self.time_ms
            self._read_at = now  # a failure too waits its turn: a broken file is not hammered
            ok, time_ms = await self._reads.read(first_pending_time)
            if ok:  # else the last reading stays; the next turn tries again
                self.time_ms = time_ms
            return self.time_ms
