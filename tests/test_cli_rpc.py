"""``gatewayd thingplus rpc``: a command sent through the emulator's admin API, against a stand-in of it
(the real one is the emulator's: POST /_emulator/thingplus/rpc, 200 answer / 404 / 504)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.conftest import loopback_server
from tests.helpers.inventories import inventory_yaml

ROOT = Path(__file__).resolve().parent.parent


async def run_cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gatewayd", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


class StandIn:
    """The admin endpoint: answers like a connected gateway ``gw1``; 404 for others, 504 for ``slow``."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append((request.path, body))
        if request.method != "POST" or request.path != "/_emulator/thingplus/rpc":
            return web.json_response({"error": "not found"}, status=404)
        if body["method"] == "slow":
            return web.json_response({"error": "timeout"}, status=504)
        if body["gateway"] != "gw1":
            return web.json_response({"error": "unknown gateway"}, status=404)
        return web.json_response({"id": "7", "result": {"echo": body["params"]}})


def write(tmp_path: Path, url: str) -> str:
    path = tmp_path / "inventory.yaml"
    path.write_text(inventory_yaml(url + "/v2", state_dir=tmp_path / "state"), encoding="utf-8")
    return str(path)


async def test_rpc_posts_to_the_emulator_and_prints_the_answer(tmp_path: Path) -> None:
    stand_in = StandIn()
    async with loopback_server(stand_in.handle) as url:
        config = write(tmp_path, url)
        params = '{"id": "gw1-fan", "cmd": "blink", "options": {"interval": 500}}'
        code, out, err = await run_cli(
            "thingplus", "rpc", "--config", config, "--gateway", "gw1", "controlActuator", params
        )
        assert (code, json.loads(out)) == (0, {"id": "7", "result": {"echo": json.loads(params)}}), err
        assert stand_in.requests == [
            (
                "/_emulator/thingplus/rpc",
                {
                    "gateway": "gw1",
                    "method": "controlActuator",
                    "params": json.loads(params),
                    "timeout": 10.0,
                },
            )
        ]
        code, out, _ = await run_cli("thingplus", "rpc", "--config", config, "--gateway", "gw1", "swInfo")
        assert (code, json.loads(out)["result"]) == (0, {"echo": {}})


async def test_rpc_failures_and_usage(tmp_path: Path) -> None:
    async with loopback_server(StandIn().handle) as url:
        config = write(tmp_path, url)
        code, out, err = await run_cli("thingplus", "rpc", "--config", config, "--gateway", "gw2", "swInfo")
        assert code == 1 and json.loads(out)["status"] == 404 and "HTTP 404" in err
        code, out, err = await run_cli("thingplus", "rpc", "--config", config, "--gateway", "gw1", "slow")
        assert code == 1 and json.loads(out)["code"] == "timeout"
        code, _, err = await run_cli("thingplus", "rpc", "--config", config, "--gateway", "gw1", "x", "{nope")
        assert code == 2 and "the params are not JSON" in err
        code, _, err = await run_cli("thingplus", "rpc", "--config", config, "--gateway", "gw1", "x", "[1]")
        assert code == 2 and "must be a JSON object" in err
        code, _, err = await run_cli("thingplus", "rpc", "--config", config, "swInfo")
        assert code == 2 and "no thingplus.gateway_id" in err
