"""Retry-After: parsing, how long it may be waited in a call, and the per-cloud deferral (fake clocks)."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from gatewayd.clouds import deferral as deferral_module
from gatewayd.clouds.deferral import Deferral
from gatewayd.clouds.retry import (
    IN_CALL_RETRY_AFTER_S,
    MAX_DEFERRAL_S,
    RetryPolicy,
    deferral_s,
    parse_retry_after,
    with_retries,
)
from gatewayd.errors import DeferredError, RateLimitedError, TransientError
from tests.conftest import logs_of
from tests.helpers.clocks import Clocks

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("86400000", 86400000.0),
        (formatdate(NOW + 90, usegmt=True), 90.0),  # Tue, 14 Nov 2023 22:14:50 GMT
        ("Tue, 14 Nov 2023 22:14:50 -0000", 90.0),  # "-0000": a naive date, still GMT
        (formatdate(NOW - 600, usegmt=True), 0.0),  # in the past: now
        ("", None),
        (None, None),
        ("soon", None),
        ("inf", None),
        ("nan", None),
        ("1e999", None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


@pytest.mark.parametrize(
    ("retry_after", "deferred"),
    [
        (None, None),
        (0.0, None),
        (IN_CALL_RETRY_AFTER_S, None),  # waited in the call
        (IN_CALL_RETRY_AFTER_S + 0.001, IN_CALL_RETRY_AFTER_S + 0.001),
        (120.0, 120.0),
        (MAX_DEFERRAL_S, MAX_DEFERRAL_S),
        (MAX_DEFERRAL_S + 1, MAX_DEFERRAL_S),  # capped
        (86400000.0, MAX_DEFERRAL_S),  # absurd: capped
    ],
)
def test_deferral_seconds(retry_after: float | None, deferred: float | None) -> None:
    assert deferral_s(retry_after) == deferred


def test_the_bounds_are_a_few_seconds_in_a_call_and_ten_minutes_of_deferral() -> None:
    assert (IN_CALL_RETRY_AFTER_S, MAX_DEFERRAL_S, RetryPolicy().max_retry_after) == (5.0, 600.0, 5.0)


class Attempts:
    """An attempt factory raising the given errors in turn, then answering "ok"; sleeps are recorded."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.sleeps: list[float] = []

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


async def test_a_short_retry_after_is_waited_then_retried() -> None:
    attempts = Attempts(RateLimitedError("slow down", retry_after=2.0))
    assert await with_retries(attempts, RetryPolicy(), sleep=attempts.sleep) == "ok"
    assert (attempts.calls, attempts.sleeps) == (2, [2.0])


@pytest.mark.parametrize(
    "error",
    [
        RateLimitedError("slow down", retry_after=30.0),
        TransientError("maintenance", status=503, retry_after=300.0),
        DeferredError("deferred by Retry-After", retry_after=1.0),
    ],
    ids=["429", "503", "deferred"],
)
async def test_a_long_retry_after_or_a_deferral_ends_the_call_at_once(error: TransientError) -> None:
    attempts = Attempts(error)
    with pytest.raises(type(error)):
        await with_retries(attempts, RetryPolicy(attempts=4), sleep=attempts.sleep)
    assert (attempts.calls, attempts.sleeps) == (1, [])


def deferral_on(clocks: Clocks) -> Deferral:
    return Deferral("thingplus", clock=clocks.wall, mono=clocks.mono)


def test_a_deferral_starts_logged_once_extends_quietly_and_ends_logged() -> None:
    clocks = Clocks(wall=NOW, mono=500.0)
    deferral = deferral_on(clocks)
    with logs_of(deferral_module) as logs:
        deferral.observe(200, {"Retry-After": "100"}, "series")  # not a refusal: nothing
        deferral.observe(429, {"Retry-After": "3"}, "series")  # waited in the call: nothing
        deferral.check("series")
        deferral.observe(429, {"Retry-After": "100"}, "series")
        deferral.observe(503, {"Retry-After": "50"}, "sensor_status")  # shorter: changes nothing
        deferral.observe(429, {"Retry-After": "120"}, "series")  # longer: extends, not logged again
        clocks.advance(119.5)
        with pytest.raises(DeferredError) as info:
            deferral.check("gateway_status")
        clocks.advance(0.5)
        deferral.check("gateway_status")
        deferral.check("gateway_status")
    error = info.value
    assert (error.cloud, error.operation, error.kind) == ("thingplus", "gateway_status", "deferred")
    assert error.retry_after == pytest.approx(0.5)
    assert "deferred by Retry-After until 2023-11-14T22:15:20Z (1s left); no request sent" in str(error)
    assert [(e["log_level"], e["event"]) for e in logs] == [
        ("warning", "cloud.deferred"),
        ("info", "cloud.deferral_ended"),
    ]
    assert logs[0]["deferred_s"] == 100 and logs[0]["capped"] is False
    assert logs[0]["until"] == "2023-11-14T22:15:00Z"


def test_an_absurd_retry_after_is_capped_and_the_log_says_so() -> None:
    clocks = Clocks(wall=NOW, mono=500.0)
    deferral = deferral_on(clocks)
    with logs_of(deferral_module) as logs:
        deferral.observe(429, {"Retry-After": "31536000"}, "series")  # a year
    assert deferral.until == clocks.mono() + MAX_DEFERRAL_S
    (line,) = logs
    assert (line["retry_after_s"], line["deferred_s"], line["capped"]) == (31536000, MAX_DEFERRAL_S, True)
