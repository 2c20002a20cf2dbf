"""When statuses and uploads are due: pure functions of the monotonic clock, with no I/O and no waiting.

Why pure: the reporting loops (gatewayd.runtime.reporting) only ask "when next?" and wait until then, so
the timing rules can be read and tested here as tables, without an event loop or a sleep.

The rules:

- A status round starts one reportInterval after the last one started. A round that outlasts the
  interval (thousands of sensors, a slow uplink) is followed at once rather than a tick later: each
  sensor's status is then renewed once a round, which keeps it valid (validDuration is 1.5 x the
  interval) while a round takes less than that, where skipping a tick would let every status expire.
- An upload cycle starts one reportInterval after the last one started, at once after registration
  (the backlog first), and at once again when a cycle outlasts the interval. A cycle that failed on
  the outbox (disk full, I/O error) is tried again after a backoff instead: 1 s doubling to 1 min.
- A new reportInterval counts from the last start, so it takes effect at once, not after the old one.
- Every few status rounds the gateway record is read again (the portal may change reportInterval).
"""

from __future__ import annotations

from gatewayd.runtime.retryepisode import retry_delay

#: reportInterval until the gateway record says otherwise.
DEFAULT_REPORT_INTERVAL_MS = 60_000
#: Due at once: nothing happened yet.
NOW = float("-inf")
#: Re-read the gateway record every this many status rounds.
REPORT_INTERVAL_REFRESH_EVERY = 5
#: Backoff of an upload cycle that failed on the outbox: from this, doubling with each failure in a row...
UPLOAD_STORAGE_RETRY_S = 1.0
#: ...up to this.
UPLOAD_STORAGE_RETRY_MAX_S = 60.0


def next_status_at(last_started: float | None, interval_s: float) -> float:
    """Monotonic time the next status round is due (NOW for the first)."""
    return NOW if last_started is None else last_started + interval_s


def next_upload_at(
    last_started: float | None,
    interval_s: float,
    *,
    storage_failures: int = 0,
    last_ended: float | None = None,
) -> float:
    """Monotonic time the next upload cycle is due (NOW for the first after registration).

    ``storage_failures`` counts the cycles in a row that failed on the outbox, the last of which ended
    at ``last_ended``: the next then waits out a backoff rather than the interval.
    """
    if storage_failures > 0 and last_ended is not None:
        return last_ended + storage_retry_s(storage_failures)
    return NOW if last_started is None else last_started + interval_s


def storage_retry_s(failures: int) -> float:
    """Seconds before an upload cycle is tried again after ``failures`` outbox failures in a row."""
    return retry_delay(failures, UPLOAD_STORAGE_RETRY_S, UPLOAD_STORAGE_RETRY_MAX_S)


def wait_s(due_at: float, now: float) -> float:
    """Seconds to wait from ``now`` for something due at ``due_at`` (0 when it is due already)."""
    return max(0.0, due_at - now)


def refresh_due(rounds: int, every: int = REPORT_INTERVAL_REFRESH_EVERY) -> bool:
    """Whether status round number ``rounds`` (1 for the first) also re-reads the gateway record."""
    return rounds > 0 and rounds % every == 0


def backlog_growing(pending: int, last_logged: int) -> bool:
    """Whether ``pending`` points are worth an ``upload.backlog_growing`` line, given the count last logged:
    past 1,000 and at least twice the last one, so a growing backlog is told in a few lines."""
    return pending > max(1000, 2 * last_logged)
