"""loctube (a JetLinks-based tracker platform) open API: pure signer, response verifier, and client.

Why the signer is pure: the document's vectors pin it byte for byte, and a signer that reads no clock and
touches no socket can be checked against them directly. The client adds the three ways of proving who we
are (``auth: signature | token | oauth2``), the token lifecycles, and the checks on signed answers.

Signing is a plain digest (md5 or sha256), not an HMAC:
    GET/DELETE: digest(sorted ``k=v`` joined by ``&`` (repeated keys' values joined by ``,``) + ts + key)
    POST/PUT:   digest(the body bytes exactly as sent + ts + key)
    answers:    digest(body + X-Timestamp + key), compared with X-Sign ignoring case; a success
                answering a signed request must carry both headers (fail closed)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Union
from urllib.parse import quote, unquote_plus, urlencode

import aiohttp
import structlog

from gatewayd.clouds.http import (
    HttpTransport,
    RequestObserver,
    Response,
    RetryPolicy,
    error_for_status,
    parse_retry_after,
    with_retries,
)
from gatewayd.errors import AuthError, PermanentError, TamperedError
from gatewayd.inventory.config import LoctubeConfig
from gatewayd.secret import Secret

log = structlog.get_logger(__name__)

CLOUD = "loctube"
ALGORITHMS = ("md5", "sha256")

#: Renew a token once this fraction of its lifetime has passed (idle time for sliding tokens).
RENEW_FRACTION = 0.9

#: Lifetime assumed for an OAuth2 answer without ``expires_in`` (the platform's default).
DEFAULT_OAUTH2_EXPIRES = 7200

Query = Union[Sequence[tuple[str, str]], Mapping[str, Union[str, Sequence[str]]]]


# --------------------------------------------------------------------------------------------------
# Signing (pure)


def canonical_query(query: Query) -> str:
    """The string the document's Java signs for a GET/DELETE query.

    ``query`` is given as it goes on the wire (URL-encoded); keys and values are URL-decoded first, as
    the server sees them. Keys sorted as Java's ``TreeMap`` does, values of a repeated key joined by ``,``
    in the order given.
    """
    grouped: dict[str, list[str]] = {}
    items: Sequence[tuple[str, str | Sequence[str]]] = (
        list(query.items()) if isinstance(query, Mapping) else list(query)
    )
    for key, value in items:
        values = [value] if isinstance(value, str) else list(value)
        grouped.setdefault(unquote_plus(key), []).extend(unquote_plus(v) for v in values)
    # Java's String.compareTo orders by UTF-16 code unit; big-endian UTF-16 bytes sort the same way.
    keys = sorted(grouped, key=lambda k: k.encode("utf-16-be"))
    return "&".join(f"{k}={','.join(grouped[k])}" for k in keys)


def _digest(parts: Sequence[bytes], algorithm: str) -> str:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown signature algorithm {algorithm!r}: expected one of {ALGORITHMS}")
    h = hashlib.new(algorithm)
    for part in parts:
        h.update(part)
    return h.hexdigest()


def sign_query(query: Query, timestamp: str, secure_key: str, algorithm: str) -> str:
    """X-Sign of a GET/DELETE request: digest(canonical query + timestamp + secure key), lowercase hex."""
    return _digest(
        [canonical_query(query).encode("utf-8"), timestamp.encode("utf-8"), secure_key.encode("utf-8")],
        algorithm,
    )


def sign_body(body: bytes, timestamp: str, secure_key: str, algorithm: str) -> str:
    """X-Sign of a POST/PUT request: digest(the exact body bytes sent + timestamp + secure key)."""
    return _digest([body, timestamp.encode("utf-8"), secure_key.encode("utf-8")], algorithm)


def verify_response(body: bytes, timestamp: str, sign: str, secure_key: str, algorithm: str) -> bool:
    """Whether an answer's X-Sign covers its exact body bytes and X-Timestamp; case is ignored."""
    return sign_body(body, timestamp, secure_key, algorithm) == sign.strip().lower()


def split_query(query: str) -> list[tuple[str, str]]:
    """An encoded query string as (key, value) pairs, still encoded: what :func:`sign_query` expects."""
    pairs = []
    for part in query.split("&"):
        if part:
            key, _, value = part.partition("=")
            pairs.append((key, value))
    return pairs


# --------------------------------------------------------------------------------------------------
# Tokens


class _Token:
    """A credential obtained from the cloud, kept, and renewed before it lapses or when refused.

    One lock, so that concurrent calls wait for a single renewal instead of each starting their own.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = asyncio.Lock()
        self.value: str | None = None

    async def get(self) -> str:
        async with self._lock:
            if self.value is None or self._stale(self._clock()):
                self.value = await self._obtain()
            return self.value

    def refused(self, value: str) -> None:
        """The cloud said 401 to ``value``: forget it, unless a concurrent call has already renewed it."""
        if self.value == value:
            self.value = None

    def used(self, at: float) -> None:
        """A request carrying the token got an answer at ``at``."""

    def headers(self, value: str) -> dict[str, str]:
        raise NotImplementedError

    def _stale(self, now: float) -> bool:
        raise NotImplementedError

    async def _obtain(self) -> str:
        raise NotImplementedError


class _ApiToken(_Token):
    """``/api/v1/token`` (auth: token): expiry is sliding, so what matters is the time since last use."""

    def __init__(self, clock: Callable[[], float], expires: int, fetch: Callable[[], Awaitable[str]]) -> None:
        super().__init__(clock)
        self._expires = expires
        self._fetch = fetch
        self._last_used = 0.0

    def headers(self, value: str) -> dict[str, str]:
        return {"X-Access-Token": value}

    def used(self, at: float) -> None:
        self._last_used = max(self._last_used, at)

    def _stale(self, now: float) -> bool:
        return now - self._last_used >= RENEW_FRACTION * self._expires

    async def _obtain(self) -> str:
        started = self._clock()
        token = await self._fetch()
        self._last_used = started
        return token


class _OAuth2Token(_Token):
    """OAuth2 client credentials with refresh: refresh before expiry; if refreshing fails, start over."""

    def __init__(
        self,
        clock: Callable[[], float],
        grant: Callable[[dict[str, str]], Awaitable[dict[str, Any]]],
        client_id: str,
        client_secret: Secret,
    ) -> None:
        super().__init__(clock)
        self._grant = grant
        self._client_id = client_id
        self._client_secret = client_secret
        self._refresh: str | None = None
        self._renew_at = 0.0

    def headers(self, value: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {value}"}

    def _stale(self, now: float) -> bool:
        return now >= self._renew_at

    async def _obtain(self) -> str:
        credentials = {"client_id": self._client_id, "client_secret": self._client_secret.reveal()}
        started = self._clock()
        answer: dict[str, Any] | None = None
        if self._refresh:
            try:
                answer = await self._grant(
                    {"grant_type": "refresh_token", "refresh_token": self._refresh, **credentials}
                )
            except (AuthError, PermanentError) as exc:
                log.info("oauth2 refresh refused; asking for new client credentials", error=exc.message)
        if answer is None:
            answer = await self._grant({"grant_type": "client_credentials", **credentials})
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise PermanentError("token answer has no access_token", cloud=CLOUD, operation="oauth2_token")
        refresh = answer.get("refresh_token")
        self._refresh = refresh if isinstance(refresh, str) and refresh else None
        expires = answer.get("expires_in")
        lifetime = expires if isinstance(expires, (int, float)) and expires > 0 else DEFAULT_OAUTH2_EXPIRES
        self._renew_at = started + RENEW_FRACTION * lifetime
        return token


# --------------------------------------------------------------------------------------------------
# Client


class LoctubeClient:
    """The loctube calls gatewayd makes, over the daemon's shared session, in any of the three auth modes."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        config: LoctubeConfig,
        *,
        policy: RetryPolicy = RetryPolicy(),
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        observer: RequestObserver | None = None,
    ) -> None:
        self._transport = HttpTransport.for_cloud(session, config, CLOUD, policy, clock, observer)
        self._config = config
        self._policy = policy
        self._clock = clock
        self._sleep = sleep
        #: Which encoding the OAuth2 token endpoint accepted ("json" or "form"); None until one did.
        self._oauth2_encoding: str | None = None
        self._token: _Token | None = None
        if config.auth == "token":
            self._token = _ApiToken(clock, config.token_expires, self._fetch_api_token)
        elif config.auth == "oauth2":
            self._token = _OAuth2Token(clock, self._oauth2_grant, config.client_id, config.secure_key)

    # ---- public calls

    async def device_detail(self, device_id: str) -> dict[str, Any]:
        """One device's details (state, online/offline times, configuration, ...)."""
        if not device_id:
            raise ValueError("a device id must not be empty")
        path = f"/api/v1/device/{quote(device_id, safe='')}/_detail"
        result = await self._call("GET", path, operation="device_detail")
        return self._object(result, "device_detail")

    async def query_devices(
        self, *, terms: list[Any] | None = None, page_index: int = 0, page_size: int = 50
    ) -> dict[str, Any]:
        """One page of devices: ``{pageIndex, pageSize, total, data}``."""
        body = _json_bytes({"pageIndex": page_index, "pageSize": page_size, "terms": terms or []})
        result = await self._call("POST", "/api/v1/device/_query", operation="query_devices", body=body)
        return self._object(result, "query_devices")

    async def access_token(self) -> str:
        """The current token (obtained if needed) in token and oauth2 modes; signature mode has none."""
        token = self._token
        if token is None:
            raise PermanentError(
                "auth is 'signature': requests are signed one by one, there is no token",
                cloud=CLOUD,
                operation="access_token",
            )
        return await with_retries(token.get, self._policy, sleep=self._sleep)

    # ---- one call: auth, send, check, unwrap

    async def _call(
        self, method: str, path: str, *, operation: str, query: str = "", body: bytes | None = None
    ) -> Any:
        """One API call, retrying transient failures; a refused token is renewed once and the call retried."""

        async def attempt() -> Any:
            for retry in (False, True):
                try:
                    return await self._once(method, path, operation=operation, query=query, body=body)
                except _TokenRefused as refused:
                    if retry or self._token is None:
                        raise refused.error from None
                    self._token.refused(refused.token)
                    log.info("token refused; renewing once", cloud=CLOUD, operation=operation)
            raise AssertionError("unreachable")

        return await with_retries(attempt, self._policy, sleep=self._sleep)

    async def _once(self, method: str, path: str, *, operation: str, query: str, body: bytes | None) -> Any:
        """One attempt: credentials, send, checks; a 401 to a token becomes ``_TokenRefused``."""
        auth = self._token
        token = await auth.get() if auth is not None else None
        if auth is not None and token is not None:
            headers = auth.headers(token)
        else:
            headers = self._signature_headers(query, body)
        if body is not None:
            headers["Content-Type"] = "application/json"
        started = self._clock()
        resp = await self._transport.send(
            method, path, operation=operation, query=query, headers=headers, body=body
        )
        if auth is not None and resp.status != 401:
            auth.used(started)
        try:
            return self._result(resp, operation, signed=token is None)
        except AuthError as exc:
            if token is not None and exc.status == 401:
                raise _TokenRefused(token, exc) from None
            raise

    def _signature_headers(self, query: str, body: bytes | None) -> dict[str, str]:
        timestamp = str(int(self._clock() * 1000))
        key = self._config.secure_key.reveal()
        if body is not None:
            sign = sign_body(body, timestamp, key, self._config.sign)
        else:
            sign = sign_query(split_query(query), timestamp, key, self._config.sign)
        return {"X-Client-Id": self._config.client_id, "X-Timestamp": timestamp, "X-Sign": sign}

    def _checked(self, resp: Response, operation: str, *, signed: bool) -> Response:
        """``resp`` if its signature verifies and its status is a success; else raise.

        Fail closed: the answer to a ``signed`` request is signed (only answers to signed requests are,
        and errors may not be), so a success without ``X-Sign``/``X-Timestamp`` is refused as
        tampered, never used as data. An error answer without them is an error anyway.
        """
        sign = resp.headers.get("X-Sign")
        if signed and 200 <= resp.status < 300 and (sign is None or "X-Timestamp" not in resp.headers):
            raise TamperedError(
                "answer to a signed request carries no X-Sign/X-Timestamp: refused, not used",
                cloud=CLOUD,
                operation=operation,
                status=resp.status,
            )
        if sign is not None:
            timestamp = resp.headers.get("X-Timestamp", "")
            if not verify_response(
                resp.body, timestamp, sign, self._config.secure_key.reveal(), self._config.sign
            ):
                if resp.status in (400, 401, 403):
                    # A refusal signed with another key: far more likely our secure_key or sign is
                    # wrong than a forged error page. Say so, as an auth problem.
                    raise AuthError(
                        "request refused, and the answer's X-Sign does not verify with our key: "
                        "check loctube.secure_key and loctube.sign",
                        cloud=CLOUD,
                        operation=operation,
                        status=resp.status,
                    )
                raise TamperedError(
                    "answer's X-Sign does not match its body",
                    cloud=CLOUD,
                    operation=operation,
                    status=resp.status,
                )
        if not 200 <= resp.status < 300:
            raise self._failure(resp.status, resp.json(), resp, operation)
        return resp

    def _result(self, resp: Response, operation: str, *, signed: bool) -> Any:
        """The ``result`` of a ``{"status": 200, "result": ...}`` answer, after every check."""
        payload = self._checked(resp, operation, signed=signed).json()
        if not isinstance(payload, dict):
            raise PermanentError(
                f"answered HTTP {resp.status} with a body that is not a JSON object",
                cloud=CLOUD,
                operation=operation,
            )
        status = payload.get("status", resp.status)
        if isinstance(status, int) and not 200 <= status < 300:
            raise self._failure(status, payload, resp, operation)
        return payload.get("result")

    def _failure(self, status: int, payload: Any, resp: Response, operation: str) -> Exception:
        """The error for a failed answer, with the body's code and message (Spring or JetLinks style)."""
        body = payload if isinstance(payload, dict) else {}
        message = next(
            (str(body[k]) for k in ("message", "error_description", "error") if body.get(k)),
            resp.text[:200] or f"HTTP {status}",
        )
        return error_for_status(
            status,
            message,
            cloud=CLOUD,
            operation=operation,
            code=body.get("code") or body.get("error"),
            retry_after=parse_retry_after(resp.headers.get("Retry-After"), self._clock()),
        )

    @staticmethod
    def _object(result: Any, operation: str) -> dict[str, Any]:
        if not isinstance(result, dict):
            raise PermanentError(
                f"result is {type(result).__name__}, not an object", cloud=CLOUD, operation=operation
            )
        return result

    # ---- obtaining tokens

    async def _fetch_api_token(self) -> str:
        """``POST /api/v1/token``, signed; the body is serialised once and those bytes signed and sent."""
        body = _json_bytes({"expires": self._config.token_expires})
        headers = self._signature_headers("", body)
        headers["Content-Type"] = "application/json"
        resp = await self._transport.send(
            "POST", "/api/v1/token", operation="token", headers=headers, body=body
        )
        token = self._result(resp, "token", signed=True)
        if not isinstance(token, str) or not token:
            raise PermanentError("token answer has no token in 'result'", cloud=CLOUD, operation="token")
        return token

    async def _oauth2_grant(self, fields: dict[str, str]) -> dict[str, Any]:
        """``POST /loctube/oauth2/token``: JSON as the document shows, form-encoded if JSON is refused.

        Stock JetLinks takes only the form; whichever encoding worked first is used from then on.
        """
        encodings = [self._oauth2_encoding] if self._oauth2_encoding else ["json", "form"]
        for i, encoding in enumerate(encodings):
            if encoding == "json":
                body, content_type = _json_bytes(fields), "application/json"
            else:
                body, content_type = urlencode(fields).encode("ascii"), "application/x-www-form-urlencoded"
            resp = await self._transport.send(
                "POST",
                "/loctube/oauth2/token",
                operation="oauth2_token",
                headers={"Content-Type": content_type},
                body=body,
            )
            if resp.status in (400, 415) and i + 1 < len(encodings):
                log.info("oauth2 token endpoint refused JSON; trying form encoding", status=resp.status)
                continue
            payload = self._checked(resp, "oauth2_token", signed=False).json()
            if not isinstance(payload, dict):
                raise PermanentError(
                    "token answer is not a JSON object", cloud=CLOUD, operation="oauth2_token"
                )
            self._oauth2_encoding = encoding
            # Tolerate a JetLinks envelope around the OAuth2 answer.
            inner = payload.get("result")
            return inner if "access_token" not in payload and isinstance(inner, dict) else payload
        raise AssertionError("unreachable")


class _TokenRefused(Exception):
    """Internal: a 401 for the token ``token``; carries the AuthError to raise if renewing does not help."""

    def __init__(self, token: str, error: AuthError) -> None:
        super().__init__(error.message)
        self.token = token
        self.error = error


def _json_bytes(value: Any) -> bytes:
    """Serialise once, compactly; these exact bytes are what is signed and what is sent."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
