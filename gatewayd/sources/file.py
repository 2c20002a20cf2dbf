"""File sensors: a number read from a file each interval (sysfs temperatures, hwmon, ``/proc/loadavg``).

Why a pool of a few daemon threads and not ``asyncio.to_thread``: a read of a file may block (a sysfs
attribute of a slow I2C sensor, a hung network mount, a FIFO without a writer) and must never block the
event loop, so reads run in threads; but 1,000 file sensors must not mean 1,000 threads, so a few shared
workers serve them all. The workers are daemon threads because a read stuck in the kernel cannot be
interrupted, and it must not keep the daemon from exiting (``ThreadPoolExecutor`` joins its workers at
exit). A sensor whose previous read is still stuck fails at once instead of taking another worker, so one
bad file holds at most one worker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import Any

from gatewayd.errors import SourceError
from gatewayd.inventory.sources import FileSource
from gatewayd.sources.pick import number_or_text, pick_field, pick_regex

#: Threads shared by every file sensor.
FILE_READ_WORKERS = 4
#: Bytes read from a file at most; sysfs and /proc values are a few bytes.
MAX_FILE_BYTES = 64 * 1024


class _DaemonPool:
    """A fixed number of daemon worker threads taking jobs from one queue, started on first use."""

    def __init__(self, workers: int, name: str) -> None:
        self.workers = workers
        self.name = name
        self._jobs: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Callable[[], Any]]] = (
            queue.SimpleQueue()
        )
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._jobs.put((future, job))
        if len(self._threads) < self.workers:
            with self._lock:
                while len(self._threads) < self.workers:
                    thread = threading.Thread(
                        target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True
                    )
                    thread.start()
                    self._threads.append(thread)
        return future

    def _work(self) -> None:
        while True:
            future, job = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue  # the reader gave up before the job started
            try:
                result = job()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
            del future, job


_POOL = _DaemonPool(FILE_READ_WORKERS, "gatewayd-file")


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(MAX_FILE_BYTES)


def _reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    return f"cannot read: {exc.strerror or exc}"


class FileReader:
    """Reads ``config.path`` in a worker thread, picks the value by ``regex`` or ``field``, scales it."""

    def __init__(self, config: FileSource) -> None:
        self.config = config
        self.path = config.path
        self._pending: concurrent.futures.Future[Any] | None = None

    async def read(self) -> float | int | str:
        if self._pending is not None and not self._pending.done():
            raise SourceError(f"{self.path}: the previous read is still blocked")
        self._pending = _POOL.submit(lambda: _read_bytes(self.path))
        try:
            data = await asyncio.wrap_future(self._pending)
        except OSError as exc:
            raise SourceError(f"{self.path}: {_reason(exc)}") from None
        text = data.decode("utf-8", errors="replace")
        if not text.strip():
            raise SourceError(f"{self.path}: the file is empty")
        try:
            picked = self._pick(text)
            return number_or_text(picked, self.config.scale, self.config.offset)
        except SourceError as exc:
            raise SourceError(f"{self.path}: {exc}") from None

    def _pick(self, text: str) -> str:
        if self.config.regex is not None:
            return pick_regex(text, self.config.regex)
        if self.config.field is not None:
            return pick_field(text, self.config.field)
        return text

    async def close(self) -> None:
        return None
