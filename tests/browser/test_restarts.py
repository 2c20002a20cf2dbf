"""Servers restarted under an open page, in headless Chromium: the console and a daemon's status page go
live again by themselves, and an open chart starts over with the restarted emulator's history.

While a test has a server stopped, Chromium logs the page's failed loads from it (refused connections, a
proxy's 502) as console errors: the test says when (:meth:`WatchedPage.server_down`), and only those are
accepted. Every wait polls the page up to a generous deadline; the only waiting the story needs is the
page's own: EventSource retries a dropped stream after 2 s, the page reopens one it gave up on after 5 s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import (
    SOON_MS,
    Endpoints,
    HandGateway,
    ServerChild,
    ThingPlusByHand,
    answering_502,
)
from tests.helpers.browser import BAD_GATEWAY, REFUSED, WatchedPage, expect, open_page
from tests.helpers.waiting import until

if TYPE_CHECKING:
    from playwright.async_api import Browser

#: How the page sees its emulator away: nothing listens on its port, or a proxy in front answers 502
#: (EventSource gives up on such an answer for good; the page opens the next stream by itself).
BETWEEN = {"nothing listening": False, "a proxy's 502": True}


async def stop_and_start(
    console: WatchedPage, emulator: ServerChild, endpoints: Endpoints, *, behind_proxy: bool
) -> None:
    """Stop the emulator under the open console (it shows ``connecting``) and start it again on its port;
    with ``behind_proxy``, a proxy answers 502 in between, until the page's stream got that answer. Run
    within ``console.server_down``; the page is not back yet on return."""
    assert await emulator.stop() == 0, f"gatewayd emulator did not exit 0 on SIGTERM{emulator.output()}"
    await expect(console.by("live")).to_have_attribute("data-state", "connecting", timeout=SOON_MS)
    if behind_proxy:
        async with answering_502(endpoints.emulator_port):
            await until(
                lambda: any(BAD_GATEWAY in error for error in console.expected),
                SOON_MS / 1000,
                what="the page's stream to get the proxy's 502",
            )
    await emulator.start()


@pytest.mark.parametrize("behind_proxy", BETWEEN.values(), ids=BETWEEN.keys())
async def test_the_console_goes_live_again_and_its_chart_starts_over_when_the_emulator_restarts(
    behind_proxy: bool,
    emulator: ServerChild,
    endpoints: Endpoints,
    thingplus: ThingPlusByHand,
    browser: Browser,
) -> None:
    """The charted sensor comes back (registered again, as its daemon does it) after the page is back, as
    usually, or before (a proxy's 502 holds the page off for 5 s) with more points than the page had (its
    position alone could not tell a restart then: the stream's ``run`` does): either way the page shows
    the new emulator's figures and the chart its history only, then follows it."""
    refill = 45 if behind_proxy else 5
    gateway = HandGateway("Restarted gateway", sensors=2)
    sensor = gateway.sensors[0]
    await thingplus.register(gateway)
    await thingplus.put_points(gateway, sensor, 40)
    async with open_page(browser, endpoints.emulator_url) as console:
        live, card, chart = console.by("live"), console.by("cloud-thingplus"), console.by("sensor-chart")
        await console.row("gateway-row", "gateway-name", gateway.name).click()
        await console.row("sensor-row", "sensor-name", "Sensor 0").click()
        await expect(chart).to_have_attribute("data-points", "40", timeout=SOON_MS)
        await expect(console.by("requests", card)).to_have_text(str(thingplus.requests), timeout=SOON_MS)

        with console.server_down(endpoints.emulator_url, REFUSED, BAD_GATEWAY):
            await stop_and_start(console, emulator, endpoints, behind_proxy=behind_proxy)
            thingplus.requests = 0
            if behind_proxy:
                await thingplus.register(gateway)
                await thingplus.put_points(gateway, sensor, refill)
            await expect(live).to_have_attribute("data-state", "live", timeout=SOON_MS)
        if not behind_proxy:
            # the new emulator served nothing yet, and knows no sensor: the chart starts over, empty
            await expect(console.by("requests", card)).to_have_text("0", timeout=SOON_MS)
            await expect(chart).to_have_attribute("data-points", "0", timeout=SOON_MS)
            await thingplus.register(gateway)
            await thingplus.put_points(gateway, sensor, refill)

        await expect(console.by("requests", card)).to_have_text(str(thingplus.requests), timeout=SOON_MS)
        row = console.row("gateway-row", "gateway-name", gateway.name)
        await expect(console.by("gateway-sensors", row)).to_have_text("2", timeout=SOON_MS)
        # the new run's points only, not 40 + those of two runs
        await expect(chart).to_have_attribute("data-points", str(refill), timeout=SOON_MS)
        await thingplus.put_points(gateway, sensor, 3)
        await expect(chart).to_have_attribute("data-points", str(refill + 3), timeout=SOON_MS)
        await expect(chart).to_have_attribute("data-sensor-id", sensor)


async def test_the_daemon_page_goes_live_again_when_its_daemon_restarts(
    daemon: ServerChild, endpoints: Endpoints, browser: Browser
) -> None:
    async with open_page(browser, endpoints.daemon_url) as page:
        live = page.by("live")
        await expect(live).to_have_attribute("data-state", "live", timeout=SOON_MS)
        await expect(page.by("sensor-row")).to_have_count(1, timeout=SOON_MS)
        with page.server_down(endpoints.daemon_url):
            assert await daemon.stop() == 0, f"gatewayd run did not exit 0 on SIGTERM{daemon.output()}"
            await expect(live).to_have_attribute("data-state", "connecting", timeout=SOON_MS)
            await daemon.start()
            await expect(live).to_have_attribute("data-state", "live", timeout=SOON_MS)
        last = await page.text("last-update")
        await expect(page.by("last-update")).not_to_have_text(last, timeout=SOON_MS)  # messages flow again
        await expect(page.by("registration")).not_to_have_text("not registered", timeout=SOON_MS)
        await expect(page.by("sensor-row")).to_have_count(1)
