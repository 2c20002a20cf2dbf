"""The outbox's SQL: the schema, and the statements built for a number of rows or sensors.

Why apart: what is on disk and how it is read and written in bulk can be checked here in one place,
without the queue's bookkeeping around it. Statements are cached by shape (rows, sensors, ranges), so a
busy outbox builds each one once.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from gatewayd.compat import zip_strict
from gatewayd.outbox.timekeeping import AGE_MARKS_TABLE

S = TypeVar("S")

# One encoder for every value: json.dumps(value, separators=...) builds a new encoder per call, on the
# put's hot path. Same output, compact JSON text.
encode_value = json.JSONEncoder(separators=(",", ":")).encode

#: Rows per INSERT. sqlite3 lets go of the GIL at every statement step, and taking it back from a busy
#: event loop can cost a switch interval: with ``executemany`` that is per row, so a big commit would
#: wait once per point while samples pile up in memory. 300 rows x 3 values keeps under the
#: 999-variable limit of older SQLite builds.
_ROWS_PER_INSERT = 300


def chunked(items: Sequence[S], size: int) -> Iterator[Sequence[S]]:
    """``items`` in consecutive slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def insert_rows(db: sqlite3.Connection, into: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """``INSERT INTO {into} VALUES ...`` for ``rows``, :data:`_ROWS_PER_INSERT` at a time."""
    for chunk in chunked(rows, _ROWS_PER_INSERT):
        db.execute(_insert_sql(into, len(chunk[0]), len(chunk)), [v for row in chunk for v in row])


@functools.lru_cache(maxsize=8)
def _insert_sql(into: str, width: int, rows: int) -> str:
    row = "(" + ", ".join(["?"] * width) + ")"
    return f"INSERT INTO {into} VALUES " + ",".join([row] * rows)


#: Sensors per lease or ack statement: 2 or 3 variables each, under the 999-variable limit, and a
#: compound SELECT of at most this many parts (SQLite allows 500).
SENSORS_PER_LEASE_QUERY = 256


@functools.lru_cache(maxsize=64)
def lease_sql(sensors: int) -> str:
    """Each of ``sensors`` sensors' oldest merged points (``sensor = ?``, ``LIMIT ?``), as one JSON array
    of ``[sensor, [ids], [times], [values]]`` (each value as JSON text); ``[null, [], [], []]`` for a
    sensor with none."""
    one = (
        "SELECT sensor, json_group_array(id) AS ids, json_group_array(time_ms) AS times, "
        "json_group_array(value) AS vals FROM (SELECT sensor, id, time_ms, value FROM points "
        "WHERE sensor = ? AND merged = 1 ORDER BY id LIMIT ?)"
    )
    parts = " UNION ALL ".join([one] * sensors)
    return f"SELECT json_group_array(json_array(sensor, json(ids), json(times), json(vals))) FROM ({parts})"


def in_id_order(
    ids: list[int], times: list[int], values: list[str]
) -> tuple[list[int], list[int], list[str]]:
    """The three lists in id order. SQLite aggregates rows in the order its subquery yields them, but
    does not promise to: checked here, and sorted in the rare case they are not."""
    if ids == sorted(ids):  # ids are unique: sorted means in order
        return ids, times, values
    rows = sorted(zip_strict(ids, times, values))
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


@functools.lru_cache(maxsize=64)
def delete_sql(ranges: int) -> str:
    """Delete ``ranges`` id ranges, each of one sensor (``sensor = ? AND id BETWEEN ? AND ?``)."""
    one = "(sensor = ? AND id BETWEEN ? AND ?)"
    return f"DELETE FROM points WHERE merged = 1 AND ({' OR '.join([one] * ranges)})"


SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sensors (num INTEGER PRIMARY KEY, sensor_id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS points (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reuse an id: a late ack deletes its lease's id range
    sensor INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    value TEXT NOT NULL,
    -- 1 once in points_by_sensor: every id <= meta.merged_upto but provisional ones (time_ms < 0:
    -- stamped before the wall clock was set), which are held unleasable until re-stamped
    merged INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS points_by_sensor ON points (sensor, id) WHERE merged = 1;
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    sensor_id TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    value TEXT NOT NULL,
    reason TEXT NOT NULL,
    dead_at_ms INTEGER NOT NULL
);
"""
    + AGE_MARKS_TABLE
)
