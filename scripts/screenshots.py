"""The README's pictures of the two web pages: ``make screenshots`` writes docs/console.png and docs/status.png.

Runs ``gatewayd demo`` as ``make run`` does (reportInterval 5 s), opens its console and the HTTPS gateway's
status page in headless Chromium (the distribution's, as the browser tests do) at 1400x900, waits for
data — on the console the HTTPS gateway selected and its Temperature chart holding ``--points`` points —
and takes both pictures. A page that logs a console error fails the run (exit 1): a picture of a broken
page is no picture for the README.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gatewayd.inventory.config import load_inventory  # noqa: E402
from tests.helpers.browser import WatchedPage, chromium, expect, open_page  # noqa: E402
from tests.helpers.demo import running_demo  # noqa: E402

#: What the console's picture charts: the demo's 1 s sine, a curve within a minute.
SENSOR = "Temperature"
WAIT_MS = 120_000


async def console_ready(console: WatchedPage, gateway_name: str, points: int) -> None:
    """The HTTPS gateway selected and ``SENSOR``'s chart open with ``points`` points."""
    await expect(console.by("live")).to_have_attribute("data-state", "live", timeout=WAIT_MS)
    gateway = console.row("gateway-row", "gateway-name", gateway_name)
    await expect(gateway).to_have_count(1, timeout=WAIT_MS)
    await gateway.click()
    sensor = console.row("sensor-row", "sensor-name", SENSOR)
    await expect(sensor).to_have_count(1, timeout=WAIT_MS)
    await sensor.click()
    await console.wait_value(
        lambda: console.attr("sensor-chart", "data-points"),
        lambda n: int(n or 0) >= points,
        f"{points} points in the {SENSOR} chart",
        timeout=WAIT_MS / 1000,
    )


async def status_ready(daemon: WatchedPage) -> None:
    """Healthy, with the first RCMS and loctube records polled."""
    await expect(daemon.by("health")).to_have_attribute("data-ok", "true", timeout=WAIT_MS)
    await daemon.wait_value(
        lambda: daemon.by("polled-row").count(), lambda n: n >= 2, "RCMS and loctube records", WAIT_MS / 1000
    )


async def shoot(out: Path, points: int, browser_path: str) -> None:
    gateway_name = load_inventory(REPO / "config" / "demo.yaml").gateway.name
    with running_demo() as demo:
        async with (
            chromium(browser_path) as browser,
            open_page(browser, demo.console) as console,
            open_page(browser, demo.daemons["https"]) as daemon,
        ):
            await asyncio.gather(console_ready(console, gateway_name, points), status_ready(daemon))
            await console.page.screenshot(path=str(out / "console.png"))
            await daemon.page.screenshot(path=str(out / "status.png"))
        code = demo.stop()
        if code != 0:
            raise RuntimeError(f"gatewayd demo exited {code}{demo.output()}")
    print(f"wrote {out / 'console.png'} and {out / 'status.png'}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="directory (default docs/)")
    parser.add_argument("--points", type=int, default=45, help="points the chart holds first (default 45)")
    args = parser.parse_args()
    browser_path = shutil.which("chromium")
    if browser_path is None:
        print("screenshots: chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(shoot(args.out, args.points, browser_path))
    except AssertionError as exc:  # a page problem or a wait that timed out
        print(f"screenshots: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
