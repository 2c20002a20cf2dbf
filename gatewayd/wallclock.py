"""Is the wall clock set? Stamping samples before it is, and re-stamping them once it is.

Why: a box without a real-time clock boots in 1970 and an RTC can be weeks off until NTP answers. A
sample stamped with such a time is refused by Thing+ (or, worse, accepted at the wrong place in its
history). The wall clock is taken as set once it reads at least :data:`BUILD_DATE` (no true "now" can be
earlier than the day this release was built). Before that, a sample is stamped *provisionally* from the
monotonic clock, which is right from boot on; once the wall clock is set, the true time of each such
sample is ``wall_now - (mono_now - mono_at_sample)``. The monotonic clock means something only within
the boot it was read in: provisional points keep the boot id with them (the outbox records it), and
those of an earlier boot cannot be re-stamped at all.

A provisional stamp is the negative number ``-(monotonic ms + 1)``: it travels through the sample
buffer and the outbox as an ordinary ``time_ms``, never collides with a real time (Thing+ needs a
positive one) and tells itself apart without a flag on every point.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Protocol

import structlog

from gatewayd.errors import StorageError

log = structlog.get_logger(__name__)

#: The wall-clock floor: the day this release was built (or later). A wall clock earlier than this is
#: not set yet. Raise it with each release; it only has to be at or before the day a box runs it.
BUILD_DATE = date(2026, 12, 1)
BUILD_EPOCH_MS = calendar.timegm(BUILD_DATE.timetuple()) * 1000  # midnight UTC

#: The reason given to provisional points found after a reboot (their monotonic stamps are meaningless).
TIME_UNKNOWN_REASON = "sampled before the wall clock was set, across a reboot: time unknown"

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")


def is_set(wall_ms: int, floor_ms: int = BUILD_EPOCH_MS) -> bool:
    """True when a wall-clock reading (unix ms) can be a true time: not before the build date."""
    return wall_ms >= floor_ms


def provisional_stamp(mono_s: float) -> int:
    """The stamp of a sample read at monotonic time ``mono_s`` while the wall clock is not set (< 0)."""
    return -(int(mono_s * 1000) + 1)


def is_provisional(time_ms: int) -> bool:
    return time_ms < 0


def sampled_at_mono_ms(time_ms: int) -> int:
    """The monotonic ms a provisional stamp was taken at (the inverse of :func:`provisional_stamp`)."""
    return -time_ms - 1


def restamp_base_ms(wall_s: float, mono_s: float) -> int:
    """What to add to a provisional stamp's monotonic ms to get its wall time, from one reading of both
    clocks taken once the wall clock is set: ``wall_now - mono_now``."""
    return int(wall_s * 1000) - int(mono_s * 1000)


def restamped(time_ms: int, base_ms: int) -> int:
    """The true time (unix ms) of a provisional stamp, given :func:`restamp_base_ms` of this boot."""
    return base_ms + sampled_at_mono_ms(time_ms)


def boot_id(path: Path = BOOT_ID_PATH) -> str:
    """This boot's id (Linux): monotonic readings of different boots cannot be compared.

    Where there is none (not Linux), a constant: every start is then taken as the same boot, which is
    right for a process restart and is the best that can be done.
    """
    try:
        return path.read_text(encoding="ascii").strip() or "unknown"
    except OSError:
        return "unknown"


class Stamper:
    """Stamps samples for the sampler: wall-clock ms when the wall clock is set, else provisionally.

    Says once when it starts stamping provisionally (the clock not set), so the log tells why points
    wait in the outbox; the re-stamping, when the clock is set, is logged by the outbox.
    """

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        floor_ms: int = BUILD_EPOCH_MS,
    ) -> None:
        self.wall = wall
        self.mono = mono
        self.floor_ms = floor_ms
        self._unset = False

    def __call__(self) -> int:
        now_ms = int(self.wall() * 1000)
        if now_ms >= self.floor_ms:
            self._unset = False
            return now_ms
        if not self._unset:
            self._unset = True
            log.warning(
                "wallclock.not_set",
                effect="earlier than the build date: samples are stamped from the monotonic clock and held "
                "until it is set",
                wall_ms=now_ms,
                build_date=BUILD_DATE.isoformat(),
            )
        return provisional_stamp(self.mono())


class Restampable(Protocol):
    """What :class:`RestampOnClockSet` needs of the outbox."""

    @property
    def provisional(self) -> int: ...

    def restamp(self) -> Awaitable[int]: ...


class RestampOnClockSet:
    """Asks the outbox to re-stamp its provisional points once the wall clock is set.

    Called every second by the clock watch (:class:`gatewayd.runtime.sampler.ClockJumpGuard`); costs a
    comparison while there is nothing provisional. A failed re-stamp (disk full) is retried with a
    backoff of 1 s doubling to 1 min: the points stay in the outbox, held, meanwhile.
    """

    def __init__(self, outbox: Restampable, *, floor_ms: int = BUILD_EPOCH_MS) -> None:
        self.outbox = outbox
        self.floor_ms = floor_ms
        self._retry_at = float("-inf")
        self._failures = 0

    async def check(self, wall_s: float, mono_s: float) -> None:
        if not self.outbox.provisional or not is_set(int(wall_s * 1000), self.floor_ms):
            return
        if mono_s < self._retry_at:
            return
        try:
            await self.outbox.restamp()
        except StorageError as exc:
            wait_s = min(60.0, 2.0**self._failures)
            self._failures += 1
            self._retry_at = mono_s + wait_s
            log.error("wallclock.restamp_failed", error=str(exc), retry_in_s=wait_s)
            return
        self._failures = 0
        self._retry_at = float("-inf")
