"""RCMS (Robustel router management) open API: a pure request signer and a small polling client.

Why the signer is separate and pure: it is the part a vendor document pins down byte for byte, so it is
tested against hand-written strings with no clock, socket or randomness in the way. The client adds what
the document leaves out: the ``{"code", "msg", "data"}`` envelope (errors may come with HTTP 200),
retries with a fresh signature per attempt, and paging of status windows.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

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
from gatewayd.errors import PermanentError
from gatewayd.inventory.config import RcmsConfig

log = structlog.get_logger(__name__)

CLOUD = "rcms"
API_VERSION = "1.0"
SIGNATURE_VERSION = "1.0"

#: The parameters every request carries, in the query and (with ``signature``) as headers.
PUBLIC_PARAMS = ("apiVersion", "clientId", "signatureVersion", "timestamp", "uniqueCode")

#: A window that pages on past this is a cloud bug, not data: stop instead of looping forever.
MAX_PAGES = 10_000


# --------------------------------------------------------------------------------------------------
# Signing (pure)


@dataclass(frozen=True)
class SignedRequest:
    """What a signed request carries: the query string to send and the headers to add."""

    #: The canonical string, sent as the URL query exactly as signed (unencoded, as the document does).
    query: str
    #: The five public parameters plus ``signature``.
    headers: dict[str, str]
    signature: str


def canonical_query(query: Mapping[str, str | int], *, client_id: str, timestamp: str) -> str:
    """The five public parameters plus ``query``, sorted by key, ``k=v`` joined by ``&``, unencoded.

    A query key that repeats a public parameter is refused: the document would let it override the
    header value silently, and the server would then see two different timestamps.
    """
    clash = sorted(set(query) & set(PUBLIC_PARAMS))
    if clash:
        raise ValueError(f"query must not set the public parameters {clash}")
    params: dict[str, str | int] = {
        "apiVersion": API_VERSION,
        "clientId": client_id,
        "signatureVersion": SIGNATURE_VERSION,
        "timestamp": timestamp,
        "uniqueCode": client_id,
        **query,
    }
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()))


def sign_request(
    method: str,
    path: str,
    query: Mapping[str, str | int],
    *,
    client_id: str,
    client_secret: str,
    timestamp: str,
) -> SignedRequest:
    """Sign one request as the RCMS document does; the body of a PUT is not part of the signature.

    string to sign = METHOD + path + canonical query + client secret;
    signature = lowercase hex HMAC-SHA256 keyed with client id + uniqueCode (= client id twice).
    """
    canonical = canonical_query(query, client_id=client_id, timestamp=timestamp)
    to_sign = method.upper() + path + canonical + client_secret
    key = (client_id + client_id).encode("utf-8")
    signature = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest().lower()
    headers = {
        "apiVersion": API_VERSION,
        "signatureVersion": SIGNATURE_VERSION,
        "uniqueCode": client_id,
        "clientId": client_id,
        "timestamp": timestamp,
        "signature": signature,
    }
    return SignedRequest(query=canonical, headers=headers, signature=signature)


# --------------------------------------------------------------------------------------------------
# Client


class RcmsError(PermanentError):
    """RCMS answered with a ``code`` other than 0 (40001 missing, 40002 invalid/signature, 40004 business)."""


class RcmsClient:
    """The three RCMS calls gatewayd makes, over the daemon's shared session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        config: RcmsConfig,
        *,
        policy: RetryPolicy = RetryPolicy(),
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        observer: RequestObserver | None = None,
    ) -> None:
        self._transport = HttpTransport.for_cloud(session, config, CLOUD, policy, clock, observer)
        self._client_id = config.client_id
        self._secret = config.client_secret
        self._policy = policy
        self._clock = clock
        self._sleep = sleep

    async def device_total(self) -> dict[str, Any]:
        """Dashboard counts: deviceTotal, onlineTotal, offlineTotal, ..."""
        data = await self._call("GET", "/api/link/dashboard/deviceTotal", operation="device_total")
        if not isinstance(data, dict):
            raise self._unexpected("device_total", f"data is {type(data).__name__}, not an object")
        return data

    async def status_data(
        self, sn: str, begin_ms: int, end_ms: int, *, page_size: int = 100
    ) -> list[dict[str, Any]]:
        """Every status record of router ``sn`` in [begin_ms, end_ms], following pages until a short one.

        Each page is retried on its own, so a transient failure on page 3 does not refetch pages 1 and 2.
        """
        if page_size <= 0:
            raise ValueError("page_size must be positive")
        path = f"/api/link/device/devices/{_segment(sn)}/statusData"
        records: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            query = {"pageNum": page, "pageSize": page_size, "beginTime": begin_ms, "endTime": end_ms}
            data = await self._call("GET", path, operation="status_data", query=query)
            if data is None:
                data = []
            if not isinstance(data, list):
                raise self._unexpected("status_data", f"data is {type(data).__name__}, not a list")
            records.extend(data)
            if len(data) < page_size:
                return records
        raise self._unexpected("status_data", f"still full pages after {MAX_PAGES} pages")

    async def set_group(self, sn: str, group_name: str) -> Any:
        """Move router ``sn`` into the group ``group_name``; returns the envelope's ``data``."""
        body = json.dumps({"groupName": group_name}, ensure_ascii=False).encode("utf-8")
        return await self._call(
            "PUT", f"/api/link/devices/{_segment(sn)}/group", operation="set_group", body=body
        )

    async def _call(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        query: Mapping[str, str | int] | None = None,
        body: bytes | None = None,
    ) -> Any:
        """Sign, send and unwrap one call, retrying transient failures with a new signature each time."""

        async def attempt() -> Any:
            signed = sign_request(
                method,
                path,
                query or {},
                client_id=self._client_id,
                client_secret=self._secret.reveal(),
                timestamp=str(int(self._clock() * 1000)),
            )
            headers = dict(signed.headers)
            if body is not None:
                headers["Content-Type"] = "application/json"
            resp = await self._transport.send(
                method, path, operation=operation, query=signed.query, headers=headers, body=body
            )
            return self._unwrap(resp, operation)

        return await with_retries(attempt, self._policy, sleep=self._sleep)

    def _unwrap(self, resp: Response, operation: str) -> Any:
        """The envelope's ``data``, or the error the HTTP status or the envelope's ``code`` stands for."""
        payload = resp.json()
        envelope = payload if isinstance(payload, dict) else {}
        if not 200 <= resp.status < 300:
            message = str(envelope.get("msg") or resp.text[:200] or f"HTTP {resp.status}")
            raise error_for_status(
                resp.status,
                message,
                cloud=CLOUD,
                operation=operation,
                code=envelope.get("code"),
                retry_after=parse_retry_after(resp.headers.get("Retry-After"), self._clock()),
            )
        if payload is None:
            raise self._unexpected(operation, f"answered HTTP {resp.status} with a body that is not JSON")
        if "code" not in envelope:
            raise self._unexpected(operation, "answer has no 'code': not the RCMS envelope")
        code = envelope["code"]
        if code not in (0, "0"):
            raise RcmsError(
                str(envelope.get("msg") or "RCMS refused the request"),
                cloud=CLOUD,
                operation=operation,
                status=resp.status,
                code=code,
            )
        return envelope.get("data")

    @staticmethod
    def _unexpected(operation: str, message: str) -> PermanentError:
        return PermanentError(message, cloud=CLOUD, operation=operation)


def _segment(value: str) -> str:
    """One URL path segment: a serial number must not be able to add path levels."""
    if not value:
        raise ValueError("a device serial number must not be empty")
    return quote(value, safe="")
