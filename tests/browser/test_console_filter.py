"""The console's sensor table when another gateway is chosen, in headless Chromium: the filter typed on
one gateway's sensors is gone for the next gateway's, in the box and in the pages prev/next brings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.browser.conftest import SOON_MS, Endpoints, HandGateway, ServerChild, ThingPlusByHand
from tests.helpers.browser import WatchedPage, expect, open_page

if TYPE_CHECKING:
    from playwright.async_api import Browser, Locator


def pager_button(console: WatchedPage, filter_testid: str, name: str) -> Locator:
    """The prev or next button beside a table's filter box (the pager holds both)."""
    return console.by(filter_testid).locator("xpath=..").get_by_role("button", name=name)


async def shows(console: WatchedPage, numbers: range) -> None:
    """Wait until the sensor rows are ``Sensor {i}`` for each i of ``numbers``, in that order."""
    names = [f"Sensor {i}" for i in numbers]
    await console.wait_value(
        lambda: console.texts("sensor-name"), lambda shown: shown == names, f"Sensor {numbers} listed"
    )


async def test_another_gateways_sensors_are_listed_and_paged_unfiltered(
    emulator: ServerChild, endpoints: Endpoints, thingplus: ThingPlusByHand, browser: Browser
) -> None:
    small, large = HandGateway("Small gateway", sensors=12), HandGateway("Large gateway", sensors=130)
    await thingplus.register(small)
    await thingplus.register(large)  # more than a page (100 rows) of sensors
    async with open_page(browser, endpoints.emulator_url) as console:
        await console.row("gateway-row", "gateway-name", small.name).click()
        await shows(console, range(12))
        await console.by("sensor-filter").fill("Sensor 1")
        await console.wait_value(
            lambda: console.texts("sensor-name"),
            lambda shown: shown == ["Sensor 1", "Sensor 10", "Sensor 11"],
            "the small gateway's sensors filtered",
        )

        await console.row("gateway-row", "gateway-name", large.name).click()
        await expect(console.by("sensor-filter")).to_have_value("", timeout=SOON_MS)
        await shows(console, range(100))
        # the old filter would match 41 of these sensors, all on one page
        await pager_button(console, "sensor-filter", "next").click()
        await shows(console, range(100, 130))
        await pager_button(console, "sensor-filter", "prev").click()
        await shows(console, range(100))
