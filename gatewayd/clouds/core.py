"""The client core: ``call(request)`` = retries around the transport around an auth flow.

Why one core: the three clients used to carry three designs of authentication and the retry / 401 /
envelope skeleton three times. Here it is once, the way httpx models auth as a flow:

1. **Retries** (outermost): :func:`~gatewayd.clouds.retry.with_retries` with the client's policy retries
   transient failures (5xx, 429, timeouts), each attempt built anew (fresh token, fresh signature); a
   Retry-After is waited up to the policy's bound and a longer one defers the cloud (the transport's
   :class:`~gatewayd.clouds.deferral.Deferral`), failing the call at once.
2. **Auth flow**: the client's :class:`~gatewayd.clouds.auth.Auth` grants credentials for the attempt,
   checks the answer, and on a 401 renews once: a second 401 is the AuthError the caller gets.
3. **Transport**: :meth:`~gatewayd.clouds.http.HttpTransport.send` sends exactly the bytes given.

The answer is read by the client's parser (its cloud's envelope), which raises the mapped error; the
parser runs inside the attempt so that an error in an envelope is retried or renewed like any other.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog

from gatewayd.clouds.auth import Auth
from gatewayd.clouds.http import HttpTransport, Response, error_for_status
from gatewayd.clouds.request import Request
from gatewayd.clouds.retry import RetryPolicy, parse_retry_after, with_retries
from gatewayd.errors import AuthError, CloudError

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: Reads an answer of its cloud: the useful data, or raises the error the answer stands for.
Parser = Callable[[Response, Request], Any]

_JSON = "application/json"


class CloudCore:
    """One client's calls: its transport, auth flow, envelope parser and retry policy."""

    def __init__(
        self,
        transport: HttpTransport,
        auth: Auth,
        parse: Parser,
        *,
        policy: RetryPolicy,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.transport = transport
        self.auth = auth
        self.parse = parse
        self.policy = policy
        self.sleep = sleep
        self.rand = rand
        self.clock = clock

    async def call(self, request: Request) -> Any:
        """Send ``request`` until it succeeds or fails for good; what the parser made of the answer."""
        renewed = (
            False  # one renewal per call, retries included: a cloud refusing every token is not asked forever
        )

        async def attempt() -> Any:
            nonlocal renewed
            while True:
                grant = await self.auth.authorize(request)
                headers = grant.headers
                if request.body is not None:
                    headers = {**headers, "Content-Type": _JSON}
                started = self.clock()
                resp = await self.transport.send(
                    request.method,
                    request.path,
                    operation=request.operation,
                    query=request.query if grant.query is None else grant.query,
                    headers=headers,
                    body=request.body,
                )
                self.auth.answered(grant, resp, started)
                try:
                    self.auth.verify(grant, resp, request.operation)
                    return self.parse(resp, request)
                except AuthError as exc:
                    if renewed or exc.status != 401:
                        raise
                    renewed = True
                    if not await self.auth.renew(grant):
                        raise
                    log.info(
                        "cloud.credentials_renewed",
                        cloud=self.transport.cloud,
                        operation=request.operation,
                        refusal=exc.message,
                    )

        return await self.retrying(attempt)

    async def retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt`` under this client's retry policy (for token requests made outside a call)."""
        return await with_retries(attempt, self.policy, sleep=self.sleep, rand=self.rand)

    def failure(
        self, status: int, message: str, resp: Response, operation: str, code: Any = None
    ) -> CloudError:
        """The error an HTTP failure ``status`` stands for, with the answer's Retry-After."""
        return error_for_status(
            status,
            message,
            cloud=self.transport.cloud,
            operation=operation,
            code=code,
            retry_after=parse_retry_after(resp.headers.get("Retry-After"), self.clock()),
        )
