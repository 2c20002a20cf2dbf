"""A token obtained from a cloud, kept, renewed before it lapses, and renewed once when refused.

Shared by every token scheme (Thing+ password grant, loctube ``/api/v1/token`` and OAuth2): a scheme says
only how to obtain a token, which headers carry it and when it is stale. One lock, so that concurrent
calls wait for a single renewal instead of each starting their own; a call refused a token that another
call has already replaced just uses the new one.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Generic, TypeVar

from gatewayd.clouds.http import HttpTransport, Response
from gatewayd.clouds.request import Grant, Request

T = TypeVar("T")


class TokenAuth(ABC, Generic[T]):
    """The auth flow of a token scheme; subclasses implement :meth:`obtain`, :meth:`headers`, :meth:`stale`."""

    def __init__(self, transport: HttpTransport, clock: Callable[[], float]) -> None:
        #: Where the scheme asks for its tokens (the client's own transport: same endpoint, deferral).
        self.transport = transport
        self.clock = clock
        self._lock = asyncio.Lock()
        #: The current token's grant (headers built once: every request sends them); None: no token yet.
        self._grant: Grant | None = None
        self._restored = False

    # ---- what a scheme provides

    @abstractmethod
    async def obtain(self, previous: T | None) -> T:
        """A new token from the cloud; ``previous`` is the one it replaces (None: there was none)."""

    @abstractmethod
    def headers(self, token: T) -> dict[str, str]:
        """The headers that carry ``token``."""

    @abstractmethod
    def stale(self, token: T, now: float) -> bool:
        """True once ``token`` should be renewed before use rather than wait for a 401."""

    def restore(self) -> T | None:
        """A token kept from an earlier run, asked once before the first is obtained (none by default)."""
        return None

    # ---- the flow

    async def token(self) -> T:
        """The current token: kept, else restored, else a new one."""
        grant = await self._current()
        token: T = grant.credential
        return token

    async def authorize(self, request: Request) -> Grant:
        return await self._current()

    async def renew(self, refused: Grant) -> bool:
        async with self._lock:
            grant = self._grant
            if grant is not None and grant is not refused and not self.stale(grant.credential, self.clock()):
                return True  # another call renewed it meanwhile
            self._set(await self.obtain(refused.credential))
        return True

    def answered(self, grant: Grant, response: Response, started: float) -> None:
        return None

    def verify(self, grant: Grant, response: Response, operation: str) -> None:
        """Answers to token-authenticated requests are not signed: nothing to check."""
        return None

    async def _current(self) -> Grant:
        grant = self._grant
        if grant is not None and not self.stale(grant.credential, self.clock()):
            return grant
        async with self._lock:
            if not self._restored:
                self._restored = True
                restored = self.restore()
                if restored is not None:
                    self._set(restored)
            grant = self._grant
            if grant is None or self.stale(grant.credential, self.clock()):
                grant = self._set(await self.obtain(None if grant is None else grant.credential))
            return grant

    def _set(self, token: T) -> Grant:
        self._grant = Grant(self.headers(token), credential=token)
        return self._grant
