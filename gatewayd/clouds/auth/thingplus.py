"""Thing+ OAuth2 password grant: the token, where it is kept, and how it is obtained.

Why it looks like this: ``POST /v2/oauth2/token`` with the password grant; ``password`` is the md5 hex of
the user's password. The document sends JSON, the vendor's OAuth2 page says form-encoded: we send JSON
and fall back to a form when JSON is refused, then remember which one worked (also across restarts).
The answer has no ``expires_in``; a password-grant token lives 90 days, so we renew after
:data:`TOKEN_RENEW_AFTER_S`. The token is kept in a 0600 :class:`~gatewayd.statefile.StateFile`, tagged
with endpoint, client id and username so that changing any of them invalidates it.

Secrets (client secret, password hash, access token) never go into log events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from gatewayd.clouds.auth.encodings import CONTENT_TYPE, BodyEncodings, Encoding, encode
from gatewayd.clouds.auth.tokens import TokenAuth
from gatewayd.clouds.http import HttpTransport, Response
from gatewayd.errors import CloudError, PermanentError, StorageError
from gatewayd.inventory.config import ThingPlusConfig
from gatewayd.statefile import StateFile

log = structlog.get_logger(__name__)

TOKEN_PATH = "/v2/oauth2/token"
#: A password-grant token lives 90 days (vendor guide); renew a day early so a slow clock cannot bite.
TOKEN_LIFETIME_S = 90 * 86400.0
TOKEN_RENEW_AFTER_S = 89 * 86400.0
#: Version of the token record layout in the token file.
TOKEN_RECORD_VERSION = 1
#: Token answers that mean "I did not understand that body": try the other encoding before giving up.
#: 401 is included because a server that does not parse JSON sees no client_id and refuses the client.
ENCODING_REFUSED = frozenset({400, 401, 415})

#: Maps a failed answer of Thing+ to its error: ``(status, response, operation)``.
ErrorMapper = Callable[[int, Response, str], CloudError]


@dataclass(frozen=True)
class Token:
    """An access token and when we got it; the token itself is kept out of ``repr``."""

    token_type: str
    access_token: str = field(repr=False)
    obtained_at: float

    def authorization(self) -> str:
        """The ``Authorization`` header value: token type and token separated by one space."""
        return f"{self.token_type} {self.access_token}"

    def expired(self, now: float) -> bool:
        """True once the token is old enough that we renew it rather than wait for a 401."""
        return token_expired(self.obtained_at, now)


def token_expired(obtained_at: float, now: float) -> bool:
    """Whether a token obtained at ``obtained_at`` (unix s) should be renewed at ``now``."""
    return now >= obtained_at + TOKEN_RENEW_AFTER_S


class ThingPlusPassword(TokenAuth[Token]):
    """The password grant as an auth flow: ``Authorization: <token_type> <access_token>``."""

    def __init__(
        self,
        transport: HttpTransport,
        config: ThingPlusConfig,
        error: ErrorMapper,
        *,
        store: StateFile | None,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(transport, clock)
        self._config = config
        self._error = error
        self._store = store
        self.encodings = BodyEncodings(transport.cloud, ENCODING_REFUSED)

    def headers(self, token: Token) -> dict[str, str]:
        return {"Authorization": token.authorization()}

    def stale(self, token: Token, now: float) -> bool:
        return token.expired(now)

    async def obtain(self, previous: Token | None) -> Token:
        if previous is not None and previous.expired(self.clock()):
            log.info(
                "thingplus.token_expiring", age_days=round((self.clock() - previous.obtained_at) / 86400)
            )
        token = await self.encodings.post(self._request)
        log.info("thingplus.token_obtained", encoding=self.encodings.current, token_type=token.token_type)
        self._save(token)
        return token

    async def _request(self, encoding: Encoding) -> Token:
        """One token request in one encoding."""
        client_id, client_secret, username = self._config.oauth_client()
        fields = {
            "grant_type": "password",
            "client_id": client_id,
            "client_secret": client_secret.reveal(),
            "username": username,
            "password": self._config.password_hash().reveal(),
        }
        resp = await self.transport.send(
            "POST",
            TOKEN_PATH,
            operation="token",
            headers={"Content-Type": CONTENT_TYPE[encoding]},
            body=encode(fields, encoding),
        )
        if not 200 <= resp.status < 300:
            raise self._error(resp.status, resp, "token")
        token = self._parse(resp.json())
        if token is None:
            raise PermanentError(
                "the token answer has no access_token",
                cloud=self.transport.cloud,
                operation="token",
                status=resp.status,
            )
        return token

    def _parse(self, payload: Any) -> Token | None:
        if (
            isinstance(payload, dict)
            and isinstance(payload.get("data"), dict)
            and "access_token" not in payload
        ):
            payload = payload["data"]  # tolerate an enveloped answer
        if not isinstance(payload, dict):
            return None
        access = payload.get("access_token")
        if not isinstance(access, str) or not access:
            return None
        token_type = payload.get("token_type")
        if not isinstance(token_type, str) or not token_type.strip():
            token_type = "Bearer"
        return Token(token_type=token_type.strip(), access_token=access, obtained_at=self.clock())

    # ---- the token file

    def restore(self) -> Token | None:
        """The token from the token file, when it was issued for this endpoint, client and user."""
        if self._store is None:
            return None
        try:
            record = self._store.load()
        except StorageError as exc:
            log.warning("thingplus.token_store_unusable", error=str(exc))
            return None
        if record is None:
            return None
        if any(record.get(key) != value for key, value in self._identity().items()):
            log.info("thingplus.token_stale", reason="endpoint, client or user changed")
            return None
        encoding = record.get("encoding")
        if encoding in CONTENT_TYPE:
            self.encodings.current = encoding
        access = record.get("access_token")
        token_type = record.get("token_type")
        obtained_at = record.get("obtained_at")
        if (
            not isinstance(access, str)
            or not access
            or not isinstance(token_type, str)
            or not token_type
            or not isinstance(obtained_at, (int, float))
            or isinstance(obtained_at, bool)
        ):
            log.warning("thingplus.token_stale", reason="incomplete token record")
            return None
        token = Token(token_type=token_type, access_token=access, obtained_at=float(obtained_at))
        log.info(
            "thingplus.token_loaded",
            age_days=round((self.clock() - token.obtained_at) / 86400, 1),
            expired=token.expired(self.clock()),
        )
        return token

    def _save(self, token: Token) -> None:
        """Keep the token for the next start; a state dir we cannot write costs a login, not the call."""
        if self._store is None:
            return
        record: dict[str, Any] = {
            **self._identity(),
            "token_type": token.token_type,
            "access_token": token.access_token,
            "obtained_at": token.obtained_at,
            "encoding": self.encodings.current,
        }
        try:
            self._store.save(record)
        except StorageError as exc:
            log.warning("thingplus.token_not_saved", error=str(exc))

    def _identity(self) -> dict[str, Any]:
        """What a stored token must match to be reused."""
        return {
            "version": TOKEN_RECORD_VERSION,
            "cloud": self.transport.cloud,
            "endpoint": self._config.endpoint,
            "client_id": self._config.client_id,
            "username": self._config.username,
        }
