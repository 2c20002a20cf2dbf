"""The aiohttp server every ops page shares: /healthz, /metrics and /status on ``http.listen``.

Why a base: the daemon (gatewayd.ops.server) and a fleet shard (gatewayd.fleet.ops) serve the same three
paths with the same server settings and differ only in what they answer. What only one of them serves
(the daemon's status page) it adds in :meth:`OpsEndpoints.add_routes`.
"""

from __future__ import annotations

import structlog
from aiohttp import web

log = structlog.get_logger(__name__)


class OpsEndpoints:
    """Serves :meth:`healthz`, :meth:`metrics` and :meth:`status` (for a subclass to answer) on ``listen``."""

    def __init__(self, listen: str) -> None:
        host, _, port = listen.rpartition(":")
        self.host = host.strip("[]")
        self.port = int(port)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics_page)
        app.router.add_get("/status", self.status_page)
        self.add_routes(app)
        # A scraper holding a connection open must not hold up a stop (aiohttp waits 60 s by default).
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("ops.listening", listen=f"{self.host}:{self.port}")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def add_routes(self, app: web.Application) -> None:
        """Routes a subclass serves beside the three (none here); called once, before the app starts."""

    async def healthz(self, request: web.Request) -> web.Response:
        raise NotImplementedError

    async def metrics_page(self, request: web.Request) -> web.Response:
        raise NotImplementedError

    async def status_page(self, request: web.Request) -> web.Response:
        raise NotImplementedError
