"""Opening the outbox, recovering what an earlier run left, and closing it.

Why a damaged file and a full disk are told apart: only a database that fails its integrity check (or
that SQLite calls corrupt) is moved aside, kept for forensics, and started afresh; anything else (a full
disk, an I/O error, a file that cannot be opened) is a :class:`~gatewayd.errors.StorageError` and the
database stays where it is, for the daemon to retry (:mod:`gatewayd.outbox.storagefaults`). Opening a
version 1 database adds the storage clock's table and meta keys (:mod:`gatewayd.outbox.timekeeping`);
then the pending points are counted from disk, so a restart picks the backlog up where it was.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import structlog

from gatewayd.errors import StorageError
from gatewayd.outbox.schema import SCHEMA
from gatewayd.outbox.storage import Opened
from gatewayd.outbox.storagefaults import Fault, check_error, fault_of
from gatewayd.outbox.store import StoreBase
from gatewayd.outbox.timekeeping import SCHEMA_VERSION

log = structlog.get_logger(__name__)


def require_json_functions() -> None:
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


class _Damaged(Exception):
    """The database failed its integrity check, or SQLite called it corrupt or not a database."""


class Opening(StoreBase):
    """Open (with recovery) and close."""

    def open(self) -> Opened | None:
        """Open the database and count what is in it; None when it is open already (a retry queued
        behind an attempt that worked). May be called again after it failed (the daemon retries while
        the disk is full). Raises StorageError (DiskFullError for a full disk); never moves a sound
        file aside."""
        if self._db is not None:
            return None
        require_json_functions()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise self._error("cannot create the outbox directory", exc) from exc
        self._reserve.take(now=True)  # adopts the reserve an earlier run left, or makes one if there is room
        recovered = 0
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
                "outbox.corrupt",
                effect="moved aside, starting a fresh one",
                path=str(self.path),
                moved_to=str(aside),
                error=str(exc),
            )
            recovered = 1
            self._freeing(self._connect)
        return self._count()._replace(recovered_corrupt=recovered)

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
        db.executescript(SCHEMA)
        db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        self._sensor_nums = dict(db.execute("SELECT sensor_id, num FROM sensors"))
        row = db.execute("SELECT value FROM meta WHERE key = 'merged_upto'").fetchone()
        self._merged_upto = int(row[0]) if row else 0
        self._unmerged = 1  # whatever an earlier run left unindexed: the first merge looks

    def _count(self) -> Opened:
        db = self._conn
        dead_lettered = self._time.open(db)
        indexed = self._merge_or_not()  # everything indexed: the count reads the index, not the table
        # Provisional points (negative stamps) are never indexed; they are counted apart below.
        where = "WHERE merged = 1" if indexed else "WHERE time_ms >= 0"
        by_num = dict(db.execute(f"SELECT sensor, COUNT(*) FROM points {where} GROUP BY sensor"))
        names = self._names()
        by_sensor = {names[n]: c for n, c in by_num.items() if n in names}
        provisional = sum(self._time.count_provisional(db).values())
        if by_num or provisional:
            log.info(
                "outbox.backlog_recovered",
                pending=sum(by_num.values()) + provisional,
                sensors=len(by_sensor),
            )
        return Opened(by_sensor, provisional, dead_lettered, 0)

    def close(self) -> None:
        """Save the storage clock, fold the WAL into the file, close; the next open resumes here."""
        db = self._db
        if db is None:
            return
        try:
            self._time.save(db)  # where the storage clock resumes at the next open
        except sqlite3.DatabaseError:
            pass  # it resumes from the last bound check's save instead (keeping points longer)
        try:
            self._freeing(self.checkpoint)
        except StorageError as exc:  # the WAL stays; the next open reads it
            log.warning("outbox.close_checkpoint_failed", error=str(exc))
        db.close()
        self._db = None

    def checkpoint(self) -> None:
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise self._error("outbox checkpoint failed", exc) from exc
