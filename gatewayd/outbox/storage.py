"""What the outbox asks of its storage: a narrow interface, and what each call reports back.

Why an interface: :class:`~gatewayd.outbox.Outbox` keeps the rules (:mod:`gatewayd.outbox.rules`) on
the event loop and runs every storage call on a thread of its own; the store does the disk work and
reports what it did (rows committed, rows removed, per sensor), which is all the rules need. The one
implementation is SQLite (:class:`~gatewayd.outbox.sqlitestore.SqliteStore`); a test can stand a
store in that fails or stalls on cue.

Every method is synchronous and runs on the outbox's thread only. A write that frees room (a delete,
a dead letter, a drop, opening) gets through a full disk on its own (with the disk space reserve);
a put does not: on a full disk it raises :class:`~gatewayd.errors.DiskFullError` and the samples wait
in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple, Protocol, TypeVar

from gatewayd.outbox.model import Lease, Point

T = TypeVar("T")


class Opened(NamedTuple):
    """What an open found on disk."""

    pending_by_sensor: dict[str, int]  # leasable points per sensor
    provisional: int  # points held until the wall clock is set
    dead_lettered: int  # provisional points of an earlier boot, dead-lettered at this open
    recovered_corrupt: int  # 1 when a damaged file was moved aside and a fresh one started


class Removed(NamedTuple):
    """Points a bound or a re-stamp took out of the leasable set, per sensor, and provisional ones."""

    by_sensor: dict[str, int]
    provisional: int = 0


class Requeued(NamedTuple):
    """Dead letters put back as pending points (``provisional`` of them with provisional stamps)."""

    points: list[Point]
    provisional: int


class OutboxStorage(Protocol):
    """Storage of the outbox's points and dead letters (see the module docstring)."""

    @property
    def is_open(self) -> bool: ...

    @property
    def reserve_held(self) -> bool: ...

    def open(self) -> Opened | None:
        """Open (again after a failure: the daemon retries while the disk is full) and count the
        backlog; None when it is open already."""
        ...

    def close(self) -> None: ...

    def put(self, points: Sequence[Point]) -> int:
        """Commit ``points`` in one transaction, durable when this returns; how many are provisional."""
        ...

    def lease(self, sensor_ids: Sequence[str], limit: int) -> tuple[list[Lease], bool]:
        """Each sensor's oldest points (at most ``limit``), none for a sensor with none; and whether the
        read saw every point put so far (False when recent ones could not be indexed yet)."""
        ...

    def delete(self, leases: Sequence[Lease]) -> list[int]:
        """Delete the leases' points (acknowledged) in one transaction; how many went, per lease."""
        ...

    def dead_letter(self, lease: Lease, reason: str) -> int:
        """Move the lease's points to the dead letters with ``reason``; how many moved."""
        ...

    def drop_oldest(self, count: int) -> Removed:
        """Delete the ``count`` oldest points (the ``max_points`` bound), leased ones included."""
        ...

    def drop_aged(self, max_age_s: float) -> Removed:
        """Delete what has been stored longer than ``max_age_s`` on the storage clock."""
        ...

    def restamp(self) -> Removed:
        """Give provisional points their wall-clock times if it is set: ``by_sensor`` re-stamped (now
        leasable), ``provisional`` dead-lettered (stamped in an earlier boot)."""
        ...

    def requeue(self, reason: str | None) -> Requeued:
        """Dead letters (those whose reason contains ``reason``, or all) back to pending."""
        ...

    def dead_letters(self, limit: int) -> list[dict[str, Any]]: ...

    def points(self, sensor_ids: Iterable[str] | None) -> list[Point]: ...

    def checkpoint(self) -> None:
        """Fold the WAL into the database file."""
        ...

    def take_reserve(self) -> bool:
        """Take the disk space reserve back if there is room; True when it is held."""
        ...

    def write_aside(self, write: Callable[[], T], essential: bool) -> T:
        """Run another small write of the state directory; ``essential``: with the reserve."""
        ...
