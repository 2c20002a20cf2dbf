"""An HTTP answer's body read with a bound on its size: the cloud clients and the ``http`` sensors use it.

Why: ``aiohttp``'s ``read()`` keeps whatever a server sends; a 1.5 GB answer took 6 GB of memory and
stalled the event loop. Here a declared ``Content-Length`` over the cap is refused before one byte is
read, and the body is otherwise read in chunks that stop one chunk past the cap (decompressed bytes are
what count, so a compressed bomb stops too). On refusal the connection is closed, not returned to the
pool with a body still in flight.
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

#: Bytes asked for per read; what a refused answer costs beyond the cap, at most.
CHUNK_BYTES = 64 * 1024


async def read_capped(
    response: aiohttp.ClientResponse, limit: int, refuse: Callable[[str], Exception]
) -> bytes:
    """The body of ``response``, at most ``limit`` bytes; past that, ``refuse(reason)`` is raised."""
    declared = response.content_length
    if declared is not None and declared > limit:
        response.close()
        raise refuse(f"the answer is larger than {limit} bytes (Content-Length {declared})")
    if declared is not None and "Content-Encoding" not in response.headers:
        return await response.read()  # the parser stops at Content-Length: bounded, and the fast path
    body = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK_BYTES):
        body += chunk
        if len(body) > limit:
            response.close()
            raise refuse(f"the answer is larger than {limit} bytes")
    return bytes(body)
