"""The browser tests' fixtures: one ``gatewayd demo`` child per test module, a Chromium per test.

The demo runs with a reportInterval of 1 s (``--report-interval 1000``) so that values change and an
outage's backlog drains within seconds; it is stopped with SIGINT at the end of its module and must exit 0
(nothing lost, whatever the tests did to it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gatewayd.inventory.config import Inventory, load_inventory
from tests.helpers.browser import WatchedPage, chromium, chromium_path, expect
from tests.helpers.demo import RunningDemo, running_demo

if TYPE_CHECKING:
    from playwright.async_api import Browser

CONFIG = Path(__file__).resolve().parents[2] / "config"

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
