"""The emulated Thing+'s OAuth2: the password-grant token endpoint and the bearer check of every call.

* ``POST /v2/oauth2/token``: password grant; ``password`` must be the md5 hex of the user's password.
  JSON or form body (the guide shows JSON, its OAuth2 page a form; :attr:`Tokens.encodings` narrows it);
  client credentials in the body or as HTTP Basic. Answers ``{access_token, token_type}`` outside the
  envelope; bad credentials 401 ``{error, error_description}``.
* An inventory of the MQTT mode (``thingplus.transport: mqtt``) names no OAuth2 account: the emulator
  then has none, and every token request is 401 ``invalid_client`` (the gateway it knows is an MQTT
  gateway with its API key, :mod:`.mqttgateways`).
* Every other call needs ``Authorization: Bearer <token>``: missing or unknown answers 401 ``Access
  denied``, an expired one 401 ``{"name": "TokenExpiredError", "message": "jwt expired"}``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import structlog
from aiohttp import web

from gatewayd.emulator.thingplus.wire import Denied, OAuthError
from gatewayd.inventory.config import ThingPlusConfig

log = structlog.get_logger(__name__)

#: A password-grant token lives 90 days.
TOKEN_LIFETIME_S = 90 * 86400.0

_MD5_HEX = re.compile(r"^[0-9a-f]{32}$")


class Tokens:
    """The tokens issued, the credentials they are issued for, and the check of a bearer header."""

    def __init__(self, config: ThingPlusConfig, clock: Callable[[], float], lifetime_s: float) -> None:
        # The OAuth2 account, read by key (the keys of the HTTPS mode); None when the inventory has none.
        self._account = _account(config)
        self._client_id = self._account[0] if self._account is not None else ""
        self._clock = clock
        self.lifetime_s = lifetime_s
        #: Token request encodings accepted: "json" and/or "form".
        self.encodings: frozenset[str] = frozenset({"json", "form"})
        self._live: dict[str, float] = {}  # live token -> issued at (clock seconds)
        self._expired: set[str] = set()
        self.issued = 0

    def snapshot(self) -> dict[str, int]:
        return {"issued": self.issued, "live": len(self._live), "expired": len(self._expired)}

    def issue(self) -> str:
        """A fresh valid token, as if the token endpoint had been called."""
        header = _b64(json.dumps({"typ": "JWT", "alg": "HS256"}))
        issued = self._clock()
        payload = _b64(
            json.dumps(
                {
                    "userId": "1",
                    "clientId": self._client_id,
                    "iat": int(issued),
                    "exp": int(issued + self.lifetime_s),
                    "jti": secrets.token_hex(8),
                }
            )
        )
        token = f"{header}.{payload}.{_b64(secrets.token_bytes(32))}"
        self._live[token] = issued
        self.issued += 1
        return token

    def expire_all(self) -> int:
        """Invalidate every token issued so far; how many were live."""
        count = len(self._live)
        self._expired.update(self._live)
        self._live.clear()
        return count

    def authorize(self, request: web.Request) -> None:
        """Raise :class:`Denied` unless the request carries a live bearer token."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Denied(False, "no bearer token")
        if token in self._expired:
            raise Denied(True, "token expired")
        issued = self._live.get(token)
        if issued is None:
            raise Denied(False, "unknown token")
        if self._clock() - issued >= self.lifetime_s:
            del self._live[token]
            self._expired.add(token)
            raise Denied(True, "token past its lifetime")

    async def endpoint(self, request: web.Request) -> web.StreamResponse:
        """``POST /v2/oauth2/token``."""
        params = await self._params(request)
        basic = _basic_credentials(request.headers.get("Authorization", ""))
        if basic is not None:
            params.setdefault("client_id", basic[0])
            params.setdefault("client_secret", basic[1])
        grant = params.get("grant_type")
        if grant is None:
            raise OAuthError(400, "invalid_request", "grant_type is missing")
        if grant != "password":
            raise OAuthError(400, "unsupported_grant_type", f"grant_type {grant!r} is not supported")
        for key in ("client_id", "client_secret", "username", "password"):
            if not isinstance(params.get(key), str) or not params[key]:
                raise OAuthError(400, "invalid_request", f"{key} is missing")
        if self._account is None:
            raise OAuthError(401, "invalid_client", "this Thing+ has no OAuth2 client (an MQTT gateway's)")
        client_id, client_secret, username, password_md5 = self._account
        if params["client_id"] != client_id or not secrets.compare_digest(
            params["client_secret"].encode(), client_secret.encode()
        ):
            raise OAuthError(401, "invalid_client", "client authentication failed")
        password = params["password"]
        if not _MD5_HEX.match(password):
            raise OAuthError(401, "invalid_grant", "password must be the md5 hex of the user's password")
        if params["username"] != username or not secrets.compare_digest(
            password.encode(), password_md5.encode()
        ):
            raise OAuthError(401, "invalid_grant", "invalid resource owner credentials")
        token = self.issue()
        log.info(
            "emulator.thingplus.token_issued",
            client_id=self._client_id,
            encoding=_encoding(request.content_type),
        )
        return web.json_response({"access_token": token, "token_type": "Bearer"})

    async def _params(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if _encoding(request.content_type) == "form":
            if "form" not in self.encodings:
                raise OAuthError(400, "invalid_request", "form-encoded token requests are not accepted")
            try:
                return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
            except UnicodeDecodeError:
                raise OAuthError(400, "invalid_request", "body is not UTF-8") from None
        if "json" not in self.encodings:
            raise OAuthError(400, "invalid_request", "JSON token requests are not accepted")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise OAuthError(400, "invalid_request", "body is neither JSON nor a form") from None
        if not isinstance(body, dict):
            raise OAuthError(400, "invalid_request", "body must be an object")
        return body


def _account(config: ThingPlusConfig) -> tuple[str, str, str, str] | None:
    """client_id, client_secret, username and the password's md5 hex; None without all of them."""
    password_md5: str | None = None
    if config.password_md5 is not None:
        password_md5 = config.password_md5.reveal().lower()
    elif config.password is not None:
        password_md5 = hashlib.md5(config.password.reveal().encode("utf-8")).hexdigest()
    if config.client_id is None or config.client_secret is None or config.username is None:
        return None
    if password_md5 is None:
        return None
    return config.client_id, config.client_secret.reveal(), config.username, password_md5


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _encoding(content_type: str) -> str:
    return "form" if content_type == "application/x-www-form-urlencoded" else "json"


def _b64(data: str | bytes) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
