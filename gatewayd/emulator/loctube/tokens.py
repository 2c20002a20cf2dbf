"""Tokens of the emulated loctube server: the store, and the ``/api/v1/token`` requests.

``POST /api/v1/token`` (the document) answers ``{"status": 200, "result": "<token>"}``;
``POST /api/v1/token/{type}`` (what the official SDK's token mode calls, type ``default``) answers
``{"status": 200, "result": {"token", "expires"}}``. Both need an authenticated request (signed, or
with a token) and a JSON body: an empty body is 400, as the real controller's required
``@RequestBody`` makes it. ``expires`` is read as Jackson reads a Java ``long``: an integer, a float
(truncated), a string of digits; null is 0; 0 or less never expires (``/{type}``: the default's 30
minutes). The ``/{type}`` answer's ``expires`` is the token type's default (1800 s) whatever was
asked, as the real server answers it. X-Access-Token expiry is sliding: each use resets the clock.
"""

from __future__ import annotations

import math
import re
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gatewayd.emulator.loctube.bodies import Rejected, illegal_argument, json_object, unauthorized

DEFAULT_TOKEN_EXPIRES = 7200
#: The hsweb ``default`` token type's own lifetime, in seconds: what ``/api/v1/token/default`` answers.
DEFAULT_TYPE_EXPIRES = 1800
KINDS: tuple[str, ...] = ("x-access", "oauth2-access", "oauth2-refresh")

_LONG_TEXT = re.compile(r"\s*[+-]?[0-9]{1,18}\s*")


@dataclass
class Token:
    kind: str  # one of KINDS
    client_id: str
    issued: float
    last_used: float
    #: Seconds; 0 or less never expires.
    lifetime: float
    sliding: bool
    revoked: bool = False
    #: For an OAuth2 access token: the refresh token issued with it.
    refresh: str | None = None

    def expired(self, now: float) -> bool:
        if self.revoked:
            return True
        return self.lifetime > 0 and now >= self.last_used + self.lifetime

    def remaining(self, now: float) -> int:
        """Whole seconds left, as Redis' TTL reports it."""
        return max(0, int(self.last_used + self.lifetime - now))


class TokenStore:
    """Every token issued, by value; counts what was issued."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._tokens: dict[str, Token] = {}
        self.issued: Counter[str] = Counter()

    def new(self, kind: str, client_id: str, lifetime: float, *, sliding: bool) -> str:
        value = secrets.token_hex(16)
        now = self._clock()
        self._tokens[value] = Token(kind, client_id, now, now, lifetime, sliding)
        self.issued[kind] += 1
        self._drop_dead(now)
        return value

    def get(self, value: str) -> Token | None:
        return self._tokens.get(value)

    def use(self, value: str, kind: str) -> Token:
        """The live token ``value`` of ``kind``, its sliding clock reset; 401 if unknown or expired."""
        now = self._clock()
        token = self._tokens.get(value)
        if not value or token is None or token.kind != kind:
            raise unauthorized("token_unknown")
        if token.expired(now):
            raise unauthorized("token_expired")
        if token.sliding:
            token.last_used = now
        return token

    def expire_access(self) -> None:
        """Expire every X-Access-Token and OAuth2 access token now; refresh tokens stay valid."""
        for token in self._tokens.values():
            if token.kind != "oauth2-refresh":
                token.revoked = True

    def active(self) -> dict[str, int]:
        now = self._clock()
        live = Counter(t.kind for t in self._tokens.values() if not t.expired(now))
        return {kind: live[kind] for kind in KINDS}

    def _drop_dead(self, now: float) -> None:
        """Forget tokens expired for more than a day (kept a while so their 401 counts as 'expired')."""
        dead = [
            v for v, t in self._tokens.items() if t.lifetime > 0 and now >= t.last_used + t.lifetime + 86400
        ]
        for value in dead:
            del self._tokens[value]


def requested_expires(raw: bytes) -> int:
    """``expires`` of a token request body, in seconds, read as the real server's Jackson reads it."""
    body = json_object(raw, required=True)
    if "expires" not in body:
        return DEFAULT_TOKEN_EXPIRES
    return _java_long(body["expires"])


def _java_long(value: Any) -> int:
    if value is None:
        return 0  # null into a primitive long
    if isinstance(value, str) and _LONG_TEXT.fullmatch(value):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise illegal_argument(f"Cannot deserialize value of type `long` from {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise illegal_argument(f"Cannot deserialize value of type `long` from {value!r}")
    if not -(2**63) <= value < 2**63:
        raise illegal_argument(f"Numeric value ({value}) out of range of long")
    return int(value)


class ApiTokens:
    """The ``/api/v1/token`` endpoints for the one client, over a :class:`TokenStore`."""

    def __init__(self, store: TokenStore, client_id: str) -> None:
        self._store = store
        self._client_id = client_id

    def issue(self, raw: bytes) -> dict[str, Any]:
        """``POST /api/v1/token``."""
        expires = requested_expires(raw)
        token = self._store.new("x-access", self._client_id, expires if expires > 0 else -1, sliding=True)
        return {"result": token, "status": 200, "code": "success"}

    def issue_typed(self, token_type: str, raw: bytes) -> dict[str, Any]:
        """``POST /api/v1/token/{type}``: only hsweb's ``default`` type exists on a stock server."""
        expires = requested_expires(raw)
        if token_type != "default":
            raise Rejected(
                500, "unsupported_token_type", f"token type:{token_type} unsupported!", code="unsupported"
            )
        lifetime = expires if expires > 0 else DEFAULT_TYPE_EXPIRES
        token = self._store.new("x-access", self._client_id, lifetime, sliding=True)
        return {"result": {"expires": DEFAULT_TYPE_EXPIRES, "token": token}, "status": 200, "code": "success"}
