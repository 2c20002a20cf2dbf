"""One-shot API commands: what the vendors' example scripts do, as a real tool.

Each reads the credentials from the inventory, makes one call (with the clients' usual retries and
timeouts), and returns JSON-able data; the CLI prints it. Failures raise CloudError, which the CLI turns
into exit 1 with the cloud's code and message.
"""

from __future__ import annotations

import time
from typing import Any

from gatewayd.clouds.session import http_session
from gatewayd.errors import ConfigError
from gatewayd.inventory.config import Inventory, parse_duration


async def thingplus_call(inventory: Inventory, what: str, arg: str | None) -> Any:
    from gatewayd.clouds.thingplus import ThingPlusClient
    from gatewayd.statefile import StateFile

    async with http_session() as session:
        client = ThingPlusClient(
            session, inventory.thingplus, token_store=StateFile(thingplus_token_path(inventory))
        )
        if what == "sites":
            return await client.sites()
        if what == "model":
            return await client.gateway_model(arg or inventory.gateway.model)
        if what == "gateway":
            if not arg:
                raise ConfigError("thingplus gateway needs a gateway ID")
            return await client.gateway(arg)
    raise ConfigError(f"unknown thingplus command {what!r}")


async def rcms_call(inventory: Inventory, what: str, args: list[str], since: str | None) -> Any:
    from gatewayd.clouds.rcms import RcmsClient

    if inventory.rcms is None:
        raise ConfigError("the inventory has no 'rcms' section")
    async with http_session() as session:
        client = RcmsClient(session, inventory.rcms)
        if what == "total":
            return await client.device_total()
        if what == "status":
            try:
                window = parse_duration(since or "1h")
            except ValueError as exc:
                raise ConfigError(f"--since: {exc}") from None
            end_ms = int(time.time() * 1000)
            return await client.status_data(args[0], end_ms - int(window * 1000), end_ms)
        if what == "set-group":
            return await client.set_group(args[0], args[1])
    raise ConfigError(f"unknown rcms command {what!r}")


async def loctube_call(inventory: Inventory, what: str, arg: str | None) -> Any:
    from gatewayd.clouds.loctube import LoctubeClient

    if inventory.loctube is None:
        raise ConfigError("the inventory has no 'loctube' section")
    async with http_session() as session:
        client = LoctubeClient(session, inventory.loctube)
        if what == "detail":
            assert arg is not None
            return await client.device_detail(arg)
        if what == "token":
            return {"auth": inventory.loctube.auth, "token": await client.access_token()}
    raise ConfigError(f"unknown loctube command {what!r}")


def thingplus_token_path(inventory: Inventory) -> Any:
    return inventory.state_dir / "thingplus-token.json"
