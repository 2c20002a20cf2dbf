"""Telling a damaged database from a machine that cannot write it right now.

Why this matters: moving an outbox database aside loses every point in it (they are never sent), which
is right only for a file SQLite cannot read. A full disk, an I/O error, a file that cannot be opened or
written are conditions of the machine, not of the file: the database is kept and the work is retried.

SQLite says which in its result code; Python exposes the code as ``sqlite_errorcode`` from 3.11 only.
Before that only the message is there, and it is SQLite's fixed text for the code (``sqlite3_errstr``),
so the message is read instead. One I/O error needs the free space to be told apart: SQLite reports a
shared-memory file it cannot extend on a full disk as "disk I/O error" (SQLITE_IOERR_SHMSIZE), which
is what opening a WAL database on a full disk fails with.
"""

from __future__ import annotations

import enum
import errno
import os
import re
import sqlite3
from pathlib import Path

from gatewayd.errors import DiskFullError, StorageError


class Fault(enum.Enum):
    """What a storage error means for the outbox; the value is how logs and /healthz name it."""

    CORRUPT = "database corrupt"  # the only fault that moves the database aside
    DISK_FULL = "disk full"  # wait for room: samples wait in memory, acks use the reserve
    IO = "I/O error"
    UNAVAILABLE = "cannot open or write the file"  # CANTOPEN, READONLY, PERM, EACCES, EROFS
    OTHER = "storage error"


# SQLite primary result codes (the low byte of an extended code).
SQLITE_PERM = 3
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_NOTADB = 26
#: SQLITE_IOERR_SHMSIZE: the WAL shared-memory file could not be extended; in practice, no room for it.
SQLITE_IOERR_SHMSIZE = SQLITE_IOERR | (19 << 8)

_BY_CODE = {
    SQLITE_CORRUPT: Fault.CORRUPT,
    SQLITE_NOTADB: Fault.CORRUPT,
    SQLITE_FULL: Fault.DISK_FULL,
    SQLITE_IOERR: Fault.IO,
    SQLITE_CANTOPEN: Fault.UNAVAILABLE,
    SQLITE_READONLY: Fault.UNAVAILABLE,
    SQLITE_PERM: Fault.UNAVAILABLE,
}

#: SQLite's own texts for those codes (lower case), for Pythons that do not give the code.
_BY_MESSAGE = (
    ("database disk image is malformed", Fault.CORRUPT),
    ("file is not a database", Fault.CORRUPT),
    ("database or disk is full", Fault.DISK_FULL),
    ("disk i/o error", Fault.IO),
    ("unable to open database file", Fault.UNAVAILABLE),
    ("attempt to write a readonly database", Fault.UNAVAILABLE),
    ("access permission denied", Fault.UNAVAILABLE),
)

_BY_ERRNO = {
    errno.ENOSPC: Fault.DISK_FULL,
    errno.EDQUOT: Fault.DISK_FULL,
    errno.EIO: Fault.IO,
    errno.EROFS: Fault.UNAVAILABLE,
    errno.EACCES: Fault.UNAVAILABLE,
    errno.EPERM: Fault.UNAVAILABLE,
}

#: An I/O error on a filesystem with less free than this is a full disk (see the module docstring).
LOW_SPACE_BYTES = 1024 * 1024


def classify(
    code: int | None,
    message: str,
    *,
    os_errno: int | None = None,
    free_bytes: int | None = None,
) -> Fault:
    """The fault behind an SQLite result ``code`` (None when Python did not say) and ``message``, or an
    OS ``os_errno``; ``free_bytes`` (when known) left on the filesystem turns an I/O error into a full
    disk when it is nearly nothing."""
    if os_errno is not None:
        fault = _BY_ERRNO.get(os_errno, Fault.OTHER)
    elif code is not None:
        fault = _BY_CODE.get(code & 0xFF, Fault.OTHER)
        if code == SQLITE_IOERR_SHMSIZE:
            fault = Fault.DISK_FULL
    else:
        text = message.lower()
        fault = next((f for words, f in _BY_MESSAGE if words in text), Fault.OTHER)
    if fault is Fault.IO and free_bytes is not None and free_bytes < LOW_SPACE_BYTES:
        fault = Fault.DISK_FULL
    return fault


def fault_of(exc: BaseException, *, free_bytes: int | None = None) -> Fault:
    """:func:`classify` for an exception: an ``OSError`` by its errno, an ``sqlite3.Error`` by its code
    or message, anything else is :attr:`Fault.OTHER`."""
    if isinstance(exc, OSError):
        return classify(None, str(exc), os_errno=exc.errno, free_bytes=free_bytes)
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
        return classify(code, str(exc), free_bytes=free_bytes)
    return Fault.OTHER


def free_space(directory: Path) -> int | None:
    """Bytes an unprivileged writer may still use on ``directory``'s filesystem; None if unknown."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def storage_error(what: str, exc: BaseException, directory: Path) -> StorageError:
    """The StorageError to raise for ``exc`` while doing ``what`` in ``directory``: a
    :class:`DiskFullError` when the disk is full, so callers wait for room instead of giving up."""
    fault = fault_of(exc, free_bytes=free_space(directory))
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return _error_for(fault, f"{what}: {detail}")


#: How an integrity check names a page it could not read, with SQLite's result code for why.
_CHECK_CODE = re.compile(r"error code=(\d+)")


def check_error(what: str, finding: str, directory: Path) -> StorageError | None:
    """The StorageError to raise for an integrity check's ``finding`` that is not damage, else None.

    Why: a page the check cannot read is a row of its result ("unable to get the page. error
    code=266"), not an exception; an I/O error (or a full disk) there is the machine's, and the database
    is kept. A finding without a code, or with a corruption code, is damage.
    """
    match = _CHECK_CODE.search(finding)
    if match is None:
        return None
    fault = classify(int(match.group(1)), finding, free_bytes=free_space(directory))
    return None if fault is Fault.CORRUPT else _error_for(fault, f"{what}: {finding}")


def _error_for(fault: Fault, message: str) -> StorageError:
    return (DiskFullError if fault is Fault.DISK_FULL else StorageError)(message)
