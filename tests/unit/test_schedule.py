"""When statuses and uploads are due (gatewayd.runtime.schedule): tables, no event loop, no sleeps."""

from __future__ import annotations

import pytest

from gatewayd.runtime.schedule import (
    NOW,
    REPORT_INTERVAL_REFRESH_EVERY,
    backlog_growing,
    next_status_at,
    next_upload_at,
    refresh_due,
    storage_retry_s,
    wait_s,
)


@pytest.mark.parametrize(
    ("last_started", "interval_s", "now", "due_at", "wait"),
    [
        # the first round goes at once
        (None, 60.0, 1000.0, NOW, 0.0),
        # a quick round: the next one interval after the last began, not after it ended
        (1000.0, 60.0, 1000.5, 1060.0, 59.5),
        (1000.0, 0.1, 1000.01, 1000.1, 0.09),
        # a round that outlasted the interval is followed at once, not a tick later
        (1000.0, 0.1, 1000.13, 1000.1, 0.0),
        (1000.0, 60.0, 1075.0, 1060.0, 0.0),
        # a new, shorter reportInterval counts from the last start: due at once
        (1000.0, 0.1, 1030.0, 1000.1, 0.0),
        # a new, longer one waits the rest of it
        (1000.0, 300.0, 1030.0, 1300.0, 270.0),
    ],
)
def test_status_rounds(
    last_started: float | None, interval_s: float, now: float, due_at: float, wait: float
) -> None:
    assert next_status_at(last_started, interval_s) == pytest.approx(due_at)
    assert wait_s(next_status_at(last_started, interval_s), now) == pytest.approx(wait)


@pytest.mark.parametrize(
    ("last_started", "interval_s", "failures", "last_ended", "now", "due_at", "wait"),
    [
        # registered (again): the backlog goes at once
        (None, 5.0, 0, None, 100.0, NOW, 0.0),
        # then every reportInterval from the start of the last cycle
        (100.0, 5.0, 0, 100.2, 100.2, 105.0, 4.8),
        (100.0, 60.0, 0, 101.0, 130.0, 160.0, 30.0),
        # a cycle that outlasted the interval (a backlog, a slow uplink): the next at once
        (100.0, 5.0, 0, 107.0, 107.0, 105.0, 0.0),
        # failed on the outbox: 1 s after it ended, doubling with each failure in a row...
        (100.0, 5.0, 1, 100.5, 100.5, 101.5, 1.0),
        (100.0, 5.0, 2, 100.5, 100.5, 102.5, 2.0),
        (100.0, 5.0, 4, 100.5, 100.5, 108.5, 8.0),
        # ...up to a minute, even when the interval is shorter or longer
        (100.0, 5.0, 7, 100.5, 100.5, 160.5, 60.0),
        (100.0, 300.0, 30, 100.5, 100.5, 160.5, 60.0),
        (100.0, 300.0, 1, 100.5, 100.5, 101.5, 1.0),
        # the failure count alone, with no end time, is the interval's rhythm
        (100.0, 5.0, 3, None, 101.0, 105.0, 4.0),
    ],
)
def test_upload_cycles(
    last_started: float | None,
    interval_s: float,
    failures: int,
    last_ended: float | None,
    now: float,
    due_at: float,
    wait: float,
) -> None:
    due = next_upload_at(last_started, interval_s, storage_failures=failures, last_ended=last_ended)
    assert due == pytest.approx(due_at)
    assert wait_s(due, now) == pytest.approx(wait)


@pytest.mark.parametrize(
    ("failures", "retry_s"), [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (100, 60.0)]
)
def test_storage_retry_backoff(failures: int, retry_s: float) -> None:
    assert storage_retry_s(failures) == retry_s


@pytest.mark.parametrize(
    ("rounds", "due"),
    [
        (0, False),
        (1, False),
        (REPORT_INTERVAL_REFRESH_EVERY - 1, False),
        (REPORT_INTERVAL_REFRESH_EVERY, True),
        (REPORT_INTERVAL_REFRESH_EVERY + 1, False),
        (3 * REPORT_INTERVAL_REFRESH_EVERY, True),
    ],
)
def test_the_gateway_record_is_read_again_every_few_rounds(rounds: int, due: bool) -> None:
    assert refresh_due(rounds) is due


@pytest.mark.parametrize(
    ("pending", "last_logged", "growing"),
    [
        (0, 0, False),
        (1000, 0, False),
        (1001, 0, True),
        (1500, 1001, False),
        (2003, 1001, True),
        (5000, 4000, False),
    ],
)
def test_a_growing_backlog_is_told_in_few_lines(pending: int, last_logged: int, growing: bool) -> None:
    assert backlog_growing(pending, last_logged) is growing
