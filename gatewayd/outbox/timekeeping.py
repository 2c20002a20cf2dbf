"""Time in the outbox without trusting the wall clock: the storage clock, age marks, provisional points.

**Age.** ``outbox.max_age`` once compared each point's wall-clock sample time with the wall clock now: an
NTP step of more than ``max_age`` (a box without RTC booting in 1970, an RTC weeks off) deleted every
pending point. Age is now measured on the *storage clock*, which moves only with the monotonic clock
and is persisted (meta ``clock_ms``): at each open it continues from its saved value, plus the
monotonic time since it was saved when the boot is the same (a daemon restart), plus nothing across a
reboot (the powered-off time is not known without the wall clock: not counting it errs on keeping
data). A wall-clock jump moves it not at all.

Points carry no storage time of their own (a column would cost every put). Instead the outbox writes
*age marks* ``(upto_id, clock_ms)``: "every point with an id up to ``upto_id`` was put by storage time
``clock_ms``". One is written at each bound check (every minute) and at open, for the points put since
the previous one, so a put writes nothing more. A point is older than ``max_age`` for certain when a
mark covering it is: the age drop deletes the ids up to the newest mark older than ``max_age``, at most
one check interval later than an exact clock would.

**Provisional points** (see :mod:`gatewayd.wallclock`) are stored with their negative stamps and are
never indexed for leasing (``merged`` stays 0), so the uploader cannot see them and the lease query is
unchanged. Meta ``provisional_from`` (the first id that may be one) and ``provisional_boot`` (the boot
they were stamped in) say where they are. Once the wall clock is set they are re-stamped in one
transaction, as new rows (new ids, so no lease already out can cover them); if they come from an
earlier boot, their stamps mean nothing and they are dead-lettered with :data:`TIME_UNKNOWN_REASON`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import structlog

from gatewayd.errors import StorageError
from gatewayd.wallclock import TIME_UNKNOWN_REASON, is_set, restamp_base_ms

log = structlog.get_logger(__name__)

#: Outbox schema versions: 1 had no storage clock (ages came from the wall clock); 2 adds age_marks and
#: the clock and provisional meta keys.
SCHEMA_VERSION = 2

# The comment in the SQL names this module by its old name, gatewayd.outboxtime: the schema text is
# kept byte for byte as earlier releases wrote it.
AGE_MARKS_TABLE = """
CREATE TABLE IF NOT EXISTS age_marks (
    upto_id INTEGER PRIMARY KEY,  -- every point with id <= upto_id was put ...
    clock_ms INTEGER NOT NULL     -- ... by this storage-clock time (see gatewayd.outboxtime)
);
"""

_NO_ID = 1 << 62  # above any point id: "no points left" in the mark pruning


def resume_ms(saved_ms: int, saved_boot: str, saved_mono_ms: int, boot: str, mono_ms: int) -> int:
    """Where the storage clock continues at an open, from what was saved.

    Within the same boot the monotonic clock kept running while the daemon was stopped, so that time
    counts; across a reboot (or a monotonic reading that went back, which only a reboot explains) the
    clock goes on from where it was saved.
    """
    if boot == saved_boot and mono_ms >= saved_mono_ms:
        return saved_ms + (mono_ms - saved_mono_ms)
    return saved_ms


def age_cutoff_ms(now_ms: int, max_age_s: float) -> int:
    """Storage-clock time before which a mark is older than ``max_age_s``."""
    return now_ms - int(max_age_s * 1000)


@contextmanager
def transaction(db: sqlite3.Connection, what: str) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back and raised as StorageError naming ``what``."""
    try:
        db.execute("BEGIN IMMEDIATE")
        yield
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        raise StorageError(f"outbox {what} failed: {exc}") from exc


@dataclass
class Resolved:
    """What :meth:`OutboxTime.resolve` did with the provisional points, by sensor number."""

    restamped: dict[int, int] = field(default_factory=dict)
    dead_lettered: dict[int, int] = field(default_factory=dict)


class OutboxTime:
    """The outbox's storage clock, age marks and provisional-point bookkeeping, on the outbox's thread.

    Every method takes the outbox's connection; each opens its own transaction except
    :meth:`note_provisional`, which runs inside the put's.
    """

    def __init__(
        self,
        *,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        boot: str = "unknown",
    ) -> None:
        self.wall = wall
        self.mono = mono
        self.boot = boot
        self._base_ms = 0
        self._base_mono_ms = self._mono_ms()

    def _mono_ms(self) -> int:
        return int(self.mono() * 1000)

    def now_ms(self) -> int:
        """The storage clock (ms): never jumps, never goes back."""
        return self._base_ms + self._mono_ms() - self._base_mono_ms

    # ------------------------------------------------------------------ open

    def open(self, db: sqlite3.Connection) -> int:
        """At open: migrate, resume the storage clock, mark the points not marked yet, and dead-letter
        provisional points of an earlier boot. Returns how many were dead-lettered.

        A write that fails here (a full disk) is logged, not raised: the marks and the clock are
        written again at the next bound check, and the earlier boot's points are set aside by
        :meth:`resolve`; the outbox opens either way.
        """
        meta = dict(db.execute("SELECT key, value FROM meta"))
        version = int(meta.get("schema_version", SCHEMA_VERSION))
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"outbox schema version {version} is newer than this gatewayd knows ({SCHEMA_VERSION}): "
                "it was written by a later release"
            )
        mono_ms = self._mono_ms()
        if "clock_ms" in meta:
            self._base_ms = resume_ms(
                int(meta["clock_ms"]),
                meta.get("clock_boot", ""),
                int(meta.get("clock_mono_ms", 0)),
                self.boot,
                mono_ms,
            )
        self._base_mono_ms = mono_ms
        try:
            with transaction(db, "open"):
                if version < SCHEMA_VERSION:
                    db.execute(
                        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                        (str(SCHEMA_VERSION),),
                    )
                self._mark_and_save(db)
        except StorageError as exc:
            log.error("outbox.clock_not_saved", effect="saved at the next bound check", error=str(exc))
        else:
            if version < SCHEMA_VERSION:
                log.info(
                    "outbox.schema_upgraded",
                    effect="the age of the points already stored counts from now",
                    from_version=version,
                    to_version=SCHEMA_VERSION,
                )
        boot = meta.get("provisional_boot")
        if boot is None or boot == self.boot:
            return 0
        try:
            return sum(self._dead_letter_provisional(db, int(meta["provisional_from"])).values())
        except StorageError as exc:
            log.error("outbox.earlier_boot_not_set_aside", effect="retried", error=str(exc))
            return 0

    # ------------------------------------------------------------------ age

    def tick(self, db: sqlite3.Connection) -> None:
        """Mark the points put since the last mark, save the clock, forget marks that cover nothing."""
        with transaction(db, "age mark"):
            self._mark_and_save(db)
            db.execute(
                "DELETE FROM age_marks WHERE upto_id < IFNULL((SELECT MIN(id) FROM points), ?)", (_NO_ID,)
            )

    def _mark_and_save(self, db: sqlite3.Connection) -> None:
        now = self.now_ms()
        top = db.execute("SELECT MAX(id) FROM points").fetchone()[0]
        marked = db.execute("SELECT MAX(upto_id) FROM age_marks").fetchone()[0]
        if top is not None and top > (marked or 0):
            db.execute("INSERT INTO age_marks (upto_id, clock_ms) VALUES (?, ?)", (top, now))
        self.save(db, now)

    def save(self, db: sqlite3.Connection, now_ms: int | None = None) -> None:
        """Persist the storage clock (inside the caller's transaction, or alone)."""
        db.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [
                ("clock_ms", str(self.now_ms() if now_ms is None else now_ms)),
                ("clock_boot", self.boot),
                ("clock_mono_ms", str(self._mono_ms())),
            ],
        )

    def aged_out_upto(self, db: sqlite3.Connection, max_age_s: float) -> int | None:
        """The highest point id that is older than ``max_age_s`` for certain, or None."""
        cutoff = age_cutoff_ms(self.now_ms(), max_age_s)
        row = db.execute("SELECT MAX(upto_id) FROM age_marks WHERE clock_ms < ?", (cutoff,)).fetchone()
        return int(row[0]) if row[0] is not None else None

    # ------------------------------------------------------------------ provisional points

    def note_provisional(self, db: sqlite3.Connection, first_id: int) -> None:
        """Inside a put that stored provisional points from ``first_id`` on: say where and of which boot
        (the first such put's values stay)."""
        db.executemany(
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
            [("provisional_from", str(first_id)), ("provisional_boot", self.boot)],
        )

    @classmethod
    def count_provisional(cls, db: sqlite3.Connection) -> dict[int, int]:
        """Provisional points by sensor number (read at open; a range scan from the first of them)."""
        row = db.execute("SELECT value FROM meta WHERE key = 'provisional_from'").fetchone()
        return cls._provisional_by_sensor(db, int(row[0])) if row is not None else {}

    def resolve(self, db: sqlite3.Connection) -> Resolved:
        """Re-stamp the provisional points now that the wall clock is set (nothing if it is not), or
        dead-letter them if they were stamped in an earlier boot. One transaction either way."""
        meta = dict(
            db.execute("SELECT key, value FROM meta WHERE key IN ('provisional_from', 'provisional_boot')")
        )
        if "provisional_from" not in meta:
            return Resolved()
        first = int(meta["provisional_from"])
        if meta.get("provisional_boot") != self.boot:
            return Resolved(dead_lettered=self._dead_letter_provisional(db, first))
        wall, mono = self.wall(), self.mono()  # one reading of both clocks
        if not is_set(int(wall * 1000)):
            return Resolved()
        base = restamp_base_ms(wall, mono)
        with transaction(db, "re-stamp"):
            counts = self._provisional_by_sensor(db, first)
            # A stamp is -(mono_ms + 1): its wall time is base + mono_ms = (base - 1) - stamp.
            db.execute(
                "INSERT INTO points (sensor, time_ms, value) "
                "SELECT sensor, ? - time_ms, value FROM points WHERE id >= ? AND time_ms < 0 ORDER BY id",
                (base - 1, first),
            )
            db.execute("DELETE FROM points WHERE id >= ? AND time_ms < 0", (first,))
            db.execute("DELETE FROM meta WHERE key IN ('provisional_from', 'provisional_boot')")
        if counts:
            log.info(
                "outbox.points_restamped",
                restamped=sum(counts.values()),
                wall_ms=int(wall * 1000),
            )
        return Resolved(restamped=counts)

    def _dead_letter_provisional(self, db: sqlite3.Connection, first: int) -> dict[int, int]:
        """Provisional points of an earlier boot to the dead letters: time 0 (unknown), the reason says
        why; never sent with a made-up time, never lost."""
        with transaction(db, "dead-letter of points of an earlier boot"):
            counts = self._provisional_by_sensor(db, first)
            db.execute(
                "INSERT INTO dead_letters (sensor_id, time_ms, value, reason, dead_at_ms) "
                "SELECT s.sensor_id, 0, p.value, ?, ? FROM points p JOIN sensors s ON s.num = p.sensor "
                "WHERE p.id >= ? AND p.time_ms < 0 ORDER BY p.id",
                (TIME_UNKNOWN_REASON, int(self.wall() * 1000), first),
            )
            db.execute("DELETE FROM points WHERE id >= ? AND time_ms < 0", (first,))
            db.execute("DELETE FROM meta WHERE key IN ('provisional_from', 'provisional_boot')")
        if counts:
            log.warning(
                "outbox.time_unknown_dead_lettered",
                effect="points sampled before the wall clock was set, in an earlier boot: their time cannot be known",
                points=sum(counts.values()),
                reason=TIME_UNKNOWN_REASON,
            )
        return counts

    @staticmethod
    def _provisional_by_sensor(db: sqlite3.Connection, first: int) -> dict[int, int]:
        return dict(
            db.execute(
                "SELECT sensor, COUNT(*) FROM points WHERE id >= ? AND time_ms < 0 GROUP BY sensor", (first,)
            )
        )
