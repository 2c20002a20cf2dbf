"""The durable outbox: every sample is on disk (SQLite, WAL) before anything else happens to it.

Why SQLite: one file, atomic transactions, crash-safe WAL, and a range delete for acknowledgements; the
same reasons Fluent Bit and Greengrass stream manager keep a local store. One connection is owned by one
dedicated thread, so the event loop never blocks on disk and SQLite never sees two threads.

Life of a point: ``put`` (committed when it returns) -> ``lease`` (oldest first, one lease per sensor at a
time, held in memory only) -> ``ack`` (deleted) | ``release`` (back to pending) | ``dead_letter`` (moved
to the dead-letter table with the reason, bounded). Leases are not persisted: after a crash or restart
every leased point is pending again, so a batch that was in flight may be sent twice, nothing else.

Bounds: past ``max_points`` or ``max_age`` the oldest points are dropped and counted, so a box offline
for weeks keeps its newest data and a flash card does not fill up. Age is measured on a storage clock
that a wall-clock jump does not move, and points stamped before the wall clock was set are held until
it is, then re-stamped (:mod:`gatewayd.outboxtime`).

A full disk is not a damaged file: only a database that fails its integrity check is moved aside (see
:mod:`gatewayd.storagefaults`); a full disk is a :class:`DiskFullError`, and the writes that free space
(acks, dead letters, trims, the index, the checkpoint at close, opening) get the disk space reserve
(:mod:`gatewayd.diskreserve`) and one more try. While the reserve is not held, the file grows only
while more than the reserve's size stays free.

Writes: a put appends rows and nothing else. The per-sensor index that leases read is partial (rows with
``merged = 1``) and is brought up to date in bulk, at most ``_MERGE_CHUNK`` rows per transaction, before
each lease and whenever that many rows are waiting. Indexing on every put dirtied one index page per
sensor per commit (4 KB written and synced per point with one point per sensor per put); in bulk, many
points of a sensor share each page write.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import structlog

from gatewayd.compat import zip_strict
from gatewayd.diskreserve import RESERVE_BYTES, DiskReserve
from gatewayd.errors import DiskFullError, StorageError
from gatewayd.outboxtime import AGE_MARKS_TABLE, SCHEMA_VERSION, OutboxTime
from gatewayd.storagefaults import Fault, check_error, fault_of, storage_error
from gatewayd.wallclock import boot_id

log = structlog.get_logger(__name__)

T = TypeVar("T")
S = TypeVar("S")

# One encoder for every value: json.dumps(value, separators=...) builds a new encoder per call, which was
# a quarter of the put time. Same output, compact JSON text.
_encode_value = json.JSONEncoder(separators=(",", ":")).encode

#: Rows per INSERT. sqlite3 lets go of the GIL at every statement step, and taking it back from a busy
#: event loop can cost a switch interval (5 ms): with ``executemany`` that is per row, and a 10,000-point
#: commit took up to 4 s at 10,000 sensors while samples piled up in memory. 300 rows x 3 values keeps
#: under the 999-variable limit of older SQLite builds.
_ROWS_PER_INSERT = 300


def chunked(items: Sequence[S], size: int) -> Iterator[Sequence[S]]:
    """``items`` in consecutive slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _insert_rows(db: sqlite3.Connection, into: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """``INSERT INTO {into} VALUES ...`` for ``rows``, :data:`_ROWS_PER_INSERT` at a time."""
    for chunk in chunked(rows, _ROWS_PER_INSERT):
        db.execute(_insert_sql(into, len(chunk[0]), len(chunk)), [v for row in chunk for v in row])


@functools.lru_cache(maxsize=8)
def _insert_sql(into: str, width: int, rows: int) -> str:
    row = "(" + ", ".join(["?"] * width) + ")"
    return f"INSERT INTO {into} VALUES " + ",".join([row] * rows)


#: Sensors per lease or ack statement: 2 or 3 variables each, under the 999-variable limit, and a
#: compound SELECT of at most this many parts (SQLite allows 500).
_SENSORS_PER_LEASE_QUERY = 256


@functools.lru_cache(maxsize=64)
def _lease_sql(sensors: int) -> str:
    """Each of ``sensors`` sensors' oldest merged points (``sensor = ?``, ``LIMIT ?``), as one JSON array
    of ``[sensor, [ids], [times], [values]]`` (each value as JSON text); ``[null, [], [], []]`` for a
    sensor with none."""
    one = (
        "SELECT sensor, json_group_array(id) AS ids, json_group_array(time_ms) AS times, "
        "json_group_array(value) AS vals FROM (SELECT sensor, id, time_ms, value FROM points "
        "WHERE sensor = ? AND merged = 1 ORDER BY id LIMIT ?)"
    )
    parts = " UNION ALL ".join([one] * sensors)
    return f"SELECT json_group_array(json_array(sensor, json(ids), json(times), json(vals))) FROM ({parts})"


def _in_id_order(
    ids: list[int], times: list[int], values: list[str]
) -> tuple[list[int], list[int], list[str]]:
    """The three lists in id order. SQLite aggregates rows in the order its subquery yields them, but
    does not promise to: checked here, and sorted in the rare case they are not."""
    if ids == sorted(ids):  # ids are unique: sorted means in order
        return ids, times, values
    rows = sorted(zip_strict(ids, times, values))
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


@functools.lru_cache(maxsize=64)
def _delete_sql(ranges: int) -> str:
    """Delete ``ranges`` id ranges, each of one sensor (``sensor = ? AND id BETWEEN ? AND ?``)."""
    one = "(sensor = ? AND id BETWEEN ? AND ?)"
    return f"DELETE FROM points WHERE merged = 1 AND ({' OR '.join([one] * ranges)})"


def _require_json_functions() -> None:
    """Leases are read through SQLite's JSON functions (built in since 3.38, in JSON1 before): say so
    plainly, before opening the outbox, rather than fail at the first upload or take it for corrupt."""
    db = sqlite3.connect(":memory:")
    try:
        db.execute("SELECT json_group_array(json_array(1))")
    except sqlite3.OperationalError as exc:
        raise StorageError(
            f"SQLite {sqlite3.sqlite_version} has no JSON functions ({exc}): gatewayd needs SQLite 3.38 "
            "or later, or an older build with JSON1"
        ) from None
    finally:
        db.close()


#: The log line of a drop, by the bound that made it.
_DROP_EVENTS = {
    "max_age": "outbox max_age: dropped points stored longer than max_age",
    "max_points": "outbox full: dropped oldest points past max_points",
}

_MERGE_CHUNK = 50_000  # rows indexed per transaction; also how many may wait unindexed before a put merges

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sensors (num INTEGER PRIMARY KEY, sensor_id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS points (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reuse an id: a late ack deletes its lease's id range
    sensor INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    value TEXT NOT NULL,
    -- 1 once in points_by_sensor: every id <= meta.merged_upto but provisional ones (time_ms < 0:
    -- stamped before the wall clock was set), which are held unleasable until re-stamped
    merged INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS points_by_sensor ON points (sensor, id) WHERE merged = 1;
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    sensor_id TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    value TEXT NOT NULL,
    reason TEXT NOT NULL,
    dead_at_ms INTEGER NOT NULL
);
"""
    + AGE_MARKS_TABLE
)


class _Damaged(Exception):
    """The database failed its integrity check, or SQLite called it corrupt or not a database."""


class Point(NamedTuple):
    """One sample: the Thing+ sensor id, when it was read (unix ms, wall clock; negative: a provisional
    stamp, read before the wall clock was set, see :mod:`gatewayd.wallclock`), and its value.

    ``value`` is what Thing+ gets: a string (numbers as strings) or a JSON object. A named tuple, not a
    frozen dataclass: one is made per sample (10,000 a second in a big simulation) and a frozen
    dataclass takes twice as long to build.
    """

    sensor_id: str
    time_ms: int
    value: str | dict[str, Any]


@dataclass(frozen=True)
class Lease:
    """A batch of one sensor's oldest pending points, handed out until acked, released or dead-lettered."""

    sensor_id: str
    first_id: int
    last_id: int
    times: list[int]
    values: list[str]  # JSON text of each value, ready to splice into a request body
    ids: list[int] = field(default_factory=list)  # each point's id, in order

    def __len__(self) -> int:
        return len(self.times)

    def part(self, start: int, stop: int) -> Lease:
        """Points ``start`` to ``stop - 1`` as a lease of their own, to be acked or dead-lettered alone.

        Its id range holds no other point of the sensor: a lease is the sensor's oldest points in id
        order, so every point of the sensor between two of them is one of them.
        """
        ids = self.ids[start:stop]
        if not ids:
            raise ValueError(f"empty part {start}:{stop} of a lease of {len(self)} points")
        return Lease(self.sensor_id, ids[0], ids[-1], self.times[start:stop], self.values[start:stop], ids)

    def points(self) -> list[Point]:
        return [Point(self.sensor_id, t, json.loads(v)) for t, v in zip_strict(self.times, self.values)]


@dataclass
class OutboxStats:
    """Counters since start (pending is read from disk on open)."""

    pending: int = 0
    put: int = 0
    acked: int = 0
    released: int = 0
    dead_lettered: int = 0
    dropped: int = 0
    #: Drops by the bound that made them: "max_age" or "max_points".
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    #: Points held (in ``pending``, not in ``pending_by_sensor``) until the wall clock is set.
    provisional: int = 0
    recovered_corrupt: int = 0
    pending_by_sensor: dict[str, int] = field(default_factory=dict)


class Outbox:
    """Durable queue of points. Open with :meth:`open`; every method is a coroutine run on its own thread."""

    def __init__(
        self,
        path: Path,
        *,
        max_points: int = 5_000_000,
        max_age_s: float = 30 * 86400.0,
        dead_letter_limit: int = 100_000,
        put_synchronous: str = "FULL",
        clock: Callable[[], float] = time.time,
        reserve_bytes: int = RESERVE_BYTES,
        mono: Callable[[], float] = time.monotonic,
        boot: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.max_points = max_points
        self.max_age_s = max_age_s
        self.dead_letter_limit = dead_letter_limit
        self.put_synchronous = put_synchronous
        self.clock = clock
        self._time = OutboxTime(wall=clock, mono=mono, boot=boot_id() if boot is None else boot)
        self.stats = OutboxStats()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._db: sqlite3.Connection | None = None
        self._closed = False
        self._reserve = DiskReserve(self.path.with_suffix(".reserve"), reserve_bytes)
        self._sensor_nums: dict[str, int] = {}
        self._leased: set[str] = set()
        self._merged_upto = 0  # every point with a higher id is not in points_by_sensor yet
        self._unmerged = 0  # points put since the last merge (an upper bound: drops are not subtracted)
        # per reason: monotonic time of the last drop line (-inf: log the first drop), drops since then
        self._last_drop_log: dict[str, float] = {}
        self._dropped_since_log: dict[str, int] = {}

    # ---------------------------------------------------------------- lifecycle

    @classmethod
    async def open(cls, path: Path, **kw: Any) -> Outbox:
        outbox = cls(path, **kw)
        try:
            await outbox.open_db()
        except BaseException:
            await outbox.close()
            raise
        return outbox

    async def open_db(self) -> None:
        """Open the database; may be called again after it failed (the daemon retries while the disk
        is full). Raises StorageError (DiskFullError for a full disk); never moves a sound file aside."""
        await self._run(self._open_sync)

    @property
    def is_open(self) -> bool:
        return self._db is not None

    @property
    def reserve_held(self) -> bool:
        return self._reserve.held

    async def regain_reserve(self) -> bool:
        """Take the disk space reserve back if the disk has room for it again; True when it is held."""
        return await self._run(functools.partial(self._reserve.take, now=True))

    async def write_aside(self, write: Callable[[], T], *, essential: bool = False) -> T:
        """Run ``write``, a small write of another file in the state directory (the registry), on the
        outbox's thread, which owns the disk space reserve. ``essential``: with the reserve, as acks
        have it (given back when the disk is full, then ``write`` tried again): a new sensor's id must
        be on disk before the sensor may sample."""
        if essential:
            return await self._run(self._freeing, write)
        return await self._run(write)

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._close_sync)
        self._executor.shutdown(wait=True)
        self._closed = True

    async def __aenter__(self) -> Outbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except RuntimeError as exc:
            if self._closed:  # the executor refuses work once the outbox is closed
                raise StorageError("outbox is closed") from exc
            raise

    def _open_sync(self) -> None:
        if self._db is not None:  # a retry queued behind an attempt that worked
            return
        _require_json_functions()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise self._error("cannot create the outbox directory", exc) from exc
        self._reserve.take(now=True)  # adopts the reserve an earlier run left, or makes one if there is room
        try:
            self._freeing(self._connect)
        except _Damaged as exc:
            # Never crash-loop on a damaged file: keep it for forensics, start afresh, shout.
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(self.clock())}")
            for suffix in ("", "-wal", "-shm"):
                src = Path(str(self.path) + suffix)
                if src.exists():
                    src.rename(Path(str(aside) + suffix))
            log.error(
                "outbox database corrupt; moved aside, starting a fresh one",
                path=str(self.path),
                moved_to=str(aside),
                error=str(exc),
            )
            self.stats.recovered_corrupt += 1
            self._freeing(self._connect)
        self._load_counts()

    def _connect(self) -> None:
        """Connect and check: a damaged file raises :class:`_Damaged`, anything else a StorageError
        (a DiskFullError when the disk is full), and the database stays where it is."""
        try:
            self._connect_and_check()
        except (sqlite3.Error, OSError) as exc:
            self._close_quietly()
            if fault_of(exc) is Fault.CORRUPT:
                raise _Damaged(str(exc)) from exc
            raise self._error(f"cannot open outbox {self.path}", exc) from exc
        except (_Damaged, StorageError):
            self._close_quietly()
            raise

    def _connect_and_check(self) -> None:
        if not self.path.exists():
            # Created 0600 whatever the umask: the outbox holds the site's data. SQLite gives the WAL
            # and shared-memory files the database file's mode.
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
        self._db = db
        result = db.execute("PRAGMA quick_check").fetchone()
        if not result or result[0] != "ok":
            finding = result[0] if result else "no answer"
            error = check_error(f"cannot open outbox {self.path}", finding, self.path.parent)
            raise error if error is not None else _Damaged(f"quick_check: {finding}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA temp_store=MEMORY")
        db.execute("PRAGMA cache_size=-2000")  # 2 MB: memory stays flat however big the backlog
        db.executescript(_SCHEMA)
        db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        self._sensor_nums = dict(db.execute("SELECT sensor_id, num FROM sensors"))
        row = db.execute("SELECT value FROM meta WHERE key = 'merged_upto'").fetchone()
        self._merged_upto = int(row[0]) if row else 0

    def _load_counts(self) -> None:
        db = self._conn
        self.stats.dead_lettered += self._time.open(db)
        indexed = self._merge_or_not()  # everything indexed: the count reads the index, not the table
        # Provisional points (negative stamps) are never indexed; they are counted apart below.
        where = "WHERE merged = 1" if indexed else "WHERE time_ms >= 0"
        by_num = dict(db.execute(f"SELECT sensor, COUNT(*) FROM points {where} GROUP BY sensor"))
        names = {num: sid for sid, num in self._sensor_nums.items()}
        self.stats.pending_by_sensor = {names[n]: c for n, c in by_num.items() if n in names}
        provisional = self._time.count_provisional(db)
        self.stats.provisional = sum(provisional.values())
        self.stats.pending = sum(by_num.values()) + self.stats.provisional
        if self.stats.pending:
            log.info(
                "outbox recovered backlog",
                pending=self.stats.pending,
                sensors=len(self.stats.pending_by_sensor),
            )

    def _close_sync(self) -> None:
        db = self._conn
        try:
            self._time.save(db)  # where the storage clock resumes at the next open
        except sqlite3.DatabaseError:
            pass  # it resumes from the last bound check's save instead (keeping points longer)
        try:
            self._freeing(self._checkpoint)
        except StorageError as exc:  # the WAL stays; the next open reads it
            log.warning("outbox checkpoint at close failed", error=str(exc))
        db.close()
        self._db = None

    def _checkpoint(self) -> None:
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise self._error("outbox checkpoint failed", exc) from exc

    def _error(self, what: str, exc: BaseException) -> StorageError:
        return storage_error(what, exc, self.path.parent)

    def _freeing(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a write that has to get through a full disk (an ack, a trim, the index, a checkpoint,
        opening): when it fails for lack of room, the reserve is given back and ``fn`` tried again."""
        try:
            result = fn(*args)
        except DiskFullError as exc:
            if not self._reserve.release(str(exc)):
                raise
            result = fn(*args)
        self._reserve.restart_wal(self._db)
        return result

    def _close_quietly(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StorageError("outbox is closed")
        return self._db

    # ---------------------------------------------------------------- operations

    async def put(self, points: Sequence[Point]) -> None:
        """Store points in one transaction; durable (committed) when this returns."""
        if points:
            await self._run(self._put_sync, points)

    def _put_sync(
        self, points: Sequence[Point], also: Callable[[sqlite3.Connection], object] | None = None
    ) -> None:
        """``also`` runs in the same transaction, before the commit (see :meth:`requeue_dead_letters`)."""
        db = self._conn
        # Sensors seen for the first time get their numbers in the same transaction as their points
        # (one multi-row insert, not a commit each: 10,000 new sensors took seconds that way).
        new_nums = self._number_new_sensors(points)
        nums = {**self._sensor_nums, **new_nums} if new_nums else self._sensor_nums
        rows = [(nums[p.sensor_id], p.time_ms, _encode_value(p.value)) for p in points]
        page_limit = self._reserve.hold_size(db)  # while the disk is full: fill freed pages, add none
        provisional = sum(1 for p in points if p.time_ms < 0)  # stamped before the wall clock was set
        try:
            # Accepted data must survive a power cut: this commit syncs the WAL. Acks and trims stay at
            # NORMAL (a lost ack only means one batch is sent twice), which spares the flash.
            db.execute(f"PRAGMA synchronous={self.put_synchronous}")
            db.execute("BEGIN IMMEDIATE")
            _insert_rows(db, "sensors (num, sensor_id)", [(num, sid) for sid, num in new_nums.items()])
            _insert_rows(db, "points (sensor, time_ms, value)", rows)
            if provisional:
                last_id = db.execute("SELECT last_insert_rowid()").fetchone()[0]
                self._time.note_provisional(db, last_id - len(rows) + 1)
            if also is not None:
                also(db)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            error = self._error("outbox write failed", exc)
            if isinstance(error, DiskFullError):  # the samples wait in memory; acks get the room
                self._reserve.release(str(error))
                self._reserve.restart_wal(db)
            raise error from exc
        finally:
            db.execute("PRAGMA synchronous=NORMAL")
            if page_limit is not None:
                db.execute(f"PRAGMA max_page_count = {page_limit}")
        self._reserve.restart_wal(db)
        self._sensor_nums.update(new_nums)
        self.stats.put += len(points)
        self.stats.pending += len(points)
        self.stats.provisional += provisional
        by_sensor = self.stats.pending_by_sensor
        for p in points if not provisional else [p for p in points if p.time_ms >= 0]:
            by_sensor[p.sensor_id] = by_sensor.get(p.sensor_id, 0) + 1
        if self.stats.pending > self.max_points:
            try:
                self._drop_sync(self.stats.pending - self.max_points)
            except StorageError as exc:  # the points are committed: raising would get them put twice
                log.warning("outbox trim failed; retried at the next bound check", error=str(exc))
        self._unmerged += len(points)
        if self._unmerged >= _MERGE_CHUNK:
            try:
                self._merge_sync()
            except StorageError as exc:  # the points are committed: the next lease retries the merge
                log.warning("outbox index update failed; retried on next lease", error=str(exc))

    def _merge_sync(self) -> None:
        """Index the points put since the last merge (mark them ``merged``), in bounded transactions.

        Points are merged in id order, so the indexed ones are always the oldest: a lease reads only
        indexed points, after this has run, and so sees every point of its sensor.
        """
        db = self._conn
        top = db.execute("SELECT MAX(id) FROM points").fetchone()[0] or 0
        while self._merged_upto < top:
            upto = min(self._merged_upto + _MERGE_CHUNK, top)
            try:
                db.execute("BEGIN IMMEDIATE")
                db.execute(
                    "UPDATE points SET merged = 1 WHERE id > ? AND id <= ? AND merged = 0 AND time_ms >= 0",
                    (self._merged_upto, upto),
                )
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('merged_upto', ?)", (str(upto),))
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise self._error("outbox index update failed", exc) from exc
            self._merged_upto = upto
        self._unmerged = 0

    def _merge_or_not(self) -> bool:
        """Index what waits (see :meth:`_merge_sync`); False when the disk is too full even with the
        reserve. Leases then see only the indexed points, which are each sensor's oldest, so a backlog
        still drains and frees room; the rest is indexed at a later lease."""
        try:
            self._freeing(self._merge_sync)
        except DiskFullError as exc:
            log.warning(
                "outbox index update failed for lack of room; retried at the next lease", error=str(exc)
            )
            return False
        return True

    def _number_new_sensors(self, points: Sequence[Point]) -> dict[str, int]:
        """Numbers for the sensors of ``points`` not stored yet (kept in memory only once committed)."""
        known = self._sensor_nums
        new = [sid for sid in dict.fromkeys(p.sensor_id for p in points) if sid not in known]
        first = max(known.values(), default=0) + 1 if new else 0
        return {sid: first + i for i, sid in enumerate(new)}

    async def lease(self, sensor_id: str, limit: int) -> Lease | None:
        """The sensor's oldest pending points (at most ``limit``), or None when it has none or is leased."""
        leases = await self.lease_many([sensor_id], limit)
        return leases[0] if leases else None

    async def lease_many(self, sensor_ids: Iterable[str], limit: int) -> list[Lease]:
        """One lease per listed sensor that has pending points and no lease out; one trip to the disk."""
        wanted = [
            s
            for s in dict.fromkeys(sensor_ids)
            if s not in self._leased and self.stats.pending_by_sensor.get(s, 0) > 0
        ]
        if not wanted:
            return []
        self._leased.update(wanted)
        leases: list[Lease] = []
        try:
            leases = await self._run(self._lease_sync, wanted, limit)
        finally:
            self._leased.difference_update(set(wanted) - {lease.sensor_id for lease in leases})
        return leases

    def _lease_sync(self, sensor_ids: list[str], limit: int) -> list[Lease]:
        """The oldest ``limit`` points of each sensor, read in one statement per chunk of sensors.

        Why one statement: sqlite3 lets go of the GIL at every step (every row), and with the event loop
        busy each step waits for it; read sensor by sensor, a pass of 64 sensors took hundreds of steps
        and up to half a second. Here SQLite gathers the chunk into one JSON text (one step), already
        split per sensor into ids, times and values: no object per row, which matters when a backlog
        drains 64 x 500 points a pass.
        """
        indexed = self._merge_or_not()
        nums = self._sensor_nums
        wanted = [(sensor_id, nums[sensor_id]) for sensor_id in sensor_ids if sensor_id in nums]
        found: dict[int, tuple[list[int], list[int], list[str]]] = {}
        for chunk in chunked(wanted, _SENSORS_PER_LEASE_QUERY):
            params = [v for _, num in chunk for v in (num, limit)]
            (text,) = self._conn.execute(_lease_sql(len(chunk)), params).fetchone()
            for num, ids, times, values in json.loads(text):
                if num is not None:  # None: a sensor with nothing to lease
                    found[num] = _in_id_order(ids, times, values)
        leases = []
        for sensor_id, num in wanted:
            batch = found.get(num)
            if batch is None:
                if indexed:  # else its points may all be waiting for the index
                    self.stats.pending_by_sensor.pop(sensor_id, None)
                continue
            ids, times, values = batch
            leases.append(Lease(sensor_id, ids[0], ids[-1], times, values, ids))
        return leases

    def sensors_with_pending(self) -> list[str]:
        """Sensors that have points waiting and no lease out (cheap: from in-memory counts)."""
        counts = self.stats.pending_by_sensor.copy()  # atomic snapshot: the outbox thread may be writing
        return [s for s, n in counts.items() if n > 0 and s not in self._leased]

    async def ack(self, lease: Lease) -> None:
        """The cloud took the batch: delete it."""
        await self.ack_many([lease])

    async def ack_many(self, leases: Sequence[Lease]) -> None:
        """Delete several acknowledged batches in one transaction."""
        if not leases:
            return
        try:
            await self._run(self._freeing, self._delete_sync, leases)
        finally:
            self._leased.difference_update(lease.sensor_id for lease in leases)

    async def release(self, lease: Lease, *, unlease: bool = True) -> None:
        """The send failed in a way worth retrying: the points stay pending, oldest first as before.

        ``unlease=False`` for a part of a lease whose other parts are still being settled (as for
        :meth:`dead_letter`)."""
        if unlease:
            self._leased.discard(lease.sensor_id)
        self.stats.released += len(lease)

    async def dead_letter(self, lease: Lease, reason: str, *, unlease: bool = True) -> None:
        """The cloud refused the batch for good: keep it aside with the reason, never resend it.

        ``unlease=False`` for a part of a lease whose other parts are still being settled: the sensor
        stays leased until the last of them (see :meth:`Lease.part`).
        """
        try:
            await self._run(self._freeing, self._dead_letter_sync, lease, reason)
        finally:
            if unlease:
                self._leased.discard(lease.sensor_id)

    def _delete_ranges(self, leases: Sequence[Lease]) -> int:
        """Delete each lease's id range of its sensor's points in one statement; how many went.

        ``merged = 1`` lets SQLite use the partial index; it excludes nothing: a lease reads only merged
        points, and points put later get higher ids (AUTOINCREMENT), so none falls inside a range.
        """
        params = [
            v for lease in leases for v in (self._sensor_nums[lease.sensor_id], lease.first_id, lease.last_id)
        ]
        return self._conn.execute(_delete_sql(len(leases)), params).rowcount

    def _delete_chunk(self, leases: Sequence[Lease]) -> list[int]:
        """Delete the leases' points, one statement for all (one GIL hand-over, not one per lease).

        A range never holds more than its lease's points, so when the statement removed as many as were
        leased each lease lost exactly its own. Fewer means a trim took some of them meanwhile: the
        statement is undone and run lease by lease, so each sensor's pending count stays right.
        """
        db = self._conn
        db.execute("SAVEPOINT ack_chunk")
        if self._delete_ranges(leases) == sum(len(lease) for lease in leases):
            db.execute("RELEASE ack_chunk")
            return [len(lease) for lease in leases]
        db.execute("ROLLBACK TO ack_chunk")
        db.execute("RELEASE ack_chunk")
        return [self._delete_ranges([lease]) for lease in leases]

    def _delete_sync(self, leases: Sequence[Lease]) -> list[int]:
        db = self._conn
        try:
            db.execute("BEGIN IMMEDIATE")
            removed = [
                n for chunk in chunked(leases, _SENSORS_PER_LEASE_QUERY) for n in self._delete_chunk(chunk)
            ]
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise self._error("outbox ack failed", exc) from exc
        for lease, n in zip_strict(leases, removed):
            self.stats.acked += n
            self._count_removed(lease.sensor_id, n)
        return removed

    def _dead_letter_sync(self, lease: Lease, reason: str) -> int:
        db = self._conn
        now_ms = int(self.clock() * 1000)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT INTO dead_letters (sensor_id, time_ms, value, reason, dead_at_ms) "
                "SELECT ?, time_ms, value, ?, ? FROM points WHERE sensor = ? AND merged = 1 AND id BETWEEN ? AND ?",
                (
                    lease.sensor_id,
                    reason[:500],
                    now_ms,
                    self._sensor_nums[lease.sensor_id],
                    lease.first_id,
                    lease.last_id,
                ),
            )
            removed = self._delete_ranges([lease])
            db.execute(
                "DELETE FROM dead_letters WHERE id <= (SELECT MAX(id) FROM dead_letters) - ?",
                (self.dead_letter_limit,),
            )
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise self._error("outbox dead-letter failed", exc) from exc
        self.stats.dead_lettered += removed
        self._count_removed(lease.sensor_id, removed)
        # The caller says why at warning level, once per refused batch (a search may dead-letter hundreds
        # of single points of one batch).
        log.debug("points dead-lettered", sensor=lease.sensor_id, points=removed, reason=reason[:200])
        return removed

    def _count_removed(self, sensor_id: str, removed: int) -> None:
        # Counters change on the outbox thread only (here, _put_sync, _lease_sync), never on the loop
        # thread, so no update is lost when calls overlap; the loop only reads them.
        self.stats.pending -= removed
        left = self.stats.pending_by_sensor.get(sensor_id, 0) - removed
        if left > 0:
            self.stats.pending_by_sensor[sensor_id] = left
        else:
            self.stats.pending_by_sensor.pop(sensor_id, None)

    # ---------------------------------------------------------------- bounds

    async def enforce_bounds(self) -> int:
        """Drop what is past max_age or max_points; returns how many points were dropped."""
        return await self._run(self._enforce_bounds_sync)

    def _enforce_bounds_sync(self) -> int:
        """Age on the storage clock (a wall-clock jump drops nothing), then the count.

        The age mark written first covers the points put since the last check, so none goes unmarked
        for longer than the check interval; a failure to write it leaves the points marked later
        (kept longer), never dropped early.
        """
        if self._db is None:  # not open yet (the disk was full at start-up): nothing to bound
            return 0
        dropped = 0
        try:
            self._time.tick(self._conn)
        except StorageError as exc:
            log.warning("outbox age mark not written; written at the next check", error=str(exc))
        upto = self._time.aged_out_upto(self._conn, self.max_age_s)
        if upto is not None:
            dropped += self._freeing(self._drop_where, "id <= ?", (upto,), "max_age")
        if self.stats.pending > self.max_points:
            dropped += self._freeing(self._drop_sync, self.stats.pending - self.max_points)
        return dropped

    def _drop_sync(self, oldest_count: int) -> int:
        """Drop the ``oldest_count`` oldest points (the ``max_points`` bound)."""
        return self._drop_where(
            "id IN (SELECT id FROM points ORDER BY id LIMIT ?)", (oldest_count,), "max_points"
        )

    def _drop_where(self, where: str, params: tuple[int, ...], reason: str) -> int:
        """Delete the points ``where`` says, leased ones included (their ack then finds fewer points to
        delete and counts what it removed: see :meth:`_delete_chunk`), counted and logged by ``reason``."""
        db = self._conn
        counts = db.execute(
            f"SELECT sensor, time_ms < 0, COUNT(*) FROM points WHERE {where} GROUP BY sensor, time_ms < 0",
            params,
        ).fetchall()
        if not counts:
            return 0
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute(f"DELETE FROM points WHERE {where}", params)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise self._error("outbox trim failed", exc) from exc
        names = {num: sid for sid, num in self._sensor_nums.items()}
        total = 0
        for num, provisional, n in counts:
            total += n
            if provisional:
                self.stats.provisional -= n
                self.stats.pending -= n
            else:
                self._count_removed(names[num], n)
        self.stats.dropped += total
        self.stats.dropped_by_reason[reason] = self.stats.dropped_by_reason.get(reason, 0) + total
        self._log_drop(reason, total)
        return total

    def _log_drop(self, reason: str, dropped: int) -> None:
        """One line a minute per bound, saying which bound dropped the points."""
        since = self._dropped_since_log[reason] = self._dropped_since_log.get(reason, 0) + dropped
        now = time.monotonic()
        if now - self._last_drop_log.get(reason, float("-inf")) < 60.0:
            return
        log.warning(
            _DROP_EVENTS[reason],
            reason=reason,
            dropped=since,
            dropped_total=self.stats.dropped_by_reason[reason],
            max_points=self.max_points,
            max_age_s=self.max_age_s,
        )
        self._last_drop_log[reason] = now
        self._dropped_since_log[reason] = 0

    async def requeue_dead_letters(self, reason: str | None = None) -> int:
        """Dead letters (all, or those whose reason contains ``reason``) back to pending, taken out of
        the dead-letter table in the same transaction; how many. For ``gatewayd outbox requeue`` once
        the cause is fixed, with no daemon running on this outbox (it holds the state directory's lock).
        """
        return await self._run(self._requeue_sync, reason)

    def _requeue_sync(self, reason: str | None) -> int:
        where, params = ("instr(reason, ?) > 0", (reason,)) if reason else ("1", ())
        rows = self._conn.execute(
            f"SELECT id, sensor_id, time_ms, value FROM dead_letters WHERE {where} ORDER BY id", params
        ).fetchall()
        if rows:
            last = rows[-1][0]
            self._put_sync(
                [Point(sid, t, json.loads(v)) for _, sid, t, v in rows],
                also=lambda db: db.execute(
                    f"DELETE FROM dead_letters WHERE id <= ? AND {where}", (last, *params)
                ),
            )
        return len(rows)

    # ---------------------------------------------------------------- the wall clock

    @property
    def provisional(self) -> int:
        """Points held until the wall clock is set (see :mod:`gatewayd.wallclock`)."""
        return self.stats.provisional

    async def restamp(self) -> int:
        """Give the provisional points their wall-clock times, if the wall clock is set now (or
        dead-letter them, if they come from an earlier boot); returns how many were re-stamped."""
        return await self._run(self._restamp_sync)

    def _restamp_sync(self) -> int:
        try:
            resolved = self._time.resolve(self._conn)
        except sqlite3.Error as exc:  # a read outside its transaction (the writes raise StorageError)
            raise StorageError(f"outbox re-stamp failed: {exc}") from exc
        names = {num: sid for sid, num in self._sensor_nums.items()}
        by_sensor = self.stats.pending_by_sensor
        for num, n in resolved.restamped.items():
            by_sensor[names[num]] = by_sensor.get(names[num], 0) + n
            self._unmerged += n
        restamped = sum(resolved.restamped.values())
        dead = sum(resolved.dead_lettered.values())
        self.stats.provisional -= restamped + dead
        self.stats.pending -= dead
        self.stats.dead_lettered += dead
        return restamped

    # ---------------------------------------------------------------- inspection

    async def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            rows = self._conn.execute(
                "SELECT sensor_id, time_ms, value, reason, dead_at_ms FROM dead_letters "
                "ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
            keys = ("sensor_id", "time_ms", "value", "reason", "dead_at_ms")
            return [dict(zip_strict(keys, r)) for r in rows]

        return await self._run(read)

    async def all_points(self, sensor_ids: Iterable[str] | None = None) -> list[Point]:
        """Every pending point (tests and diagnostics; not for the hot path)."""

        def read() -> list[Point]:
            names = {num: sid for sid, num in self._sensor_nums.items()}
            rows = self._conn.execute("SELECT sensor, time_ms, value FROM points ORDER BY id").fetchall()
            wanted = set(sensor_ids) if sensor_ids is not None else None
            return [
                Point(names[s], t, json.loads(v)) for s, t, v in rows if wanted is None or names[s] in wanted
            ]

        return await self._run(read)

    def _rollback(self) -> None:
        try:
            self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
