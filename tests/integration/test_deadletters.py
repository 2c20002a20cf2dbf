"""A refused point against the emulated Thing+: only it is dead-lettered, with the cloud's reason; it shows
in ``gatewayd outbox``, /status and /metrics; and ``gatewayd outbox requeue`` sends it once the cause
is gone. Points are put into the outbox before the daemon starts (the daemon itself no longer produces a
value its sensor type cannot carry), as a backlog from an earlier run would be.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import aiohttp

from gatewayd.outbox import Outbox, Point
from gatewayd.outbox.refusals import DEFAULT_BUDGET
from gatewayd.runtime.registry import Registry
from tests.helpers.ports import free_port
from tests.helpers.waiting import until

from .conftest import (
    describe,
    emulator_env,
    gatewayd_cli,
    get,
    running,
    scrape,
    times_of,
    write_with_http,
)


async def backlog(state_dir: Path, device: str, sensor: str, points: list[tuple[int, str]]) -> str:
    """Points of one inventory sensor put into the outbox ahead of a start; the sensor's id."""
    sensor_id = Registry(state_dir).sensor_id(device, sensor)
    async with await Outbox.open(state_dir / "outbox.db") as outbox:
        await outbox.put([Point(sensor_id, t, v) for t, v in points])
    return sensor_id


async def test_one_bad_value_is_dead_lettered_alone_and_shows_everywhere(tmp_path: Path) -> None:
    async with emulator_env(tmp_path) as env:
        listen = f"127.0.0.1:{free_port()}"
        config = write_with_http(env, listen)
        base = f"http://{listen}"
        now_ms = int(time.time() * 1000)
        injected = [
            (now_ms - 300_000 + i * 1000, "open" if i == 150 else f"{18 + i % 5}.25") for i in range(300)
        ]
        temperature = await backlog(env.state_dir, "Room", "Temperature", injected)
        bad_time = injected[150][0]
        good = {t for t, _ in injected} - {bad_time}

        async with running(env.load(config), inventory_path=config) as run:
            daemon = run.daemon
            assert daemon.outbox is not None
            outbox = daemon.outbox
            await until(
                lambda: outbox.stats.dead_lettered == 1 and good <= set(times_of(env.tp, temperature)),
                what="the backlog delivered but for the bad point",
            )
            received = times_of(env.tp, temperature)
            assert bad_time not in received
            assert len(received) == len(set(received)), "no point delivered twice"
            # One refused request per level of the search, the first included: ceil(log2 n) + 1 at most.
            assert 1 < env.tp.rejections["series:INVALID_INPUT"] <= 1 + math.ceil(math.log2(500))
            reason = "400 INVALID_INPUT: body.value: a temperature value must be a numeric string, not 'open'"

            rc, out, err = await gatewayd_cli("outbox", "dead-letters", "--config", str(config), "--json")
            assert rc == 0, err
            (letter,) = json.loads(out)
            assert letter["sensor"] == "Room/Temperature" and letter["sensor_id"] == temperature
            assert (letter["time_ms"], letter["value"], letter["reason"]) == (bad_time, "open", reason)

            rc, out, err = await gatewayd_cli("outbox", "stats", "--config", str(config), "--json")
            assert rc == 0, err
            assert json.loads(out)["dead_letters_by_reason"] == {"400 INVALID_INPUT": 1}

            code, text, _ = await get(f"{base}/status")
            assert code == 200
            dead = json.loads(text)["outbox"]["dead_letters"]
            assert dead == {"total": 1, "by_reason": {"400 INVALID_INPUT": 1}}
            metrics = await scrape(base)
            assert metrics.value("gatewayd_dead_letters", reason="400 INVALID_INPUT") == 1
            assert metrics.value("gatewayd_dead_letter_total") == 1

            # Writing is refused while the daemon runs; reading went on beside it.
            rc, out, err = await gatewayd_cli("outbox", "requeue", "--config", str(config))
            assert rc == 1 and out == ""
            assert (
                f"the daemon (pid {os.getpid()}) is running on state_dir {env.state_dir}; stop it first"
                in err
            )
            await run.stop()


async def test_requeue_sends_points_once_the_cause_of_their_refusal_is_gone(tmp_path: Path) -> None:
    async with emulator_env(tmp_path) as env:
        config = env.write_inventory()
        env.tp.series_max_age_s = 3600.0  # Thing+ keeps an hour
        old_ms = int(time.time() * 1000) - 7200_000
        stale = [(old_ms + i * 1000, f"{20 + i}.5") for i in range(20)]
        temperature = await backlog(env.state_dir, "Room", "Temperature", stale)
        stale_times = {t for t, _ in stale}

        async with running(env.load(config), inventory_path=config) as run:
            assert run.daemon.outbox is not None
            outbox = run.daemon.outbox
            await until(lambda: outbox.stats.dead_lettered >= 20, what="the stale points dead-lettered")
            await until(lambda: len(times_of(env.tp, temperature)) >= 5, what="fresh points delivered")
            await run.stop()
        assert not stale_times & set(times_of(env.tp, temperature))

        rc, out, err = await gatewayd_cli(
            "outbox", "dead-letters", "--config", str(config), "--json", "--limit", "500"
        )
        assert rc == 0, err
        letters = json.loads(out)
        assert stale_times <= {d["time_ms"] for d in letters}
        assert all("too far in the past" in d["reason"] for d in letters)
        assert len(letters) <= 20 + DEFAULT_BUDGET  # a few fresh ones at most, refused with a stale neighbour

        env.tp.series_max_age_s = None  # the platform takes them now
        rc, out, err = await gatewayd_cli(
            "outbox", "requeue", "--config", str(config), "--reason", "too far in the past"
        )
        assert rc == 0, err
        assert (
            out == f"requeued {len(letters)} dead letter(s) whose reason contains 'too far in the past': "
            "pending again, sent at the daemon's next start\n"
        )

        async with running(env.load(config), inventory_path=config) as run:
            await until(lambda: stale_times <= set(times_of(env.tp, temperature)), what="the requeued points")
            await run.stop()
        received = times_of(env.tp, temperature)
        assert len(received) == len(set(received)), "no point delivered twice"
        rc, out, _ = await gatewayd_cli("outbox", "stats", "--config", str(config), "--json")
        assert json.loads(out)["dead_letters"] == 0


async def test_a_backlog_older_than_the_platform_keeps_loses_only_its_stale_points(tmp_path: Path) -> None:
    """Issue 17: the emulated Thing+ refuses points older than it keeps (5 days on the real platform, 30 s
    here, set over the admin API); the daemon delivers every other point and dead-letters the stale ones
    with the platform's reason, which ``gatewayd outbox dead-letters`` shows after the daemon stopped."""
    async with emulator_env(tmp_path) as env:
        config = env.write_inventory()
        limits = f"{env.server.url}/_emulator/thingplus/series-limits"
        async with aiohttp.ClientSession() as http, http.post(limits, json={"max_age": "30s"}) as answer:
            assert answer.status == 200, await answer.text()
        now_ms = int(time.time() * 1000)
        stale = [(now_ms - 300_000 + i * 2000, f"{20 + i % 5}.5") for i in range(60)]  # 5 to 3 minutes old
        fresh = [(now_ms - 10_000 + i * 100, f"{21 + i % 3}.25") for i in range(60)]  # 10 to 4 s old
        temperature = await backlog(env.state_dir, "Room", "Temperature", stale + fresh)
        stale_times, fresh_times = {t for t, _ in stale}, {t for t, _ in fresh}

        async with running(env.load(config), inventory_path=config) as run:
            assert run.daemon.outbox is not None
            outbox = run.daemon.outbox
            await until(
                lambda: (
                    outbox.stats.dead_lettered >= len(stale)
                    and fresh_times <= set(times_of(env.tp, temperature))
                ),
                what="the deliverable backlog delivered and the stale points dead-lettered",
                explain=lambda: describe(run.daemon, env.tp),
            )
            await until(
                lambda: len(times_of(env.tp, temperature)) > len(fresh) + 5, what="new samples delivered"
            )
            await run.stop()
        received = times_of(env.tp, temperature)
        assert not stale_times & set(received)
        assert len(received) == len(set(received)), "no point delivered twice"
        assert env.tp.rejections["series:INVALID_INPUT"] >= 1

        rc, out, err = await gatewayd_cli(
            "outbox", "dead-letters", "--config", str(config), "--json", "--limit", "500"
        )
        assert rc == 0, err
        letters = json.loads(out)
        assert sorted((d["time_ms"], d["value"]) for d in letters) == stale
        assert {d["sensor"] for d in letters} == {"Room/Temperature"}
        for letter in letters:  # the platform's reason for the point, sent alone by the bisection
            reason = (
                f"400 INVALID_INPUT: body.time {letter['time_ms']} is too far in the past (older than 30 s)"
            )
            assert letter["reason"] == reason
        rc, out, err = await gatewayd_cli("outbox", "dead-letters", "--config", str(config), "--limit", "500")
        assert rc == 0, err
        assert out.count("too far in the past") == len(stale)
        rc, out, err = await gatewayd_cli("outbox", "stats", "--config", str(config), "--json")
        assert rc == 0, err
        assert json.loads(out)["dead_letters_by_reason"] == {"400 INVALID_INPUT": len(stale)}
