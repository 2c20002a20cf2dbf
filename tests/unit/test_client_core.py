"""The client core alone: retries, Retry-After and deferral around the transport, and the 401 rule,
with a trivial auth flow and parser, against scripted answers on loopback."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gatewayd.clouds.auth import Signing
from gatewayd.clouds.core import CloudCore
from gatewayd.clouds.http import HttpTransport, Response
from gatewayd.clouds.request import Grant, Request
from gatewayd.clouds.retry import RetryPolicy
from gatewayd.errors import (
    AuthError,
    CloudError,
    DeferredError,
    PermanentError,
    RateLimitedError,
    TransientError,
)
from tests.conftest import loopback_server
from tests.helpers.clocks import Clocks

START = 1_700_000_000.0


class Stamp(Signing):
    """Signs nothing, but stamps each attempt with its number: built anew per attempt, never renewed."""

    def __init__(self) -> None:
        self.grants = 0

    async def authorize(self, request: Request) -> Grant:
        self.grants += 1
        return Grant({"X-Attempt": str(self.grants)})


def answer(status: int, retry_after: str | None = None) -> web.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    return web.json_response({"status": status}, status=status, headers=headers)


async def run(
    answers: list[web.Response], policy: RetryPolicy, calls: int = 1
) -> tuple[list[Any], list[str], list[float]]:
    """``calls`` calls through a core over ``answers``: their outcomes, the attempt headers seen, the waits."""
    seen: list[str] = []
    waits: list[float] = []
    clocks = Clocks(wall=START)

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.headers["X-Attempt"])
        return answers.pop(0) if answers else answer(200)

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        clocks.advance(seconds)

    def parse(resp: Response, request: Request) -> Any:
        if 200 <= resp.status < 300:
            return resp.json()
        raise core.failure(resp.status, f"HTTP {resp.status}", resp, request.operation)

    outcomes: list[Any] = []
    async with loopback_server(handle) as url, aiohttp.ClientSession() as session:
        transport = HttpTransport(
            session, url, cloud="test", retry_after_in_call=policy.max_retry_after, clock=clocks.wall
        )
        core = CloudCore(
            transport, Stamp(), parse, policy=policy, sleep=sleep, rand=lambda: 0.5, clock=clocks.wall
        )
        for _ in range(calls):
            try:
                outcomes.append(await core.call(Request("GET", "/x", "probe")))
            except CloudError as exc:
                outcomes.append(exc)
    return outcomes, seen, waits


POLICY = RetryPolicy(attempts=3, base=1.0, cap=30.0, max_retry_after=5.0)


@pytest.mark.parametrize(
    ("answers", "outcome", "attempts", "waits"),
    [
        ([200], None, 1, []),
        ([503, 200], None, 2, [0.5]),  # full jitter: rand 0.5 of base * 2**0
        ([503, 502, 200], None, 3, [0.5, 1.0]),
        ([503, 503, 503], TransientError, 3, [0.5, 1.0]),  # attempts bound the call
        ([(429, "3"), 200], None, 2, [3.0]),  # a short Retry-After is waited in the call
        ([(503, "5"), 200], None, 2, [5.0]),
        ([(429, "6")], RateLimitedError, 1, []),  # a longer one ends the call at once
        ([400], PermanentError, 1, []),
        ([401], AuthError, 1, []),  # a signature has nothing to renew: no second try
        ([404], PermanentError, 1, []),
    ],
)
async def test_retries(
    answers: list[Any], outcome: type[CloudError] | None, attempts: int, waits: list[float]
) -> None:
    responses = [answer(*a) if isinstance(a, tuple) else answer(a) for a in answers]
    [result], seen, waited = await run(responses, POLICY)
    if outcome is None:
        assert result == {"status": 200}
    else:
        assert type(result) is outcome
    assert seen == [str(n) for n in range(1, attempts + 1)]  # each attempt authorised anew
    assert waited == waits


async def test_a_long_retry_after_defers_the_next_calls_without_sending_them() -> None:
    (first, second), seen, waited = await run([answer(429, "60")], POLICY, calls=2)
    assert isinstance(first, RateLimitedError) and first.retry_after == 60.0
    assert isinstance(second, DeferredError) and "no request sent" in second.message
    assert seen == ["1"] and waited == []
