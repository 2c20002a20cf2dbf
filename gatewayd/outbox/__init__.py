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
it is, then re-stamped (:mod:`gatewayd.outbox.timekeeping`).

A full disk is not a damaged file: only a database that fails its integrity check is moved aside (see
:mod:`gatewayd.outbox.storagefaults`); a full disk is a :class:`DiskFullError`, and the writes that free
space (acks, dead letters, trims, the index, the checkpoint at close, opening) get the disk space reserve
(:mod:`gatewayd.outbox.diskreserve`) and one more try. While the reserve is not held, the file grows
only while more than the reserve's size stays free.

Writes: a put appends rows and nothing else. The per-sensor index that leases read is partial (rows with
``merged = 1``) and is brought up to date in bulk, at most ``_MERGE_CHUNK`` rows per transaction, before
each lease and whenever that many rows are waiting. Indexing on every put dirtied one index page per
sensor per commit (4 KB written and synced per point with one point per sensor per put); in bulk, many
points of a sensor share each page write.

The package, one job a module, read from the bottom up:

- ``model``: :class:`Point`, :class:`Lease`, :class:`OutboxStats`, what goes in and comes out;
- ``schema``: the tables and the SQL statements built for a number of rows or sensors;
- ``store``: the state, the thread and connection, the full-disk retry, the index merge;
- ``opening``: open with integrity check, quarantine of a damaged file, migration, counts; close;
- ``bounds``: ``max_age`` and ``max_points``, and re-stamping provisional points;
- ``queue``: put, lease, ack, release, dead-letter;
- ``inspection``: dead letters and points read, dead letters requeued;
- ``timekeeping``, ``diskreserve``, ``storagefaults``: the storage clock and age marks, the disk space
  reserve, a damaged file told from a machine that cannot write it.

Why mixins, each a layer on :class:`~gatewayd.outbox.store.OutboxStore`, rather than helper objects the
class delegates to: every verb works on the same connection, counters, sensor numbers, leases and
reserve, inside one transaction. Helpers would each need all of that handed to them (or a context
object that is the class again under another name), and a call would go through two layers to reach
SQLite. As layers, each file holds the methods of one job, unchanged, on one ``self``; a layer uses only
what the layers below it define (the queue trims on put, so it is built on the bounds; a requeue is a
put, so inspection is built on the queue), which mypy checks. :class:`Outbox` below names them all.
"""

from __future__ import annotations

from gatewayd.outbox.bounds import Bounds
from gatewayd.outbox.inspection import Inspection
from gatewayd.outbox.model import Lease, OutboxStats, Point
from gatewayd.outbox.opening import Opening
from gatewayd.outbox.queue import Queue
from gatewayd.outbox.schema import chunked

__all__ = ["Lease", "Outbox", "OutboxStats", "Point", "chunked"]


class Outbox(Opening, Inspection, Queue, Bounds):
    """Durable queue of points. Open with :meth:`open`; every method is a coroutine run on its own thread."""
