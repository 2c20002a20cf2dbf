"""RCMS (Robustel router management) open API: the three calls gatewayd makes, and its envelope.

The signing is :mod:`gatewayd.clouds.auth.rcms` (pure, pinned by the document); retries and the auth flow
are the client core's. What stays here is what the document leaves out: the ``{"code", "msg", "data"}``
envelope (errors may come with HTTP 200) and the paging of status windows.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from gatewayd.clouds.auth.rcms import RcmsSigning
from gatewayd.clouds.core import CloudCore
from gatewayd.clouds.http import HttpTransport, RequestObserver, Response
from gatewayd.clouds.jsonbody import dumps
from gatewayd.clouds.request import Request
from gatewayd.clouds.retry import RetryPolicy
from gatewayd.errors import PermanentError
from gatewayd.inventory.config import RcmsConfig

CLOUD = "rcms"

#: A window that pages on past this is a cloud bug, not data: stop instead of looping forever.
MAX_PAGES = 10_000


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
        transport = HttpTransport.for_cloud(session, config, CLOUD, policy, clock, observer)
        auth = RcmsSigning(config.client_id, config.client_secret, clock)
        self._core = CloudCore(transport, auth, self._unwrap, policy=policy, sleep=sleep, clock=clock)

    async def device_total(self) -> dict[str, Any]:
        """Dashboard counts: deviceTotal, onlineTotal, offlineTotal, ..."""
        data = await self._call("GET", "/api/link/dashboard/deviceTotal", operation="device_total")
        if not isinstance(data, dict):
            raise _unexpected("device_total", f"data is {type(data).__name__}, not an object")
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
            data = await self._call("GET", path, operation="status_data", params=query)
            if data is None:
                data = []
            if not isinstance(data, list):
                raise _unexpected("status_data", f"data is {type(data).__name__}, not a list")
            records.extend(data)
            if len(data) < page_size:
                return records
        raise _unexpected("status_data", f"still full pages after {MAX_PAGES} pages")

    async def set_group(self, sn: str, group_name: str) -> Any:
        """Move router ``sn`` into the group ``group_name``; returns the envelope's ``data``."""
        body = dumps({"groupName": group_name})
        return await self._call(
            "PUT", f"/api/link/devices/{_segment(sn)}/group", operation="set_group", body=body
        )

    async def _call(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        params: Mapping[str, str | int] | None = None,
        body: bytes | None = None,
    ) -> Any:
        return await self._core.call(Request(method, path, operation, params=params, body=body))

    def _unwrap(self, resp: Response, request: Request) -> Any:
        """The envelope's ``data``, or the error the HTTP status or the envelope's ``code`` stands for."""
        operation = request.operation
        payload = resp.json()
        envelope = payload if isinstance(payload, dict) else {}
        if not 200 <= resp.status < 300:
            message = str(envelope.get("msg") or resp.text[:200] or f"HTTP {resp.status}")
            raise self._core.failure(resp.status, message, resp, operation, envelope.get("code"))
        if payload is None:
            raise _unexpected(operation, f"answered HTTP {resp.status} with a body that is not JSON")
        if "code" not in envelope:
            raise _unexpected(operation, "answer has no 'code': not the RCMS envelope")
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


def _unexpected(operation: str, message: str) -> PermanentError:
    return PermanentError(message, cloud=CLOUD, operation=operation)


def _segment(value: str) -> str:
    """One URL path segment: a serial number must not be able to add path levels."""
    if not value:
        raise ValueError("a device serial number must not be empty")
    return quote(value, safe="")
