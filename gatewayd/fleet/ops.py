"""A fleet shard's ops HTTP (``http.listen``): /metrics (per-fleet totals), /status (per gateway), /healthz.

Why not the daemon's server (gatewayd.ops.server): that one reads one gateway's snapshot; a shard has a
thousand, and per-gateway labels on /metrics would be too many series (gatewayd.fleet.metrics). The
health of a shard is its storage's: a gateway that cannot reach Thing+ is what a load test measures,
not a reason to restart the pod.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

log = structlog.get_logger(__name__)


class FleetOps:
    """Serves ``metrics()`` (Prometheus text), ``status()`` (JSON) and ``health()`` ((ok, JSON)) on ``listen``."""

    def __init__(
        self,
        listen: str,
        *,
        metrics: Callable[[], str],
        status: Callable[[], dict[str, Any]],
        health: Callable[[], tuple[bool, dict[str, Any]]],
    ) -> None:
        host, _, port = listen.rpartition(":")
        self.host = host.strip("[]")
        self.port = int(port)
        self.metrics = metrics
        self.status = status
        self.health = health
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/status", self._status)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("ops.listening", listen=f"{self.host}:{self.port}")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        ok, body = self.health()
        return web.json_response(body, status=200 if ok else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics().encode("utf-8"), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self.status())
