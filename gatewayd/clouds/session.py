"""The one aiohttp ClientSession a process uses for all three clouds (the daemon and one-shot commands).

Why one factory: the connection limit and the DNS cache are process-wide choices; the daemon and the
one-shot commands should not each make up their own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

#: Connections open at once across the clouds: the uploader's concurrency with room for polls.
CONNECTION_LIMIT = 64
#: Seconds a DNS answer is reused (the box may sit behind a slow resolver).
DNS_CACHE_S = 300


@asynccontextmanager
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    """The ClientSession of this process, closed when the block ends."""
    connector = aiohttp.TCPConnector(limit=CONNECTION_LIMIT, ttl_dns_cache=DNS_CACHE_S)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session
