"""The browser tests' own guard, in headless Chromium: a stopped server's failed loads are accepted only
for that server, with Chromium's exact message, and only while the test says it is down."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.helpers.browser import REFUSED, open_page
from tests.helpers.ports import free_port
from tests.helpers.waiting import until

if TYPE_CHECKING:
    from playwright.async_api import Browser


async def test_server_down_accepts_that_servers_refused_loads_during_the_block_only(browser: Browser) -> None:
    down, other = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    async with open_page(browser, "about:blank", check=False) as page:

        async def fetch(url: str) -> None:
            await page.page.evaluate("url => fetch(url).then(() => 0, () => 0)", url)

        async def logged(count: int) -> None:
            await until(lambda: len(page.expected) + len(page.problems) >= count, 10, what=f"{count} errors")

        with page.server_down(down):
            await fetch(f"{down}/events")
            await fetch(f"{other}/events")
            await page.page.evaluate("console.error('something else')")
            await logged(3)
        await fetch(f"{down}/after")
        await logged(4)

    assert page.expected == [f"console error: {REFUSED} ({down}/events:0)"]
    assert page.problems == [
        f"console error: {REFUSED} ({other}/events:0)",
        "console error: something else (:0)",
        f"console error: {REFUSED} ({down}/after:0)",
    ]
