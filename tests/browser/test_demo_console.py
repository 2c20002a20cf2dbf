"""The emulator console of a running ``gatewayd demo`` in headless Chromium: what a newcomer sees.

Every page a test opens fails the test on any console error or uncaught exception
(:class:`tests.helpers.browser.WatchedPage`). Waits poll the page up to generous deadlines; the only
waiting the story itself needs is the outage's own seconds.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import pytest

from gatewayd.inventory.config import Inventory
from tests.browser.conftest import SOON_MS, select_gateway
from tests.helpers.browser import expect, open_page
from tests.helpers.demo import RunningDemo

if TYPE_CHECKING:
    from playwright.async_api import Browser

#: The outage the test starts from the page, and how long its backlog may take to drain after.
OUTAGE_S = 8
DRAIN_S = 45.0


async def test_the_console_goes_live_and_links_the_daemons_pages(demo: RunningDemo, browser: Browser) -> None:
    async with open_page(browser, demo.console) as console:
        await expect(console.by("live")).to_have_attribute("data-state", "live", timeout=SOON_MS)
        await expect(console.by("last-update")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d$"))
        links = console.by("daemon-links").locator("a")
        await expect(links).to_have_count(len(demo.daemons), timeout=SOON_MS)
        hrefs = sorted([await link.get_attribute("href") or "" for link in await links.all()])
        assert hrefs == sorted(demo.daemons.values())
        for cloud in ("thingplus", "rcms", "loctube"):
            await expect(console.by(f"cloud-{cloud}")).to_have_attribute("data-health", "ok")
            await console.wait_value(
                lambda cloud=cloud: console.number("requests", console.by(f"cloud-{cloud}")),
                lambda n: n > 0,
                f"requests served by {cloud}",
            )


async def test_the_demos_gateways_and_sensors_are_shown_with_values_that_change(
    demo: RunningDemo, browser: Browser, https_inventory: Inventory, mqtt_inventory: Inventory
) -> None:
    async with open_page(browser, demo.console) as console:
        await expect(console.row("gateway-row", "gateway-name", https_inventory.gateway.name)).to_have_count(
            1, timeout=SOON_MS
        )
        if "mqtt" in demo.daemons:  # known to the emulated portal by its id (it registers no name)
            mqtt_id = str(mqtt_inventory.thingplus.gateway_id)
            await expect(console.page.locator(f'[data-gateway-id="{mqtt_id}"]')).to_have_count(1)
        await select_gateway(console, https_inventory)
        row = console.row("sensor-row", "sensor-name", "Temperature")  # 1 s interval, a sine: moves
        await expect(console.by("sensor-status", row)).to_have_text("on", timeout=SOON_MS)
        first = await console.number("sensor-value", row)
        await console.wait_value(
            lambda: console.number("sensor-value", row), lambda now: now != first, "a new Temperature value"
        )
        await console.wait_value(
            lambda: console.number("points-rate"), lambda rate: rate > 0, "points accepted per second"
        )


async def test_clicking_a_sensor_charts_its_points_and_the_stream_adds_more(
    demo: RunningDemo, browser: Browser, https_inventory: Inventory
) -> None:
    async with open_page(browser, demo.console) as console:
        await select_gateway(console, https_inventory)
        row = console.row("sensor-row", "sensor-name", "Temperature")
        sensor_id = await row.get_attribute("data-sensor-id")
        await row.click()
        chart = console.by("sensor-chart")
        await expect(chart).to_have_attribute("data-sensor-id", sensor_id or "", timeout=SOON_MS)
        await expect(chart.locator("canvas").first).to_be_visible()
        fetched = await console.wait_value(
            lambda: console.attr("sensor-chart", "data-points"), lambda n: int(n or 0) > 0, "points plotted"
        )
        await console.wait_value(
            lambda: console.attr("sensor-chart", "data-points"),
            lambda n: int(n or 0) > int(fetched),
            "points appended from the stream",
        )


async def test_an_outage_started_from_the_page_turns_thingplus_red_and_the_backlog_grows_then_drains(
    demo: RunningDemo, browser: Browser
) -> None:
    async with (
        open_page(browser, demo.console) as console,
        open_page(browser, demo.daemons["https"]) as daemon,
    ):
        card = console.by("cloud-thingplus")
        await expect(console.by("live")).to_have_attribute("data-state", "live", timeout=SOON_MS)
        await expect(daemon.by("registration")).not_to_have_text("not registered", timeout=SOON_MS)
        # The normal level: the highest of a few readings over two report intervals.
        normal = 0.0
        for _ in range(3):
            normal = max(normal, await daemon.number("outbox-pending"))
            await daemon.page.wait_for_timeout(1000)

        await console.by("outage-cloud").select_option("thingplus")
        await console.by("outage-seconds").fill(str(OUTAGE_S))
        await console.by("outage-start").click()
        await expect(card).to_have_attribute("data-health", "down", timeout=SOON_MS)
        await expect(console.by("faults")).to_contain_text("outage")
        peak = await daemon.wait_value(
            lambda: daemon.number("outbox-pending"), lambda n: n >= normal + 10, "the backlog to grow"
        )
        await expect(card).to_have_attribute("data-health", "ok", timeout=(OUTAGE_S + 15) * 1000)
        await daemon.wait_value(
            lambda: daemon.number("outbox-pending"),
            lambda n: n <= normal + 5,
            f"the backlog (peak {peak:g}) to drain back near {normal:g}",
            timeout=DRAIN_S,
        )
        await console.wait_value(
            lambda: console.number("refused", card), lambda n: n > 0, "the refused requests counted"
        )
        await expect(console.by("refusal-status").first).to_have_text("503")


async def test_an_mqtt_command_sent_from_the_page_is_answered(
    demo: RunningDemo, browser: Browser, mqtt_inventory: Inventory
) -> None:
    if "mqtt" not in demo.daemons:
        # Not a missing tool: the MQTT gateway needs amqtt, which has no release for Python 3.9.
        pytest.skip("the demo runs no MQTT gateway here (amqtt is not installed)")
    gateway_id = str(mqtt_inventory.thingplus.gateway_id)
    async with open_page(browser, demo.console) as console:
        await expect(console.by("rpc-gateway").locator(f'option[value="{gateway_id}"]')).to_have_count(
            1, timeout=SOON_MS
        )
        await console.by("rpc-gateway").select_option(gateway_id)
        await console.by("rpc-method").select_option("swInfo")
        await console.by("rpc-params").fill("{}")
        await console.by("rpc-send").click()
        answer = console.by("rpc-answer")
        await expect(answer).to_contain_text('"result"', timeout=SOON_MS)
        body = json.loads(await console.text("rpc-answer"))
        assert isinstance(body["result"]["version"], str), body
