"""loctube's three ways of proving who we are (``auth: signature | token | oauth2``), as auth flows.

* :class:`LoctubeSignature`: every request signed (``X-Client-Id``, ``X-Timestamp``, ``X-Sign``) by the
  pure signer of :mod:`~gatewayd.clouds.auth.loctubesign`, over exactly the bytes sent. Only answers to
  signed requests are signed (the real server signs no error and no token-authenticated answer), so a
  success without its signature is refused as tampered, and an error answer is taken as it is. A 400 or
  404 from the signature filter (a Spring-style body, written before any controller runs) says what is
  most likely wrong: the clock or the key (400), the client id (404).
* :class:`LoctubeApiToken`: ``POST /api/v1/token`` (itself signed, its answer verified), then
  ``X-Access-Token``; expiry is sliding, so what matters is the time since the token was last used.
* :class:`LoctubeOAuth2`: client credentials with refresh, ``Authorization: Bearer``; JSON as the document
  shows, the form if refused. hsweb answers a refused token request with HTTP 500 and its own body: that
  is an AuthError saying why, not a server error to retry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from gatewayd.clouds.auth import Signing
from gatewayd.clouds.auth.encodings import CONTENT_TYPE, BodyEncodings, Encoding, encode
from gatewayd.clouds.auth.loctubesign import sign_body, sign_query, split_query, verify_response
from gatewayd.clouds.auth.tokens import TokenAuth
from gatewayd.clouds.http import HttpTransport, Response
from gatewayd.clouds.jsonbody import dumps
from gatewayd.clouds.request import Grant, Request
from gatewayd.errors import AuthError, CloudError, PermanentError, TamperedError
from gatewayd.inventory.config import LoctubeConfig

log = structlog.get_logger(__name__)

CLOUD = "loctube"
TOKEN_PATH = "/api/v1/token"
OAUTH2_PATH = "/loctube/oauth2/token"
#: Renew a token once this fraction of its lifetime has passed (idle time for sliding tokens).
RENEW_FRACTION = 0.9
#: Lifetime assumed for an OAuth2 answer without ``expires_in`` (the platform's default).
DEFAULT_OAUTH2_EXPIRES = 7200
#: OAuth2 token answers that mean "not in this encoding" (stock JetLinks: 415 for JSON).
OAUTH2_ENCODING_REFUSED = frozenset({400, 415})
#: What a signature-filter refusal most likely means, by status (JetLinks' open-API filter).
FILTER_HINTS = {
    400: "the signature filter refused the request: check the clock (a timestamp over 5 minutes old is "
    "refused), loctube.secure_key and loctube.sign",
    404: "the signature filter does not know this client: check loctube.client_id",
}

#: The loctube envelope's ``result`` of an answer, or the error it stands for: ``(response, operation)``.
Envelope = Callable[[Response, str], Any]


class LoctubeSignature(Signing):
    """``auth: signature``: each attempt signed anew, each answer checked."""

    def __init__(self, config: LoctubeConfig, clock: Callable[[], float]) -> None:
        self._config = config
        self._clock = clock

    async def authorize(self, request: Request) -> Grant:
        return Grant(self.headers(request.query, request.body))

    def headers(self, query: str, body: bytes | None) -> dict[str, str]:
        """The signature headers of a request with this encoded ``query`` or these ``body`` bytes."""
        timestamp = str(int(self._clock() * 1000))
        key = self._config.secure_key.reveal()
        if body is not None:
            sign = sign_body(body, timestamp, key, self._config.sign)
        else:
            sign = sign_query(split_query(query), timestamp, key, self._config.sign)
        return {"X-Client-Id": self._config.client_id, "X-Timestamp": timestamp, "X-Sign": sign}

    def verify(self, grant: Grant, response: Response, operation: str) -> None:
        """Fail closed on a success: it must carry a signature over its exact body, or it is not used."""
        sign = response.headers.get("X-Sign")
        status = response.status
        if 200 <= status < 300 and (sign is None or "X-Timestamp" not in response.headers):
            raise TamperedError(
                "answer to a signed request carries no X-Sign/X-Timestamp: refused, not used",
                cloud=CLOUD,
                operation=operation,
                status=status,
            )
        key = self._config.secure_key.reveal()
        if sign is not None and not verify_response(
            response.body, response.headers.get("X-Timestamp", ""), sign, key, self._config.sign
        ):
            if status in (400, 401, 403):
                # A refusal signed with another key: far more likely our secure_key or sign is wrong
                # than a forged error page. Say so, as an auth problem.
                raise AuthError(
                    "request refused, and the answer's X-Sign does not verify with our key: "
                    "check loctube.secure_key and loctube.sign",
                    cloud=CLOUD,
                    operation=operation,
                    status=status,
                )
            raise TamperedError(
                "answer's X-Sign does not match its body", cloud=CLOUD, operation=operation, status=status
            )
        if status in FILTER_HINTS:
            body = response.json()
            if isinstance(body, dict) and "result" not in body and "code" not in body:
                said = body.get("message") or body.get("error") or f"HTTP {status}"
                raise AuthError(
                    f"{said}: {FILTER_HINTS[status]}",
                    cloud=CLOUD,
                    operation=operation,
                    status=status,
                    code=body.get("error") if isinstance(body.get("error"), str) else None,
                )


class LoctubeApiToken(TokenAuth[str]):
    """``auth: token``: a token from ``/api/v1/token``, kept while it is used."""

    def __init__(
        self,
        transport: HttpTransport,
        signature: LoctubeSignature,
        envelope: Envelope,
        *,
        expires: int,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(transport, clock)
        self._signature = signature
        self._envelope = envelope
        self._expires = expires
        self._last_used = 0.0

    def headers(self, token: str) -> dict[str, str]:
        return {"X-Access-Token": token}

    def stale(self, token: str, now: float) -> bool:
        return now - self._last_used >= RENEW_FRACTION * self._expires

    def answered(self, grant: Grant, response: Response, started: float) -> None:
        if response.status != 401:
            self._last_used = max(self._last_used, started)

    async def obtain(self, previous: str | None) -> str:
        """``POST /api/v1/token``, signed; the body is serialised once and those bytes signed and sent."""
        body = dumps({"expires": self._expires})
        headers = {**self._signature.headers("", body), "Content-Type": "application/json"}
        started = self.clock()
        resp = await self.transport.send("POST", TOKEN_PATH, operation="token", headers=headers, body=body)
        self._signature.verify(Grant(headers), resp, "token")
        token = self._envelope(resp, "token")
        if not isinstance(token, str) or not token:
            raise PermanentError("token answer has no token in 'result'", cloud=CLOUD, operation="token")
        self._last_used = started
        return token


class LoctubeOAuth2(TokenAuth[str]):
    """``auth: oauth2``: client credentials, refreshed before expiry; if refreshing fails, start over."""

    def __init__(
        self,
        transport: HttpTransport,
        config: LoctubeConfig,
        error: Callable[[Response, str], CloudError],
        *,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(transport, clock)
        self._config = config
        self._error = error
        self._refresh: str | None = None
        self._renew_at = 0.0
        self.encodings = BodyEncodings(CLOUD, OAUTH2_ENCODING_REFUSED)

    def headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def stale(self, token: str, now: float) -> bool:
        return now >= self._renew_at

    async def obtain(self, previous: str | None) -> str:
        credentials = {"client_id": self._config.client_id, "client_secret": self._config.secure_key.reveal()}
        started = self.clock()
        answer: dict[str, Any] | None = None
        if self._refresh:
            fields = {"grant_type": "refresh_token", "refresh_token": self._refresh, **credentials}
            try:
                answer = await self.encodings.post(lambda encoding: self._token_request(fields, encoding))
            except (AuthError, PermanentError) as exc:
                log.info("loctube.oauth2_refresh_refused", error=exc.message, code=exc.code)
        if answer is None:
            fields = {"grant_type": "client_credentials", **credentials}
            answer = await self.encodings.post(lambda encoding: self._token_request(fields, encoding))
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise PermanentError("token answer has no access_token", cloud=CLOUD, operation="oauth2_token")
        refresh = answer.get("refresh_token")
        self._refresh = refresh if isinstance(refresh, str) and refresh else None
        expires = answer.get("expires_in")
        lifetime = expires if isinstance(expires, (int, float)) and expires > 0 else DEFAULT_OAUTH2_EXPIRES
        self._renew_at = started + RENEW_FRACTION * lifetime
        return token

    async def _token_request(self, fields: dict[str, str], encoding: Encoding) -> dict[str, Any]:
        """One token request in one encoding: the OAuth2 answer (a JetLinks envelope around it tolerated)."""
        resp = await self.transport.send(
            "POST",
            OAUTH2_PATH,
            operation="oauth2_token",
            headers={"Content-Type": CONTENT_TYPE[encoding]},
            body=encode(fields, encoding),
        )
        payload = resp.json()
        if resp.status >= 500 and isinstance(payload, dict) and payload.get("message"):
            raise _hsweb_refusal(resp.status, payload, fields["grant_type"])
        if not 200 <= resp.status < 300:
            raise self._error(resp, "oauth2_token")
        if not isinstance(payload, dict):
            raise PermanentError("token answer is not a JSON object", cloud=CLOUD, operation="oauth2_token")
        inner = payload.get("result")
        return inner if "access_token" not in payload and isinstance(inner, dict) else payload


def _hsweb_refusal(status: int, body: dict[str, Any], grant: str) -> AuthError:
    """hsweb's OAuth2 endpoint answers every refusal (unknown client, bad secret, unsupported grant,
    expired refresh token) with HTTP 500 and ``{"status", "code", "message"}``: an auth failure, which
    retrying cannot fix, named as such."""
    hint = (
        "the refresh token is no longer valid"
        if grant == "refresh_token"
        else ("check loctube.client_id and loctube.secure_key")
    )
    code = body.get("code")
    return AuthError(
        f"OAuth2 token request refused ({grant}): {body['message']}; {hint}",
        cloud=CLOUD,
        operation="oauth2_token",
        status=status,
        code=code if isinstance(code, (str, int)) and not isinstance(code, bool) else body.get("status"),
    )
