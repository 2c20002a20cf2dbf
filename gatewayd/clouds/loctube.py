"""loctube (a JetLinks-based tracker platform) open API: the calls gatewayd makes, and its envelope.

How we prove who we are is :mod:`gatewayd.clouds.auth.loctube` (``auth: signature | token | oauth2``, with
the pure signer in :mod:`~gatewayd.clouds.auth.loctubesign`); retries and "401 → renew once" are the client
core's. What stays here: the endpoints, and the tolerant reading of JetLinks answers — successes as
``{"status": 200, "result": ...}``, failures as a controller's ``{"status", "code", "message"}`` or a
Spring-style ``{"status", "error", "message"}``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import aiohttp

from gatewayd.clouds.auth import Auth
from gatewayd.clouds.auth.loctube import LoctubeApiToken, LoctubeOAuth2, LoctubeSignature
from gatewayd.clouds.auth.tokens import TokenAuth
from gatewayd.clouds.core import CloudCore
from gatewayd.clouds.http import HttpTransport, RequestObserver, Response
from gatewayd.clouds.jsonbody import dumps
from gatewayd.clouds.request import Request
from gatewayd.clouds.retry import RetryPolicy
from gatewayd.errors import CloudError, PermanentError
from gatewayd.inventory.config import LoctubeConfig

CLOUD = "loctube"


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
        transport = HttpTransport.for_cloud(session, config, CLOUD, policy, clock, observer)
        signature = LoctubeSignature(config, clock)
        auth: Auth = signature
        self._tokens: TokenAuth[str] | None = None
        if config.auth == "token":
            self._tokens = LoctubeApiToken(
                transport, signature, self._result, expires=config.token_expires, clock=clock
            )
        elif config.auth == "oauth2":
            self._tokens = LoctubeOAuth2(transport, config, self._error, clock=clock)
        if self._tokens is not None:
            auth = self._tokens
        self._core = CloudCore(transport, auth, self._parse, policy=policy, sleep=sleep, clock=clock)

    async def device_detail(self, device_id: str) -> dict[str, Any]:
        """One device's details (state, online/offline times, configuration, ...)."""
        if not device_id:
            raise ValueError("a device id must not be empty")
        path = f"/api/v1/device/{quote(device_id, safe='')}/_detail"
        return _object(await self._core.call(Request("GET", path, "device_detail")), "device_detail")

    async def query_devices(
        self, *, terms: list[Any] | None = None, page_index: int = 0, page_size: int = 50
    ) -> dict[str, Any]:
        """One page of devices: ``{pageIndex, pageSize, total, data}``."""
        body = dumps({"pageIndex": page_index, "pageSize": page_size, "terms": terms or []})
        result = await self._core.call(Request("POST", "/api/v1/device/_query", "query_devices", body=body))
        return _object(result, "query_devices")

    async def access_token(self) -> str:
        """The current token (obtained if needed) in token and oauth2 modes; signature mode has none."""
        if self._tokens is None:
            raise PermanentError(
                "auth is 'signature': requests are signed one by one, there is no token",
                cloud=CLOUD,
                operation="access_token",
            )
        return await self._core.retrying(self._tokens.token)

    # ---- the envelope

    def _parse(self, resp: Response, request: Request) -> Any:
        return self._result(resp, request.operation)

    def _result(self, resp: Response, operation: str) -> Any:
        """The ``result`` of a ``{"status": 200, "result": ...}`` answer, or the error it stands for."""
        if not 200 <= resp.status < 300:
            raise self._error(resp, operation)
        payload = resp.json()
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

    def _error(self, resp: Response, operation: str) -> CloudError:
        """The error for a failed HTTP answer."""
        return self._failure(resp.status, resp.json(), resp, operation)

    def _failure(self, status: int, payload: Any, resp: Response, operation: str) -> CloudError:
        """The error for a failed answer, with the body's code and message (Spring or JetLinks style)."""
        body = payload if isinstance(payload, dict) else {}
        message = next(
            (str(body[k]) for k in ("message", "error_description", "error") if body.get(k)),
            resp.text[:200] or f"HTTP {status}",
        )
        return self._core.failure(status, message, resp, operation, body.get("code") or body.get("error"))


def _object(result: Any, operation: str) -> dict[str, Any]:
    if not isinstance(result, dict):
        raise PermanentError(
            f"result is {type(result).__name__}, not an object", cloud=CLOUD, operation=operation
        )
    return result
