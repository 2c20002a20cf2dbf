"""The emulated loctube OAuth2 token endpoint, as hsweb 4.0.x's ``OAuth2AuthorizeController`` answers.

``POST /loctube/oauth2/token`` takes the parameters form-encoded (stock hsweb) or as a JSON object
(the vendor's document); the ``oauth2_form_only`` fault makes it refuse JSON with 415, as a stock
server does. ``GET /loctube/oauth2/token?grant_type=...`` takes them in the query. A repeated
parameter counts by its first value. Client credentials come as ``client_id``/``client_secret``
parameters only (hsweb reads no Basic header).

Checks in hsweb's order, each failure HTTP 500 with an hsweb body whose ``status`` is the error's
number: grant type (4013 ``UNSUPPORTED_GRANT_TYPE``; on GET a missing or unknown one is a 400
``illegal_argument`` from parameter binding), client (1003 ``ILLEGAL_CLIENT_ID``), secret (1004
``ILLEGAL_CLIENT_SECRET``), then the grant: ``refresh_token`` missing 1008, unknown or expired 4020
``EXPIRED_REFRESH_TOKEN``; ``authorization_code`` needs a code from the interactive login, which the
emulator never gives, so 1001 ``ILLEGAL_CODE``.

``client_credentials`` is a per-client singleton: while its access token lives, every request gets
that same token and refresh token, ``expires_in`` being what is left of it. ``refresh_token`` gives a
new access token, keeps the refresh token and starts its 30 days again; the old access token lives
out its own 7200 s. Access tokens do not slide.

``Authorization`` is parsed as hsweb does: split on single spaces, ``bearer <token>`` (any case) is the
token, anything else (``Bearer  x`` with two spaces too) is taken whole as the token, so it fails.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from gatewayd.emulator.loctube.bodies import (
    Rejected,
    illegal_argument,
    json_object,
    unsupported_media_type,
)
from gatewayd.emulator.loctube.signature import FORM, form_pairs
from gatewayd.emulator.loctube.tokens import TokenStore

ACCESS_EXPIRES = 7200
REFRESH_EXPIRES = 30 * 86400
GRANTS: tuple[str, ...] = ("authorization_code", "client_credentials", "refresh_token")

#: hsweb's OAuth2 ErrorType numbers for the failures the token endpoint gives.
ERROR_NUMBERS = {
    "ILLEGAL_CODE": 1001,
    "ILLEGAL_CLIENT_ID": 1003,
    "ILLEGAL_CLIENT_SECRET": 1004,
    "ILLEGAL_REFRESH_TOKEN": 1008,
    "UNSUPPORTED_GRANT_TYPE": 4013,
    "EXPIRED_REFRESH_TOKEN": 4020,
}


def oauth2_error(name: str) -> Rejected:
    """An hsweb ``OAuth2Exception``: HTTP 500, body status its number, code its name."""
    return Rejected(500, f"oauth2_{name.lower()}", name.lower(), code=name, body_status=ERROR_NUMBERS[name])


def bearer_token(header: str) -> str:
    """The token hsweb reads from an ``Authorization`` header (Java's ``split("[ ]")``)."""
    parts = header.split(" ")
    while parts and not parts[-1]:
        parts.pop()  # Java's split drops trailing empty strings
    if len(parts) == 2 and parts[0].lower() == "bearer":
        return parts[1]
    return header


def first_values(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in pairs:
        params.setdefault(key, value)
    return params


def post_params(content_type: str, raw: bytes, *, form_only: bool) -> dict[str, str]:
    """The parameters of a POSTed token request, form-encoded or (unless ``form_only``) JSON."""
    if content_type == FORM:
        return first_values(form_pairs(raw))
    if form_only:
        raise unsupported_media_type(content_type)
    return {str(k): _text(v) for k, v in json_object(raw, required=False).items() if v is not None}


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)  # numbers and booleans as their JSON text, as a form would carry them


def get_params(query: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The parameters of ``GET /loctube/oauth2/token``; a missing or unknown grant type fails binding."""
    params = first_values(query)
    grant = params.get("grant_type")
    if grant is None:
        raise illegal_argument("Required GrantType parameter 'grant_type' is not present")
    if grant not in GRANTS:
        raise illegal_argument(f"Type mismatch: no GrantType {grant!r}")
    return params


class OAuth2Server:
    """Grants tokens to the one configured client."""

    def __init__(self, client_id: str, secret: str, store: TokenStore, clock: Callable[[], float]) -> None:
        self._client_id = client_id
        self._secret = secret
        self._store = store
        self._clock = clock
        #: The client_credentials singleton: the access token handed out while it lives.
        self._singleton: str | None = None

    def grant(self, params: Mapping[str, str]) -> dict[str, Any]:
        grant = params.get("grant_type", "")
        if grant not in GRANTS:
            raise oauth2_error("UNSUPPORTED_GRANT_TYPE")
        if not _same(params.get("client_id", ""), self._client_id):
            raise oauth2_error("ILLEGAL_CLIENT_ID")
        if not params.get("client_secret") or not _same(params["client_secret"], self._secret):
            raise oauth2_error("ILLEGAL_CLIENT_SECRET")
        if grant == "client_credentials":
            return self._client_credentials()
        if grant == "refresh_token":
            return self._refresh(params.get("refresh_token", ""))
        raise oauth2_error("ILLEGAL_CODE")

    def _client_credentials(self) -> dict[str, Any]:
        now = self._clock()
        current = self._store.get(self._singleton) if self._singleton else None
        if current is not None and self._singleton and not current.expired(now) and current.refresh:
            return _answer(self._singleton, current.refresh, current.remaining(now))
        refresh = self._store.new("oauth2-refresh", self._client_id, REFRESH_EXPIRES, sliding=False)
        self._singleton = self._access(refresh)
        return _answer(self._singleton, refresh, ACCESS_EXPIRES)

    def _refresh(self, value: str) -> dict[str, Any]:
        if not value:
            raise oauth2_error("ILLEGAL_REFRESH_TOKEN")
        now = self._clock()
        refresh = self._store.get(value)
        if refresh is None or refresh.kind != "oauth2-refresh" or refresh.expired(now):
            raise oauth2_error("EXPIRED_REFRESH_TOKEN")
        if refresh.client_id != self._client_id:
            raise oauth2_error("ILLEGAL_CLIENT_ID")
        refresh.last_used = now  # stored again with a fresh 30 days
        self._singleton = self._access(value)
        return _answer(self._singleton, value, ACCESS_EXPIRES)

    def _access(self, refresh: str) -> str:
        value = self._store.new("oauth2-access", self._client_id, ACCESS_EXPIRES, sliding=False)
        token = self._store.get(value)
        assert token is not None
        token.refresh = refresh
        return value


def _answer(access: str, refresh: str, expires_in: int) -> dict[str, Any]:
    return {"access_token": access, "refresh_token": refresh, "expires_in": expires_in}


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
