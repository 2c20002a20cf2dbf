"""The browser tests' fixtures: one ``gatewayd demo`` child per test module, a Chromium per test; for the
tests that restart a server under an open page, ``gatewayd emulator`` and ``gatewayd run`` children on
fixed ports (:class:`ServerChild`), Thing+ filled by hand through its API (:class:`ThingPlusByHand`) and a
proxy's 502 in a stopped server's place (:func:`answering_502`).

The demo runs with a reportInterval of 1 s (``--report-interval 1000``) so that values change and an
outage's backlog drains within seconds; it is stopped with SIGINT at the end of its module and must exit 0
(nothing lost, whatever the tests did to it). The other children are stopped with SIGTERM, as systemd
stops them, and must exit 0 as well.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web

from gatewayd.inventory.config import Inventory, load_inventory
from tests.emulator import call, get_token, new_id, sensor_body
from tests.helpers.browser import WatchedPage, chromium, chromium_path, expect
from tests.helpers.demo import ROOT, RunningDemo, answers, running_demo
from tests.helpers.inventories import inventory_yaml
from tests.helpers.ports import free_port
from tests.helpers.waiting import until

if TYPE_CHECKING:
    from playwright.async_api import Browser

CONFIG = ROOT / "config"

#: The daemon's one sensor (``gatewayd run`` under the status page): a value a second.
SENSORS = """\
  - name: Room
    sensors:
      - name: Temperature
        type: temperature
        interval: 1s
        simulate: {pattern: sine, min: 18, max: 26, period: 1m, seed: 1}
"""

#: Playwright's expect() deadline for what the stream shows within a tick or two (ms).
SOON_MS = 15_000


def sensor_names(inventory: Inventory) -> list[str]:
    return sorted(sensor.name for device in inventory.devices for sensor in device.sensors)


async def select_gateway(console: WatchedPage, inventory: Inventory) -> str:
    """Click the gateway row named as ``inventory``'s gateway; its sensors are listed. Returns its id."""
    row = console.row("gateway-row", "gateway-name", inventory.gateway.name)
    await expect(row).to_have_count(1, timeout=SOON_MS)
    await row.click()
    names = sensor_names(inventory)
    await console.wait_value(
        lambda: console.texts("sensor-name"), lambda shown: sorted(shown) == names, f"the sensors {names}"
    )
    return await row.get_attribute("data-gateway-id") or ""


@pytest.fixture(scope="module")
def demo() -> Iterator[RunningDemo]:
    chromium_path()  # no browser, no demo: skip (or fail under CI) before starting anything
    with running_demo("--report-interval", "1000") as running:
        yield running
        code = running.stop()
        assert code == 0, f"gatewayd demo exited {code} on SIGINT{running.output()}"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture(scope="session")
def https_inventory() -> Inventory:
    """The demo's HTTPS gateway, as config/demo.yaml describes it."""
    return load_inventory(CONFIG / "demo.yaml")


@pytest.fixture(scope="session")
def mqtt_inventory() -> Inventory:
    """The demo's MQTT gateway, as config/demo-mqtt.yaml describes it."""
    return load_inventory(CONFIG / "demo-mqtt.yaml")


class ServerChild:
    """``gatewayd ARGS`` as a child process answering ``ready_url``, started, stopped (SIGTERM) and
    started again on the same port as a user restarts it. The output of every run goes to ``log``, and
    ends a failure's message."""

    def __init__(self, name: str, args: list[str], ready_url: str, log: Path) -> None:
        self.name = name
        self.argv = [sys.executable, "-m", "gatewayd", *args]
        self.ready_url = ready_url
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def output(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"\n--- {self.name} output ---\n" + "\n".join(text.splitlines()[-60:])

    async def start(self, timeout: float = 30.0) -> None:
        """Start it and wait until ``ready_url`` answers (any status); fail if it exits first."""
        with self.log.open("ab") as out:
            self.proc = proc = await asyncio.create_subprocess_exec(
                *self.argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        await until(
            lambda: proc.returncode is not None or answers(self.ready_url),
            timeout,
            every=0.05,
            what=f"{self.name} to answer {self.ready_url}",
            explain=self.output,
        )
        if proc.returncode is not None:
            pytest.fail(f"{self.name} exited {proc.returncode} before it answered{self.output()}")

    async def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then its exit status once it exited."""
        proc = self.proc
        assert proc is not None, f"{self.name} was never started"
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(proc.wait(), timeout)
        except asyncio.TimeoutError:
            pytest.fail(f"{self.name} did not exit within {timeout:g}s of SIGTERM{self.output()}")

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@asynccontextmanager
async def started(child: ServerChild) -> AsyncIterator[ServerChild]:
    """``child`` running for the block; at its end, if still running, it must exit 0 on SIGTERM (killed
    whatever happened)."""
    await child.start()
    try:
        yield child
        if child.running:
            code = await child.stop()
            assert code == 0, f"{child.name} exited {code} on SIGTERM{child.output()}"
    finally:
        await child.kill()


class Endpoints:
    """Where one test's children listen: the emulator's port (kept across its restarts) and the
    daemon's ``http.listen``, and the inventory file both read."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.emulator_port = free_port()
        self.emulator_url = f"http://127.0.0.1:{self.emulator_port}"
        self.daemon_listen = f"127.0.0.1:{free_port()}"
        self.daemon_url = f"http://{self.daemon_listen}/"
        self.inventory = tmp_path / "inventory.yaml"
        self.inventory.write_text(
            inventory_yaml(
                self.emulator_url,
                gateway='{name: "Browser gateway", model: "52"}',
                state_dir=tmp_path / "state",
                sections=f'http: {{listen: "{self.daemon_listen}"}}\n',
                devices=SENSORS,
            ),
            encoding="utf-8",
        )


@pytest.fixture
def endpoints(tmp_path: Path) -> Endpoints:
    chromium_path()  # no browser, no servers: skip (or fail under CI) before starting anything
    return Endpoints(tmp_path)


@pytest.fixture
async def emulator(endpoints: Endpoints) -> AsyncIterator[ServerChild]:
    """``gatewayd emulator`` on ``endpoints.emulator_port``, handing out a reportInterval of 1 s."""
    child = ServerChild(
        "gatewayd emulator",
        [
            "emulator",
            "--config",
            str(endpoints.inventory),
            "--port",
            str(endpoints.emulator_port),
            "--report-interval",
            "1000",
        ],
        f"{endpoints.emulator_url}/_emulator/healthz",
        endpoints.tmp_path / "emulator.log",
    )
    async with started(child):
        yield child


@pytest.fixture
async def daemon(endpoints: Endpoints, emulator: ServerChild) -> AsyncIterator[ServerChild]:
    """``gatewayd run`` against ``emulator``, its status page at ``endpoints.daemon_url``."""
    child = ServerChild(
        "gatewayd run",
        ["run", "--config", str(endpoints.inventory)],
        f"{endpoints.daemon_url}healthz",
        endpoints.tmp_path / "daemon.log",
    )
    async with started(child):
        yield child


class HandGateway:
    """A gateway of one device and ``sensors`` sensors named ``Sensor 0``, ``Sensor 1``, ...: its ids,
    drawn once, so that a restarted emulator can be given the same gateway again."""

    def __init__(self, name: str, sensors: int) -> None:
        self.name = name
        self.id = new_id()
        self.device = new_id()
        self.sensors = [new_id() for _ in range(sensors)]


class ThingPlusByHand:
    """Thing+'s REST API called by hand as tests/emulator calls it (:mod:`tests.emulator`), counting
    its requests: a console's Thing+ card must count as many."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        self.auth: dict[str, str] = {}
        self.requests = 0
        self._last_ms: dict[str, int] = {}

    async def _call(self, method: str, path: str, body: Any) -> None:
        self.requests += 1
        status, answer = await call(self.http, method, path, self.auth, body)
        assert 200 <= status < 300, f"{method} {path}: {status} {answer}"

    async def register(self, gateway: HandGateway) -> None:
        """A fresh token, then the gateway, its device and its sensors (as registration makes them)."""
        self.requests += 1
        self.auth = await get_token(self.http)
        params = {"siteId": "1", "model": "52", "name": gateway.name}
        await self._call("POST", "/v2/registerGateway", {"reqId": gateway.id, "params": params})
        device = {"reqId": gateway.device, "name": "Device", "model": "open-api-device-v1.0"}
        await self._call("POST", f"/v2/gateways/{gateway.id}/devices", device)
        for i, sensor in enumerate(gateway.sensors):
            body = sensor_body(sensor, gateway.device, name=f"Sensor {i}")
            await self._call("POST", f"/v2/gateways/{gateway.id}/sensors", body)

    async def put_points(self, gateway: HandGateway, sensor: str, count: int) -> None:
        """``count`` points of ``sensor`` in one series request, times after the ones it put before."""
        start = max(self._last_ms.get(sensor, 0) + 1, int(time.time() * 1000) - count)
        self._last_ms[sensor] = start + count - 1
        pack = [{"value": str(20 + i % 10), "time": start + i} for i in range(count)]
        await self._call("PUT", f"/v2/gateways/{gateway.id}/sensors/{sensor}/series", pack)


@pytest.fixture
async def thingplus(endpoints: Endpoints) -> AsyncIterator[ThingPlusByHand]:
    """Thing+ at ``endpoints.emulator_url`` (the ``emulator`` fixture's), by hand."""
    async with aiohttp.ClientSession(base_url=endpoints.emulator_url) as http:
        yield ThingPlusByHand(http)


@asynccontextmanager
async def answering_502(port: int) -> AsyncIterator[None]:
    """A proxy's answer while its server is away: 502 to every request on ``port`` for the block."""

    async def bad_gateway(request: web.Request) -> web.Response:
        return web.Response(status=502, text="502 Bad Gateway: the server is restarting")

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", bad_gateway)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield
    finally:
        await runner.cleanup()
