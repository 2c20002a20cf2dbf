"""One daemon per state directory: an exclusive lock on ``state_dir/gatewayd.lock`` with the holder's pid.

Why: two daemons on one state directory (a second unit, a manual run during maintenance) share one
outbox and one registry. Both sample, both lease the same points (the in-memory lease of one is unknown
to the other), one commit fails on the other's rows and the counters of both go wrong. The lock makes
the second start fail at once, naming the holder, before it samples or opens anything.

Why ``flock``: the kernel drops the lock when its holder dies, even by SIGKILL or a power cut, so a
stale lock file never keeps the daemon from starting (a pid file alone would). The file is never
deleted: unlinking a lock file lets a third process lock a new inode while the second still holds the
old one. The pid written in it is for the message only; the lock is what counts.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from gatewayd.errors import StateDirLockedError, StorageError

LOCK_NAME = "gatewayd.lock"
#: How long a process that found the lock taken waits for the holder to write its pid (the holder locks
#: first, then writes: in between the file is empty or holds a previous holder's pid).
PID_WAIT_S = 1.0


class StateLock:
    """The lock of one state directory, held from :meth:`acquire` until :meth:`release` (or exit)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> StateLock:
        """Take the lock or raise :class:`StateDirLockedError` naming the holder's pid; never waits."""
        if self._fd is not None:
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StorageError(f"cannot open lock file {self.path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateDirLockedError(self.state_dir, holder_pid(self.path)) from None
        except OSError as exc:
            os.close(fd)
            raise StorageError(f"cannot lock {self.path}: {exc.strerror or exc}") from exc
        try:  # truncated only now: before the lock was ours, the file held the running holder's pid
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # the pid is for messages; the lock is what keeps a second daemon out
        self._fd = fd
        return self

    def release(self) -> None:
        """Let go of the lock (closing the descriptor drops it); the file stays."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> StateLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder_pid(path: Path, wait_s: float = PID_WAIT_S) -> int | None:
    """The pid in a lock file someone holds: waited for briefly while it is empty or names a process
    that is gone (the holder has locked but not written yet); None when it never shows."""
    deadline = time.monotonic() + wait_s
    while True:
        pid = _read_pid(path)
        if pid is not None and _alive(pid):
            return pid
        if time.monotonic() >= deadline:
            return pid
        time.sleep(0.02)


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True
