"""``gatewayd run`` under libfaketime (issue 14): a 40-day clock jump and a boot in 1970 lose nothing.

The daemon is a child process with libfaketime preloaded; the test moves its wall clock by rewriting
``FAKETIME_TIMESTAMP_FILE`` (read at every call: ``FAKETIME_NO_CACHE=1``). ``DONT_FAKE_MONOTONIC=1``
keeps the monotonic clock real, as on a box whose NTP steps the wall clock: the event loop (uvloop,
the default, times everything on the monotonic clock) and the storage clock run true. The emulator
runs in the test's own process, which is not preloaded: it lives in the real time.

libfaketime is the Debian package ``faketime`` (``.ci/run`` installs it). Without it these tests fail
in CI (``CI=true``) and are skipped elsewhere, saying why.
"""

from __future__ import annotations

import asyncio
import glob
import signal
import sqlite3
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from gatewayd.outbox import Outbox
from gatewayd.wallclock import BUILD_EPOCH_MS, TIME_UNKNOWN_REASON
from tests.helpers.tools import missing_tool
from tests.helpers.waiting import until
from tests.integration.conftest import Env, delivered, emulator_env
from tests.test_cli_run import Child, assert_no_duplicates, distinct_points, gatewayd_run

LIBFAKETIME_GLOBS = (
    "/usr/lib/*/faketime/libfaketime.so.1",  # Debian, Ubuntu (multiarch)
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)
DAY_MS = 86_400_000


def libfaketime() -> str:
    for pattern in LIBFAKETIME_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    missing_tool("libfaketime is not installed (apt-get install faketime; .ci/run does it)")


class FakeTime:
    """The child's wall clock: ``set("+40d")``, ``set("@1970-01-01 00:00:00")``, ``set("+0")``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def set(self, spec: str) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(spec + "\n", encoding="ascii")
        tmp.replace(self.path)  # atomic: the child never reads half a line

    def env(self) -> dict[str, str]:
        return {
            "LD_PRELOAD": libfaketime(),
            "FAKETIME_TIMESTAMP_FILE": str(self.path),
            "FAKETIME_NO_CACHE": "1",
            "DONT_FAKE_MONOTONIC": "1",
            "TZ": "UTC",  # "@..." times are read as local time
        }


@asynccontextmanager
async def faked_daemon(env: Env, start: str, **inventory: str) -> AsyncIterator[tuple[Child, FakeTime]]:
    """``gatewayd run`` on the env's inventory with its wall clock at ``start`` (a libfaketime spec)."""
    fake = FakeTime(env.tmp_path / "faketime")
    fake.set(start)
    config = env.write_inventory(**inventory)
    async with gatewayd_run(config, env.tmp_path / "gatewayd.log", **fake.env()) as child:
        yield child, fake


async def set_faults(env: Env, method: str, body: dict[str, object] | None = None) -> None:
    """The emulator's fault admin API, over HTTP as an operator would use it."""
    url = f"{env.server.url}/_emulator/faults/thingplus"
    async with aiohttp.ClientSession() as http, http.request(method, url, json=body) as answer:
        assert answer.status == 200, await answer.text()


def logged(child: Child, event_prefix: str) -> list[dict[str, object]]:
    return [e for e in child.events() if str(e.get("event", "")).startswith(event_prefix)]


async def stop(child: Child) -> dict[str, object]:
    child.proc.send_signal(signal.SIGTERM)
    assert await child.wait() == 0, child.log.read_text(encoding="utf-8")
    return child.event("daemon.stopped")


async def test_a_40_day_forward_jump_with_points_pending_deletes_nothing(tmp_path: Path) -> None:
    # max_age 1 day: before issue 14 the jump made every pending point "older" than that and dropped it.
    async with emulator_env(tmp_path) as env:
        # Thing+ refuses points stamped far ahead of its clock; this test is about the outbox keeping them.
        env.tp.series_max_future_s = None
        extra = "outbox: {max_age: 1d}\n"
        async with faked_daemon(env, "+0", extra=extra) as (child, fake):
            await until(lambda: delivered(env.tp) > 0, timeout=20, what="first points")
            await set_faults(env, "POST", {"outage": True})
            await asyncio.sleep(1.0)  # samples taken during the outage stay local (not a timing assertion)
            before_jump = delivered(env.tp)
            fake.set("+40d")
            # checked every second; a loaded box (the Debian root's whole suite) may take longer to show it
            await until(
                lambda: logged(child, "wallclock.jumped"), timeout=30, what="the daemon to see the jump"
            )
            # The jump re-anchors every job, the bound check too: it runs at once, with points pending.
            await asyncio.sleep(1.0)
            await set_faults(env, "DELETE")
            await until(
                lambda: delivered(env.tp) > before_jump + 20, timeout=20, what="the backlog after the outage"
            )
            stopped = await stop(child)
        assert not logged(child, "outbox.max_age_dropped") and not logged(child, "outbox.max_points_dropped")
        assert stopped["pending_on_disk"] == 0
        assert_no_duplicates(env.tp)
        assert distinct_points(env.tp) == stopped["sampled"], "every sampled point delivered"
        jumped = int(time.time() * 1000) + 39 * DAY_MS
        assert any(p.time > jumped for points in env.tp.points.values() for p in points), "faked clock"


async def test_points_sampled_in_1970_are_delivered_with_their_true_times(tmp_path: Path) -> None:
    async with emulator_env(tmp_path) as env:
        started_ms = int(time.time() * 1000)
        async with faked_daemon(env, "@1970-01-01 00:00:00") as (child, fake):
            await until(lambda: logged(child, "wallclock.not_set"), timeout=20, what="a 1970 start")
            await until(lambda: env.tp.gateway_statuses, timeout=20, what="registration and a heartbeat")
            await asyncio.sleep(1.5)  # sampling in "1970" (not a timing assertion)
            assert delivered(env.tp) == 0, "nothing stamped 1970 may leave the box"
            set_ms = int(time.time() * 1000)
            fake.set("+0")  # NTP answers: the wall clock is the real one from now on
            await until(lambda: logged(child, "outbox.points_restamped"), what="the re-stamping")
            (restamp,) = logged(child, "outbox.points_restamped")
            await until(lambda: delivered(env.tp) >= int(restamp["restamped"]), what="the held points sent")
            stopped = await stop(child)
        ended_ms = int(time.time() * 1000)
        times = [p.time for points in env.tp.points.values() for p in points]
        assert min(times) >= started_ms and max(times) <= ended_ms, "every time is a true one"
        # Re-stamped from the monotonic clock: those before the switch are the ones held, give or take the
        # few ms a loaded box puts between reading set_ms here and the child seeing the new clock.
        held = int(str(restamp["restamped"]))
        assert sum(t < set_ms - 50 for t in times) <= held <= sum(t < set_ms + 50 for t in times)
        assert held >= 10
        # nothing lost: a loaded box may stop with the last samples still on disk, sent at the next start
        assert distinct_points(env.tp) + int(str(stopped["pending_on_disk"])) == stopped["sampled"]
        assert_no_duplicates(env.tp)
        # Re-stamped from the monotonic clock, the 1970 samples keep their spacing (Humidity: 100 ms).
        for sensor_id, points in env.tp.points.items():
            early = sorted(p.time for p in points if p.time < set_ms)
            if env.tp.sensors[sensor_id]["name"] == "Humidity" and len(early) > 3:
                gaps = [early[i + 1] - early[i] for i in range(len(early) - 1)]
                assert 80 <= statistics.median(gaps) <= 150, gaps


async def test_points_sampled_before_the_clock_was_set_are_dead_lettered_after_a_reboot(
    tmp_path: Path,
) -> None:
    """A reboot in between makes their monotonic stamps meaningless: set aside, never sent, counted."""
    async with emulator_env(tmp_path) as env:
        await set_faults(env, "POST", {"outage": True})
        async with faked_daemon(env, "@1970-01-01 00:00:00") as (child, _):
            await until(lambda: logged(child, "wallclock.not_set"), timeout=20, what="a 1970 start")
            await asyncio.sleep(1.0)
            first = await stop(child)
        # The "reboot": the outbox records the boot id with the points; the daemon reads it from
        # /proc, which a test cannot change, so the recorded one is made a stranger's.
        db = sqlite3.connect(env.state_dir / "outbox.db")
        db.execute("UPDATE meta SET value = 'an-earlier-boot' WHERE key = 'provisional_boot'")
        db.commit()
        db.close()
        await set_faults(env, "DELETE")
        async with faked_daemon(env, "+0") as (child, _):
            await until(lambda: delivered(env.tp) > 0, timeout=20, what="points of the second run")
            second = await stop(child)
        (dead,) = logged(child, "outbox.time_unknown_dead_lettered")
        assert dead["points"] == first["sampled"] and dead["reason"] == TIME_UNKNOWN_REASON
        assert distinct_points(env.tp) == second["sampled"]
        assert min(p.time for points in env.tp.points.values() for p in points) >= BUILD_EPOCH_MS
        async with await Outbox.open(env.state_dir / "outbox.db") as outbox:
            letters = await outbox.dead_letters(limit=10_000)
        assert len(letters) == first["sampled"]
        assert {(d["reason"], d["time_ms"]) for d in letters} == {(TIME_UNKNOWN_REASON, 0)}
