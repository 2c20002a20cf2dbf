"""Live data for the pages as server-sent events: one stream per open page, throttled, sending changes.

Why this shape: a page shows sections (a table of gateways, a chart, the faults); each tick (1 s by
default) the server builds the sections that page looks at and sends only those whose JSON differs from
what that page last got. A 10,000-sensor emulator therefore costs a page what it shows (a page of rows),
not what the emulator holds, and an idle page costs a keep-alive comment every 15 s. Server-sent events
and not a WebSocket: the data flows one way (controls are plain POSTs to the admin API), EventSource
reconnects by itself, and a page that changes what it looks at simply opens a new stream with new query
parameters.

Every message is one ``data:`` line of JSON: ``{"t": <server unix time>, "sections": {name: value}}``;
the first message of a stream carries every section.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Union

import structlog
from aiohttp import web

log = structlog.get_logger(__name__)

#: How often a stream builds its sections (s): the pages promise updates within 2 s.
DEFAULT_PERIOD_S = 1.0
#: A comment line this often keeps proxies and the browser from closing an idle stream.
KEEPALIVE_S = 15.0

Sections = Mapping[str, Any]
#: Builds the sections one stream shows, from that stream's request (its query parameters).
SectionBuilder = Callable[[web.Request], Union[Sections, Awaitable[Sections]]]

#: Set on shutdown: every stream of the app ends at once, so a stop does not wait for open pages.
_CLOSING = web.AppKey("gatewayd_webui_closing", asyncio.Event)


def install(app: web.Application) -> None:
    """Make ``app``'s streams end when it shuts down (call once per app that serves streams)."""
    if _CLOSING in app:
        return
    app[_CLOSING] = asyncio.Event()

    async def closing(app: web.Application) -> None:
        app[_CLOSING].set()

    app.on_shutdown.append(closing)


def stream_handler(
    build: SectionBuilder,
    *,
    period_s: float = DEFAULT_PERIOD_S,
    clock: Callable[[], float] = time.time,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp handler streaming what ``build`` returns, every ``period_s``, changed sections only."""

    async def handler(request: web.Request) -> web.StreamResponse:
        closing = request.app.get(_CLOSING)
        if closing is None:
            raise RuntimeError("gatewayd.webui.events.install(app) was not called")
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        sent: dict[str, str] = {}
        quiet_since = time.monotonic()
        try:
            await response.write(b"retry: 2000\n\n")
            while not closing.is_set() and not _gone(request):
                built = build(request)
                sections = await built if isinstance(built, Awaitable) else built
                changed = changed_sections(sections, sent)
                now = time.monotonic()
                if changed:
                    message = json.dumps({"t": clock(), "sections": changed}, separators=(",", ":"))
                    await response.write(f"data: {message}\n\n".encode())
                    quiet_since = now
                elif now - quiet_since >= KEEPALIVE_S:
                    await response.write(b": keep-alive\n\n")
                    quiet_since = now
                try:
                    await asyncio.wait_for(closing.wait(), timeout=period_s)
                except asyncio.TimeoutError:
                    pass
        except (ConnectionResetError, ConnectionError):
            pass  # the page went away: nothing to tell anyone
        return response

    return handler


def _gone(request: web.Request) -> bool:
    """Whether the page closed its connection. Why look before each tick: a stream that sends nothing
    new finds out only at its next write, up to a keep-alive (15 s) later, and a page opens a new
    stream at each view change (a page of rows, a filter typed, a sensor clicked): the old ones would
    go on building their sections every second meanwhile, a snapshot of every sensor each."""
    transport = request.transport
    return transport is None or transport.is_closing()


def changed_sections(sections: Sections, sent: dict[str, Any]) -> dict[str, Any]:
    """The sections whose JSON differs from what ``sent`` records (updated in place to the new text)."""
    changed: dict[str, Any] = {}
    for name, value in sections.items():
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
        if sent.get(name) != text:
            sent[name] = text
            changed[name] = value
    return changed
