"""Upgrading the package loses nothing: run inside the Debian 11 test root by tests/debian/run.sh.

Not a pytest test (it needs the installed package, root and dpkg): ``python -m tests.debian.upgrade NEW.deb``
from the source tree, with the test venv's Python. The daemon installed from the package runs as systemd
would run it (tests/debian/fake-systemctl stands in for systemctl) against the emulator on loopback, with
Thing+ down, so points pile up in its outbox. ``dpkg -i`` of a newer version must then stop it (prerm;
it flushes what it can and keeps the rest on disk), replace /opt/gatewayd, keep /var/lib/gatewayd and the
operator's inventory, and start the new version (postinst). Once Thing+ is back, every point that was
pending before the upgrade is delivered, exactly once, and nothing is registered twice.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

from gatewayd.emulator.thingplus import ThingPlusEmulator
from tests.helpers.waiting import until
from tests.integration.conftest import delivered, emulator_env, inventory_text

INVENTORY = Path("/etc/gatewayd/gatewayd.yaml")
STATE = Path("/var/lib/gatewayd")
CALLS = Path("/run/fake-systemd/calls.log")
UNIT = "gatewayd.service"


async def run(*argv: str) -> subprocess.CompletedProcess[str]:
    """``argv`` in a thread: the emulator on this loop must keep answering while, e.g., the daemon stops."""
    return await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True)


async def systemctl(action: str) -> None:
    result = await run("systemctl", action, UNIT)
    assert result.returncode == 0, f"systemctl {action}: {result.stderr}"


def pending() -> set[tuple[str, int]]:
    """(sensor id, time) of every point in the outbox, read beside the running daemon."""
    db = sqlite3.connect(f"file:{STATE / 'outbox.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT s.sensor_id, p.time_ms FROM points p JOIN sensors s ON s.num = p.sensor")
        return set(rows)
    finally:
        db.close()


def received(tp: ThingPlusEmulator) -> list[tuple[str, int]]:
    return [(sid, p.time) for sid, points in tp.points.items() for p in points]


def calls() -> list[str]:
    return CALLS.read_text().splitlines() if CALLS.exists() else []


def inventory(text: str | None = None) -> str:
    """The operator's inventory, written first when ``text`` is given."""
    if text is not None:
        INVENTORY.write_text(text, encoding="utf-8")
    return INVENTORY.read_text(encoding="utf-8")


async def main(newer: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with emulator_env(Path(tmp), report_interval_ms=1000) as env:
            tp = env.tp
            text = inventory(inventory_text(env.server.url, STATE))
            await systemctl("start")
            await until(lambda: len(tp.sensors) == 2 and delivered(tp) > 0, 60, what="registration, uploads")

            env.server.emulator.faults.set("thingplus", outage_s=math.inf)
            await until(lambda: len(pending()) >= 20, 60, what="points piling up in the outbox")
            before = delivered(tp)
            held = pending()
            print(f"Thing+ down: {before} points delivered, {len(held)} pending in the outbox")

            calls_before = len(calls())
            dpkg = await run("dpkg", "-i", newer)
            print(dpkg.stdout + dpkg.stderr)
            assert dpkg.returncode == 0, "dpkg -i of the newer package failed"
            made = calls()[calls_before:]
            print("systemctl calls:", made)
            assert made.index("prerm stop gatewayd.service") < made.index("postinst start gatewayd.service")
            assert "exited gatewayd.service 0" in made, "the old daemon did not exit 0 on SIGTERM"
            version = (await run("dpkg-query", "-W", "-f", "${Version}", "gatewayd")).stdout
            assert version.endswith("+upgrade1"), version
            assert inventory() == text, "the upgrade changed the operator's inventory"
            assert held <= pending(), "points pending before the upgrade left the outbox undelivered"
            assert delivered(tp) == before

            env.server.emulator.faults.clear("thingplus")
            await until(lambda: held <= set(received(tp)), 60, what="the held points delivered")
            await systemctl("stop")
            assert calls()[-1] == "exited gatewayd.service 0"
            got = received(tp)
            assert len(got) == len(set(got)), "a point was delivered twice"
            assert len(tp.gateways) == 1 and len(tp.sensors) == 2, "the new version registered anew"
            print(
                f"upgraded to {version}: the {len(held)} held points delivered, {len(got)} in all, once each"
            )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
