"""Thing+ embedded-gateway REST auth: the ``username`` (gateway id) and ``apikey`` headers on every call.

Why so little: the API key is fixed in the portal, so there is nothing to obtain, keep or renew; a 401 is
final (a wrong gateway id or key) and the client says which inventory keys to check
(:mod:`gatewayd.clouds.discovery`). The key is revealed only into the header, never into a log event.
"""

from __future__ import annotations

from gatewayd.clouds.auth import Signing
from gatewayd.clouds.request import Grant, Request
from gatewayd.secret import Secret


class ApiKeyAuth(Signing):
    """The same two headers for every attempt; nothing to renew (a 401 fails the call)."""

    def __init__(self, gateway_id: str, apikey: Secret) -> None:
        self._grant = Grant(headers={"username": gateway_id, "apikey": apikey.reveal()})

    async def authorize(self, request: Request) -> Grant:
        return self._grant

    def __repr__(self) -> str:
        return f"ApiKeyAuth(gateway_id={self._grant.headers['username']!r})"
