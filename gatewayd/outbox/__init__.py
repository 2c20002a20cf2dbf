"""The durable outbox: every sample is on disk (SQLite, WAL) before anything else happens to it.

Three parts, read in this order:

- the **rules** (:mod:`~gatewayd.outbox.rules`): the five verbs (put, lease, ack, release,
  dead-letter), leases, pending counts, the ``max_points`` bound, as plain state with no I/O: the
  page to read first;
- the **store** (:mod:`~gatewayd.outbox.storage` the interface, :mod:`~gatewayd.outbox.sqlitestore`
  the SQLite implementation): the disk work and its speed tricks, reporting what each call did;
- the **outbox** (:mod:`~gatewayd.outbox.queue`): :class:`Outbox`, which runs the store on a thread of
  its own and has the rules count what it reports, on the event loop's thread.

Life of a point: ``put`` (committed when it returns) -> ``lease`` (oldest first, one lease per sensor at a
time, held in memory only) -> ``ack`` (deleted) | ``release`` (back to pending) | ``dead_letter`` (moved
to the dead-letter table with the reason, bounded). Leases are not persisted: after a crash or restart
every leased point is pending again, so a batch that was in flight may be sent twice, nothing else.

Bounds: past ``max_points`` or ``max_age`` the oldest points are dropped and counted, so a box offline
for weeks keeps its newest data and a flash card does not fill up. Age is measured on a storage clock
that a wall-clock jump does not move, and points stamped before the wall clock was set are held until
it is, then re-stamped (:mod:`gatewayd.outbox.timekeeping`).

A full disk is not a damaged file: only a database that fails its integrity check is moved aside (see
:mod:`gatewayd.outbox.storagefaults`); a full disk is a :class:`DiskFullError`, and the writes that free
space (acks, dead letters, trims, the index, the checkpoint at close, opening) get the disk space reserve
(:mod:`gatewayd.outbox.diskreserve`) and one more try. While the reserve is not held, the file grows
only while more than the reserve's size stays free.

Writes: a put appends rows and nothing else. The per-sensor index that leases read is partial (rows with
``merged = 1``) and is brought up to date in bulk before each lease and whenever enough rows are
waiting: indexing on every put dirtied one index page per sensor per commit, while in bulk many points
of a sensor share each page write.
"""

from __future__ import annotations

from gatewayd.outbox.model import Lease, OutboxStats, Point
from gatewayd.outbox.queue import Outbox
from gatewayd.outbox.schema import chunked

__all__ = ["Lease", "Outbox", "OutboxStats", "Point", "chunked"]
