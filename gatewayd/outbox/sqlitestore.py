"""The outbox's storage in SQLite: one file, its parts read from the bottom up.

Why SQLite: one file, atomic transactions, crash-safe WAL, and a range delete for acknowledgements; the
same reasons Fluent Bit and Greengrass stream manager keep a local store.

- ``schema``: the tables and the statements built for a number of rows or sensors;
- ``store``: the connection, the full-disk retry, the bulk index merge;
- ``opening``: open with integrity check, quarantine of a damaged file, migration, counts; close;
- ``trims``: points dropped by a bound, provisional points re-stamped;
- ``writes``: rows appended, leases read, ranges deleted, dead letters moved;
- ``inspection``: dead letters and points read, dead letters requeued.

Why layers of one class rather than helper objects: every call works on the same connection, sensor
numbers, index state and reserve, inside one transaction; as layers, each file holds the methods of
one job on one ``self``, and a layer uses only what the layers below it define (a requeue is a put),
which mypy checks.
"""

from __future__ import annotations

from gatewayd.outbox.inspection import Inspection
from gatewayd.outbox.opening import Opening
from gatewayd.outbox.trims import Trims


class SqliteStore(Opening, Inspection, Trims):
    """:class:`~gatewayd.outbox.storage.OutboxStorage` in one SQLite file; owned by one thread."""
