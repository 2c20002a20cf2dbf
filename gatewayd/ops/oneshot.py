"""One-shot API commands: what the vendors' example scripts do, as a real tool.

Each reads the credentials from the inventory, makes one call (with the clients' usual retries and
timeouts), and returns JSON-able data; the CLI prints it. Failures raise CloudError, which the CLI turns
into exit 1 with the cloud's code and message. ``thingplus rpc`` sends a command to a gateway through the
Thing+ emulator's admin API, for trying actuators and commands by hand.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from gatewayd.clouds.session import http_session
from gatewayd.errors import CloudError, ConfigError
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


#: The emulator's admin API that hands a command to a gateway connected over MQTT (issue 18).
EMULATOR_RPC_PATH = "/_emulator/thingplus/rpc"


def rpc_params(text: str | None) -> dict[str, Any]:
    """The params of ``gatewayd thingplus rpc`` (a JSON object; none: ``{}``); bad JSON is a usage error."""
    if text is None:
        return {}
    try:
        params = json.loads(text)
    except ValueError as exc:
        raise ConfigError(
            f"thingplus rpc: the params are not JSON ({exc}): give an object like '{{\"id\": 1}}'"
        ) from None
    if not isinstance(params, dict):
        raise ConfigError("thingplus rpc: the params must be a JSON object")
    return params


async def thingplus_rpc(
    inventory: Inventory, method: str, params: dict[str, Any], gateway: str | None, timeout_s: float
) -> Any:
    """Send a JSON-RPC command to a gateway through the emulator's admin API; the gateway's answer.

    The emulator is the one at the inventory's ``thingplus.endpoint`` origin; the gateway is ``gateway``,
    else the inventory's ``thingplus.gateway_id``.
    """
    gateway_id = gateway or getattr(inventory.thingplus, "gateway_id", None)
    if not gateway_id:
        raise ConfigError("thingplus rpc: the inventory has no thingplus.gateway_id: give --gateway ID")
    parts = urlsplit(inventory.thingplus.endpoint)
    url = urlunsplit((parts.scheme, parts.netloc, EMULATOR_RPC_PATH, "", ""))
    body = {"gateway": gateway_id, "method": method, "params": params, "timeout": timeout_s}

    def failure(message: str, status: int | None = None, code: Any = None) -> CloudError:
        return CloudError(message, cloud="thingplus-emulator", operation="rpc", status=status, code=code)

    async with http_session() as session:
        try:
            async with session.post(
                url, json=body, timeout=aiohttp.ClientTimeout(total=timeout_s + RPC_MARGIN_S)
            ) as response:
                text = await response.text()
                status = response.status
        except asyncio.TimeoutError:
            raise failure(f"no answer from {url} within {timeout_s + RPC_MARGIN_S:g}s") from None
        except aiohttp.ClientError as exc:
            raise failure(f"{url}: {type(exc).__name__}: {exc}") from None
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None
    if status != 200:
        code = answer.get("error") if isinstance(answer, dict) else None
        raise failure(f"the emulator answered HTTP {status}: {text[:200]}", status, code)
    if answer is None:
        raise failure(f"the emulator's answer is not JSON: {text[:200]}", status)
    return answer


#: How much longer than the command's own timeout the CLI waits for the emulator's answer.
RPC_MARGIN_S = 5.0


def thingplus_token_path(inventory: Inventory) -> Any:
    return inventory.state_dir / "thingplus-token.json"
