"""Every cloud answer is read up to a cap: a server sending an endless (or a declared 1.5 GB) body costs a
bounded amount of memory, the call fails with a transient error, and the connection is closed."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from gatewayd.clouds.http import MAX_ANSWER_BYTES, HttpTransport
from gatewayd.errors import TransientError
from tests.conftest import loopback_server

#: What the fake server would send in all, if it were let: the size that once took 6 GB of memory.
HUGE = 1_500_000_000
CHUNK = b"x" * (1 << 20)


class Flood:
    """A server answering 200 with a huge body, counting what it managed to send before the client left."""

    def __init__(self, *, declare_length: bool) -> None:
        self.declare_length = declare_length
        self.sent = 0
        self.ended = asyncio.Event()
        self.disconnected = False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        if self.declare_length:
            response.content_length = HUGE
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            while self.sent < HUGE:
                await response.write(CHUNK)
                self.sent += len(CHUNK)
        except (ConnectionError, RuntimeError):  # the client closed the connection
            self.disconnected = True
        except asyncio.CancelledError:  # ... and aiohttp cancelled this handler for it
            self.disconnected = True
            raise
        finally:
            self.ended.set()
        return response


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.mark.parametrize("declare_length", [False, True], ids=["chunked", "content-length"])
async def test_a_flood_of_an_answer_is_refused_with_memory_bounded(
    http: aiohttp.ClientSession, declare_length: bool
) -> None:
    flood = Flood(declare_length=declare_length)
    async with loopback_server(flood.handle) as url:
        transport = HttpTransport(http, url, cloud="thingplus", timeout=30)
        tracemalloc.start()
        try:
            with pytest.raises(TransientError) as info:
                await transport.send("GET", "/v2/sites", operation="sites")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        await asyncio.wait_for(flood.ended.wait(), timeout=10)
    error = info.value
    assert (error.cloud, error.operation, error.status) == ("thingplus", "sites", 200)
    assert f"larger than {MAX_ANSWER_BYTES} bytes" in error.message
    if declare_length:
        assert f"Content-Length {HUGE}" in error.message
    # Refused at the cap: the server could push the cap plus what socket buffers hold, then was cut off.
    assert flood.disconnected
    assert flood.sent < MAX_ANSWER_BYTES + 64 * (1 << 20)
    assert peak < 4 * MAX_ANSWER_BYTES, f"peak {peak / 2**20:.1f} MiB"


async def test_an_answer_up_to_the_cap_is_read_whole(http: aiohttp.ClientSession) -> None:
    body = b"[" + b"1," * 1000 + b"1]"

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(0, len(body), 100):
            await response.write(body[i : i + 100])
        return response

    async with loopback_server(handle) as url:
        exact = HttpTransport(http, url, cloud="rcms", max_body=len(body))
        assert (await exact.send("GET", "/x", operation="x")).body == body
        short = HttpTransport(http, url, cloud="rcms", max_body=len(body) - 1)
        with pytest.raises(TransientError, match=f"larger than {len(body) - 1} bytes"):
            await short.send("GET", "/x", operation="x")
