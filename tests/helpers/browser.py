"""A real browser for the web pages: Debian's Chromium driven by Playwright for Python (async API).

Playwright's own browser download is never used: the distribution's ``chromium`` is launched by path
(what CI installs, what an offline box would have). Where chromium or playwright is missing,
:func:`chromium_path` calls :func:`tests.helpers.tools.missing_tool`: a skip on a developer's machine and
in the Debian 11 root (no chromium there), a failure under ``CI=true``, where .ci/run installs it.

A :class:`WatchedPage` collects every console error and uncaught exception of its page and fails the
test on any (the pages promise none), but for the failed loads of a server the test says is down
(:meth:`WatchedPage.server_down`); its readers take the ``data-testid`` names of the DOM contract
(docs/pages.md, "Test hooks"). Also used by scripts/screenshots.py and bench/console.py,
so nothing here needs pytest but :func:`chromium_path`'s refusal.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from tests.helpers.tools import missing_tool

if TYPE_CHECKING:
    from playwright.async_api import Browser, ConsoleMessage, Error, Locator, Page

#: Chromium's flags: no sandbox (CI runs as root), no GPU, and nothing that calls out to Google.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: The screenshots' size, and the page size of every test (a layout the tests and the pictures share).
WIDTH, HEIGHT = 1400, 900

T = TypeVar("T")

#: What Chromium logs (a console error) for a stream or fetch whose server is not listening ...
REFUSED = "Failed to load resource: net::ERR_CONNECTION_REFUSED"
#: ... and for one a proxy answered 502 in its server's place.
BAD_GATEWAY = "Failed to load resource: the server responded with a status of 502 (Bad Gateway)"


def chromium_path() -> str:
    """The distribution's chromium, with playwright importable; missing_tool otherwise."""
    path = shutil.which("chromium")
    if path is None:
        missing_tool("chromium is not installed (apt-get install chromium; .ci/run does it)")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        missing_tool("playwright is not installed (pip install -e '.[dev]')")
    return path


@asynccontextmanager
async def chromium(path: str | None = None, extra_flags: tuple[str, ...] = ()) -> AsyncIterator[Browser]:
    """A headless Chromium for the life of the block (``path``: the one :func:`chromium_path` finds)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=path or chromium_path(), args=[*FLAGS, *extra_flags]
        )
        try:
            yield browser
        finally:
            await browser.close()


def expect(target: Locator | Page) -> Any:
    """Playwright's ``expect``, imported when called: a test module imports this one whether or not
    playwright is installed, and its fixtures say so through :func:`chromium_path` first."""
    from playwright.async_api import expect as playwright_expect

    return playwright_expect(target)


class PageProblems(AssertionError):
    """The page logged a console error or threw an uncaught exception."""


class WatchedPage:
    """A page, the problems it reported (console errors, uncaught exceptions), and readers of its
    ``data-testid`` elements."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.problems: list[str] = []
        #: The console errors :meth:`server_down` accepted (for a test to see the page did try).
        self.expected: list[str] = []
        self._down: list[tuple[str, tuple[str, ...]]] = []
        page.on("console", self._console)
        page.on("pageerror", self._page_error)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location
            url = str(where.get("url") or "")
            problem = f"console error: {message.text} ({url}:{where.get('lineNumber')})"
            down = any(_origin(url) == origin and message.text in texts for origin, texts in self._down)
            (self.expected if down else self.problems).append(problem)

    def _page_error(self, error: Error) -> None:
        self.problems.append(f"uncaught exception: {error}")

    @contextmanager
    def server_down(self, base_url: str, *texts: str) -> Iterator[None]:
        """For the block, the server at ``base_url`` is down (the test stopped it): the errors Chromium
        logs for the page's streams and fetches to that server that failed (exactly :data:`REFUSED`, or
        exactly one of ``texts`` when given, e.g. a proxy's 502) are expected, not problems. Any other
        error, one about another URL, one after the block, and every uncaught exception still fail."""
        window = (_origin(base_url), texts or (REFUSED,))
        self._down.append(window)
        try:
            yield
        finally:
            self._down.remove(window)

    def check(self) -> None:
        """PageProblems listing every problem so far, if any."""
        if self.problems:
            raise PageProblems(f"{self.page.url}:\n  " + "\n  ".join(self.problems))

    # -- reading the DOM contract

    def by(self, testid: str, within: Locator | None = None) -> Locator:
        return (within or self.page).get_by_test_id(testid)

    async def text(self, testid: str, within: Locator | None = None) -> str:
        """The text of the (first) element ``testid``, stripped."""
        return str(await self.by(testid, within).first.text_content(timeout=10_000) or "").strip()

    async def number(self, testid: str, within: Locator | None = None) -> float:
        """The element's text as a number (the contract keeps units out of such elements)."""
        text = await self.text(testid, within)
        try:
            return float(text)
        except ValueError:
            raise AssertionError(f"data-testid={testid} holds {text!r}, not a number") from None

    async def attr(self, testid: str, name: str, within: Locator | None = None) -> str:
        return str(await self.by(testid, within).first.get_attribute(name, timeout=10_000) or "")

    async def texts(self, testid: str, within: Locator | None = None) -> list[str]:
        """The stripped texts of every element ``testid`` (e.g. each row's name)."""
        return [t.strip() for t in await self.by(testid, within).all_text_contents()]

    def row(self, row_testid: str, name_testid: str, name: str) -> Locator:
        """The row ``row_testid`` whose ``name_testid`` element reads exactly ``name``."""
        exact = re.compile(f"^\\s*{re.escape(name)}\\s*$")
        return self.by(row_testid).filter(has=self.by(name_testid).filter(has_text=exact))

    async def wait_value(
        self,
        read: Callable[[], Awaitable[T]],
        ok: Callable[[T], bool],
        what: str,
        timeout: float = 20.0,
    ) -> T:
        """Poll ``read()`` (every 0.2 s) until ``ok`` holds of its value; fail naming ``what`` and the last
        value after ``timeout`` seconds. A page that reports a problem meanwhile fails at once."""
        deadline = time.monotonic() + timeout
        while True:
            value = await read()
            self.check()
            if ok(value):
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last value {value!r}")
            await asyncio.sleep(0.2)


def _origin(url: str) -> str:
    """``scheme://host:port`` of ``url`` (lower case): the server a request went to."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


@asynccontextmanager
async def open_page(
    browser: Browser, url: str, *, check: bool = True, init_script: str | None = None
) -> AsyncIterator[WatchedPage]:
    """``url`` in a fresh context of :data:`WIDTH` x :data:`HEIGHT` (``init_script`` run before the
    page's own scripts); at the end, the page's problems fail the test (``check``)."""
    context = await browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    try:
        watched = WatchedPage(await context.new_page())
        if init_script is not None:
            await watched.page.add_init_script(init_script)
        await watched.page.goto(url)
        yield watched
    finally:
        await context.close()
    if check:
        watched.check()
