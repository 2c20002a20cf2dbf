"""A fleet shard's ops HTTP (``http.listen``): /metrics (per-fleet totals), /status (per gateway), /healthz.

Why not the daemon's server (gatewayd.ops.server): that one reads one gateway's snapshot; a shard has a
thousand, and per-gateway labels on /metrics would be too many series (gatewayd.fleet.metrics). The
health of a shard is its storage's: a gateway that cannot reach Thing+ is what a load test measures,
not a reason to restart the pod.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from gatewayd.ops.endpoints import OpsEndpoints


class FleetOps(OpsEndpoints):
    """Serves ``metrics()`` (Prometheus text), ``status()`` (JSON) and ``health()`` ((ok, JSON)) on ``listen``."""

    def __init__(
        self,
        listen: str,
        *,
        metrics: Callable[[], str],
        status: Callable[[], dict[str, Any]],
        health: Callable[[], tuple[bool, dict[str, Any]]],
    ) -> None:
        super().__init__(listen)
        self.metrics = metrics
        self.status = status
        self.health = health

    async def healthz(self, request: web.Request) -> web.Response:
        ok, body = self.health()
        return web.json_response(body, status=200 if ok else 503)

    async def metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics().encode("utf-8"), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def status_page(self, request: web.Request) -> web.Response:
        return web.json_response(self.status())
