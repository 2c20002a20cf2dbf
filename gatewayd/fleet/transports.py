"""Each fleet gateway's reporting transport, as its inventory says, over the shard's one HTTP session.

Over HTTPS (REST v2) gateways of the same account share one client, so one token serves them all (a
thousand password grants at start would storm the cloud as much as the registrations). Over MQTT each
gateway has its own session, built with its controllers (gatewayd.runtime.gateway): nothing to share.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gatewayd.clouds.retry import RetryPolicy
from gatewayd.inventory.config import Inventory
from gatewayd.runtime.requestmetrics import RequestMetrics
from gatewayd.statefile import StateFile

if TYPE_CHECKING:
    import aiohttp

    from gatewayd.clouds.thingplus import ThingPlusClient


class Transports:
    """The reporting clients of a shard, made on first need and shared by the gateways of one account."""

    def __init__(
        self, session: aiohttp.ClientSession, state_dir: Path, requests: RequestMetrics, policy: RetryPolicy
    ) -> None:
        self.session = session
        self.state_dir = state_dir
        self.requests = requests
        self.policy = policy
        self._thingplus: dict[tuple[str, str | None, str | None], ThingPlusClient] = {}

    def for_gateway(self, inventory: Inventory) -> ThingPlusClient | None:
        """The HTTPS client gateway ``inventory`` reports through; None over MQTT, where each gateway has
        its own session (built by gatewayd.runtime.gateway)."""
        from gatewayd.clouds.thingplus import ThingPlusClient

        config = inventory.thingplus
        if config.transport == "mqtt":
            return None
        key = (config.endpoint, config.client_id, config.username)
        client = self._thingplus.get(key)
        if client is None:
            token = self.state_dir / f"thingplus-token-{len(self._thingplus)}.json"
            client = ThingPlusClient(
                self.session, config, token_store=StateFile(token), policy=self.policy, observer=self.requests
            )
            self._thingplus[key] = client
        return client
