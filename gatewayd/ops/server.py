"""The daemon's operations endpoints on the inventory's ``http.listen``: /healthz, /metrics, /status, and
the read-only status page at ``/`` with its live stream ``/status/events``.

Everything here reads the daemon's snapshots (gatewayd.runtime.snapshots), never its parts: the ops side
knows nothing of how the daemon is built. The verdict is :mod:`gatewayd.ops.health`'s, the metrics
:mod:`gatewayd.ops.metrics`'s, and /status and the page's stream are one document
(:mod:`gatewayd.ops.statusdoc`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gatewayd.ops.endpoints import OpsEndpoints
from gatewayd.ops.health import assess
from gatewayd.ops.metrics import DaemonCollector
from gatewayd.ops.statusdoc import SensorView, StatusDocument
from gatewayd.outbox.deadletters import DeadLetterCounts, OldestPending
from gatewayd.runtime.snapshots import StatusSource
from gatewayd.webui import events
from gatewayd.webui.assets import page_routes
from gatewayd.webui.query import bad_request

#: The status page (a file of gatewayd/webui/static).
STATUS_PAGE = "status.html"


class OpsServer(OpsEndpoints):
    """The aiohttp server behind /healthz, /metrics, /status and the status page, reading ``status``
    snapshots only."""

    def __init__(
        self,
        status: StatusSource,
        listen: str,
        outbox_path: Path,
        *,
        mono: Callable[[], float] = time.monotonic,
        clock: Callable[[], float] = time.time,
        period_s: float = events.DEFAULT_PERIOD_S,
    ) -> None:
        super().__init__(listen)
        self.status = status
        self.mono = mono
        self.clock = clock
        self.period_s = period_s
        self.dead_letters = DeadLetterCounts(outbox_path)
        self.document = StatusDocument(
            status, self.dead_letters, OldestPending(outbox_path, mono=mono), mono=mono, clock=clock
        )
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(DaemonCollector(status, self.dead_letters))

    def add_routes(self, app: web.Application) -> None:
        """The status page at ``/`` (its files under ``/_ui/``) and its stream of sections."""
        events.install(app)
        app.add_routes(page_routes(STATUS_PAGE))
        app.router.add_get("/status/events", self.page_stream)

    async def healthz(self, request: web.Request) -> web.Response:
        health = assess(self.status(), self.mono())
        return web.json_response(health.as_json(), status=200 if health.ok else 503)

    async def metrics_page(self, request: web.Request) -> web.Response:
        await self.dead_letters.refresh(self.status().storage.dead_lettered)
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def status_page(self, request: web.Request) -> web.Response:
        return web.Response(text=await self.document.document(), content_type="application/json")

    async def page_stream(self, request: web.Request) -> web.StreamResponse:
        """One open status page's stream: the sections, with the sensors its query asks for (read
        before the stream starts: a bad number is a 400)."""
        try:
            view = SensorView.from_query(request.query)
        except ValueError as exc:
            raise bad_request(exc) from None

        async def sections(_: web.Request) -> dict[str, Any]:
            return await self.document.sections(view)

        stream = events.stream_handler(sections, period_s=self.period_s, clock=self.clock)
        return await stream(request)


async def probe_health(listen: str, timeout_s: float) -> tuple[bool, str]:
    """GET /healthz of a daemon listening on ``listen`` (a wildcard address is asked on loopback)."""
    import aiohttp

    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/healthz"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
            session.get(url) as resp,
        ):
            return resp.status == 200, await resp.text()
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        return False, f'{{"status": "unreachable", "url": "{url}", "error": "{type(exc).__name__}"}}'
