"""A demo daemon's status page in headless Chromium, beside the console: the same sensors, no error."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gatewayd.inventory.config import Inventory
from tests.browser.conftest import SOON_MS, select_gateway, sensor_names
from tests.helpers.browser import expect, open_page
from tests.helpers.demo import RunningDemo

if TYPE_CHECKING:
    from playwright.async_api import Browser


async def test_the_daemon_page_shows_the_sensors_the_console_shows_for_its_gateway(
    demo: RunningDemo, browser: Browser, https_inventory: Inventory
) -> None:
    async with (
        open_page(browser, demo.console) as console,
        open_page(browser, demo.daemons["https"]) as daemon,
    ):
        gateway_id = await select_gateway(console, https_inventory)
        on_console = sorted(await console.texts("sensor-name"))

        await expect(daemon.by("live")).to_have_attribute("data-state", "live", timeout=SOON_MS)
        await expect(daemon.by("registration")).to_contain_text(gateway_id, timeout=SOON_MS)
        keys = await daemon.wait_value(
            lambda: daemon.by("sensor-row").evaluate_all(
                "rows => rows.map(row => row.getAttribute('data-sensor-key'))"
            ),
            lambda found: len(found) == len(on_console),
            f"{len(on_console)} sensor rows",
        )
        assert sorted(key.rpartition("/")[2] for key in keys) == on_console == sensor_names(https_inventory)
        await expect(daemon.by("health")).to_have_attribute("data-ok", "true", timeout=SOON_MS)
        temperature = daemon.page.locator(
            '[data-testid="sensor-row"][data-sensor-key="Greenhouse/Temperature"]'
        )
        assert 18 <= await daemon.number("sensor-value", temperature) <= 26  # the inventory's sine
        await expect(daemon.by("report-interval")).to_have_text("1000")
