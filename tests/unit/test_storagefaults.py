"""Which storage errors mean a damaged database (moved aside) and which a machine that cannot write now."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest

from gatewayd.errors import DiskFullError, StorageError
from gatewayd.outbox.storagefaults import (
    LOW_SPACE_BYTES,
    Fault,
    check_error,
    classify,
    fault_of,
    storage_error,
)

MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("code", "message", "os_errno", "free_bytes", "expected"),
    [
        # Python 3.11+: SQLite's result code decides (extended codes by their primary code)
        (11, "database disk image is malformed", None, None, Fault.CORRUPT),
        (26, "file is not a database", None, None, Fault.CORRUPT),
        (13, "database or disk is full", None, None, Fault.DISK_FULL),
        (10, "disk I/O error", None, None, Fault.IO),
        (10 | (3 << 8), "disk I/O error", None, 50 * MiB, Fault.IO),  # IOERR_WRITE with room left
        (10 | (3 << 8), "disk I/O error", None, 4096, Fault.DISK_FULL),  # ... with none: the disk is full
        (4874, "disk I/O error", None, None, Fault.DISK_FULL),  # IOERR_SHMSIZE: no room for the -shm file
        (14, "unable to open database file", None, None, Fault.UNAVAILABLE),
        (8, "attempt to write a readonly database", None, None, Fault.UNAVAILABLE),
        (8 | (1 << 8), "attempt to write a readonly database", None, None, Fault.UNAVAILABLE),
        (5, "database is locked", None, None, Fault.OTHER),
        (1, "no such table: points", None, None, Fault.OTHER),
        # Python 3.9/3.10: no code, SQLite's fixed text for it
        (None, "database disk image is malformed", None, None, Fault.CORRUPT),
        (None, "file is not a database", None, None, Fault.CORRUPT),
        (None, "database or disk is full", None, None, Fault.DISK_FULL),
        (None, "disk I/O error", None, None, Fault.IO),
        (None, "disk I/O error", None, LOW_SPACE_BYTES - 1, Fault.DISK_FULL),
        (None, "disk I/O error", None, LOW_SPACE_BYTES, Fault.IO),
        (None, "unable to open database file", None, None, Fault.UNAVAILABLE),
        (None, "attempt to write a readonly database", None, None, Fault.UNAVAILABLE),
        (None, "database is locked", None, None, Fault.OTHER),
        # a code wins over a message that says otherwise
        (13, "file is not a database", None, None, Fault.DISK_FULL),
        # the OS's own errors, by errno
        (None, "No space left on device", errno.ENOSPC, None, Fault.DISK_FULL),
        (None, "Disk quota exceeded", errno.EDQUOT, None, Fault.DISK_FULL),
        (None, "Input/output error", errno.EIO, None, Fault.IO),
        (None, "Input/output error", errno.EIO, 0, Fault.DISK_FULL),
        (None, "Read-only file system", errno.EROFS, None, Fault.UNAVAILABLE),
        (None, "Permission denied", errno.EACCES, None, Fault.UNAVAILABLE),
        (None, "No such file or directory", errno.ENOENT, None, Fault.OTHER),
    ],
)
def test_classify(
    code: int | None, message: str, os_errno: int | None, free_bytes: int | None, expected: Fault
) -> None:
    assert classify(code, message, os_errno=os_errno, free_bytes=free_bytes) is expected


def test_real_sqlite_errors_are_told_apart(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database, just garbage " * 200)
    db = sqlite3.connect(garbage)
    with pytest.raises(sqlite3.DatabaseError) as not_a_db:
        db.execute("PRAGMA quick_check").fetchone()
    db.close()
    assert fault_of(not_a_db.value) is Fault.CORRUPT

    # A database that may not grow fails exactly as a full disk does (SQLITE_FULL).
    db = sqlite3.connect(tmp_path / "small.db", isolation_level=None)
    db.execute("CREATE TABLE t (v TEXT)")
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(sqlite3.OperationalError) as full:
        db.execute("INSERT INTO t VALUES (?)", ("x" * 100_000,))
    db.close()
    assert fault_of(full.value) is Fault.DISK_FULL


def test_without_the_code_of_python_3_11_the_message_decides(tmp_path: Path) -> None:
    # What Python 3.9 raises: the same exception classes and texts, no sqlite_errorcode.
    assert fault_of(sqlite3.OperationalError("database or disk is full")) is Fault.DISK_FULL
    assert fault_of(sqlite3.DatabaseError("file is not a database")) is Fault.CORRUPT
    assert fault_of(sqlite3.OperationalError("disk I/O error"), free_bytes=0) is Fault.DISK_FULL
    assert fault_of(ValueError("database or disk is full")) is Fault.OTHER  # only storage errors


def test_storage_error_is_a_disk_full_error_only_for_a_full_disk(tmp_path: Path) -> None:
    full = storage_error(
        "outbox write failed", sqlite3.OperationalError("database or disk is full"), tmp_path
    )
    assert isinstance(full, DiskFullError)
    assert str(full) == "outbox write failed: database or disk is full"
    no_room = storage_error("cannot create", OSError(errno.ENOSPC, "No space left on device"), tmp_path)
    assert isinstance(no_room, DiskFullError)
    assert str(no_room) == "cannot create: No space left on device"
    # tmp_path has room: an I/O error there is an I/O error
    io = storage_error("outbox ack failed", sqlite3.OperationalError("disk I/O error"), tmp_path)
    assert type(io) is StorageError


@pytest.mark.parametrize(
    ("finding", "error"),
    [
        # IOERR_READ: the disk did not give the page back; CORRUPT (11): the page is damaged
        ("*** in database main ***\nPage 3: unable to get the page. error code=266", StorageError),
        ("*** in database main ***\nPage 3: unable to get the page. error code=11", None),
        ("*** in database main ***\nPage 5: btreeInitPage() returns error code 11", None),
        ("*** in database main ***\nTree 2 page 7 cell 0: Rowid 9 out of order", None),
        ("no answer", None),
    ],
)
def test_an_integrity_check_that_could_not_read_a_page_is_not_damage(
    finding: str, error: type[StorageError] | None, tmp_path: Path
) -> None:
    found = check_error("cannot open outbox", finding, tmp_path)
    if error is None:
        assert found is None
    else:
        assert type(found) is error and str(found) == f"cannot open outbox: {finding}"
