"""HTTP sensors: GET a JSON document each interval and pick a value by a dotted path (``data.temp``).

The daemon's shared ``ClientSession`` is asked for at each read (the daemon may replace it), and every
outcome other than a 2xx JSON response is a :class:`SourceError`. Messages name the URL without its
credentials or query, and never the headers, which often carry tokens.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from gatewayd.errors import SourceError
from gatewayd.httpbody import read_capped
from gatewayd.inventory.sources import HttpSource
from gatewayd.sources.pick import number_or_text, pick_path

#: Largest response body accepted.
MAX_BODY_BYTES = 1024 * 1024


def _public_url(url: str) -> str:
    """``url`` without user, password, query or fragment: what may appear in logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class HttpReader:
    """GETs ``config.url`` with ``config.headers`` and ``config.timeout`` over the shared session."""

    def __init__(self, config: HttpSource, session: Callable[[], aiohttp.ClientSession]) -> None:
        self.config = config
        self.session = session
        self.where = f"GET {_public_url(config.url)}"

    async def read(self) -> float | int | str:
        document = await self._fetch()
        try:
            picked = pick_path(document, self.config.path)
            return number_or_text(picked, self.config.scale, self.config.offset)
        except SourceError as exc:
            raise SourceError(f"{self.where}: {exc}") from None

    async def _fetch(self) -> Any:
        timeout = self.config.timeout
        try:
            session = self.session()
            if session.closed:
                raise SourceError(f"{self.where}: the HTTP session is closed")
            async with session.get(
                self.config.url,
                headers=self.config.headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
                raise_for_status=False,
            ) as response:
                if not 200 <= response.status < 300:
                    raise SourceError(
                        f"{self.where}: HTTP {response.status} {response.reason or ''}".rstrip()
                    )
                body = await self._body(response)
        except SourceError:
            raise
        except asyncio.TimeoutError:
            raise SourceError(f"{self.where}: timed out after {timeout:g}s") from None
        except aiohttp.ClientError as exc:
            raise SourceError(f"{self.where}: {type(exc).__name__}: {exc}") from None
        except (OSError, ValueError) as exc:  # bad header values, low-level socket errors
            raise SourceError(f"{self.where}: {type(exc).__name__}: {exc}") from None
        try:
            return json.loads(body)
        except ValueError as exc:
            raise SourceError(f"{self.where}: the response is not JSON: {exc}") from None

    async def _body(self, response: aiohttp.ClientResponse) -> bytes:
        return await read_capped(response, MAX_BODY_BYTES, lambda why: SourceError(f"{self.where}: {why}"))

    async def close(self) -> None:
        return None  # the session belongs to the daemon
