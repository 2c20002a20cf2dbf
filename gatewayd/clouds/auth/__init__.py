"""How a client proves who it is: one protocol, one implementation per scheme.

The core (:mod:`gatewayd.clouds.core`) asks the flow for a :class:`~gatewayd.clouds.request.Grant` before
each attempt, tells it of each answer, lets it check the answer, and when the cloud says 401 asks it to
renew once — the same way for every scheme:

* :class:`Signing`: a signature per attempt (RCMS, loctube ``signature``); nothing to renew, so a 401 fails.
* :class:`~gatewayd.clouds.auth.tokens.TokenAuth`: a token obtained, kept, renewed before it lapses and
  once when refused (Thing+ password grant, loctube ``token`` and ``oauth2``).

Modules: ``tokens`` (the token cache), ``encodings`` (JSON-then-form token requests), ``thingplus``,
``rcms``, ``loctubesign`` (the pure loctube signer), ``loctube``.
"""

from __future__ import annotations

from typing import Protocol

from gatewayd.clouds.http import Response
from gatewayd.clouds.request import Grant, Request


class Auth(Protocol):
    """The auth flow of one client."""

    async def authorize(self, request: Request) -> Grant:
        """The credentials for one attempt of ``request`` (a token obtained first if needed)."""

    async def renew(self, refused: Grant) -> bool:
        """The cloud answered 401 to ``refused``: get new credentials; False when there is nothing to
        renew (a signature), and the call fails."""

    def answered(self, grant: Grant, response: Response, started: float) -> None:
        """An answer came to a request sent at ``started`` (wall clock) with ``grant``."""

    def verify(self, grant: Grant, response: Response, operation: str) -> None:
        """Raise if the answer must not be used (a signature that does not verify, ...)."""


class Signing:
    """Base of the flows that sign each attempt anew: nothing is kept, so nothing is renewed."""

    async def renew(self, refused: Grant) -> bool:
        return False

    def answered(self, grant: Grant, response: Response, started: float) -> None:
        return None

    def verify(self, grant: Grant, response: Response, operation: str) -> None:
        return None
