"""``gatewayd run`` and ``gatewayd demo`` as real processes: signals, exit status, what reached the cloud.

The emulator runs in the test's event loop on 127.0.0.1; the daemon is a child process started with
``python -m gatewayd``, its JSON log lines written to a file (never a pipe that could fill up).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from gatewayd.emulator.app import mqtt_available
from gatewayd.emulator.thingplus import ThingPlusEmulator
from gatewayd.outbox import Outbox
from tests.helpers.demo import FIRST_LINE
from tests.helpers.ports import taken_port
from tests.helpers.waiting import until
from tests.integration.conftest import SENSORS, THREE_SENSORS, delivered, emulator_env, points_of

ROOT = Path(__file__).resolve().parent.parent
GATEWAYD = [sys.executable, "-m", "gatewayd"]


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("GATEWAYD_CONFIG", None)
    env.pop("GATEWAYD_EVENT_LOOP", None)
    env["GATEWAYD_LOG_LEVEL"] = "info"
    env.update(extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


class Child:
    """A ``gatewayd run`` child process and its log file."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc = proc
        self.log = log

    async def wait(self, within_s: float = 30.0) -> int:
        return await asyncio.wait_for(self.proc.wait(), timeout=within_s)

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                out.append(record)
        return out

    def event(self, name: str) -> dict[str, Any]:
        found = [e for e in self.events() if e.get("event") == name]
        assert found, f"no {name!r} line in the log:\n{self.log.read_text(encoding='utf-8')}"
        return found[-1]


@asynccontextmanager
async def gatewayd_run(config: Path, log: Path, **env: str) -> AsyncIterator[Child]:
    with log.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            *GATEWAYD,
            "run",
            "--config",
            str(config),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=child_env(**env),
        )
    child = Child(proc, log)
    try:
        yield child
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def pending_on_disk(state_dir: Path) -> int:
    outbox = await Outbox.open(state_dir / "outbox.db")
    try:
        return outbox.stats.pending
    finally:
        await outbox.close()


def distinct_points(tp: ThingPlusEmulator) -> int:
    return sum(len({p.time for p in points}) for points in tp.points.values())


def assert_no_duplicates(tp: ThingPlusEmulator) -> None:
    for sid, points in tp.points.items():
        times = [p.time for p in points]
        assert len(times) == len(set(times)), f"{sid}: duplicate points"


# ------------------------------------------------------------------------------------------------ SIGTERM


async def test_sigterm_flushes_pending_points_and_exits_0(tmp_path: Path) -> None:
    # reportInterval 60 s: after the first heartbeat, samples pile up in the outbox until the stop flushes.
    async with emulator_env(tmp_path, report_interval_ms=60_000) as env:
        config = env.write_inventory()
        async with gatewayd_run(config, tmp_path / "gatewayd.log") as child:
            await until(lambda: len(env.tp.sensors) == 2, timeout=20, what="registration")
            await until(lambda: env.tp.gateway_statuses, what="the first heartbeat")
            before = delivered(env.tp)
            await asyncio.sleep(1.0)  # let samples pile up in the outbox (not a timing assertion)
            child.proc.send_signal(signal.SIGTERM)
            assert await child.wait() == 0
        assert child.event("daemon.running")["event_loop"] == "uvloop", "uvloop is a dependency"
        stopped = child.event("daemon.stopped")
        assert stopped["sampled"] > 0
        assert delivered(env.tp) > before, "the stop's flush sent the backlog"
        assert stopped["pending_on_disk"] == 0
        assert await pending_on_disk(env.state_dir) == 0
        assert distinct_points(env.tp) == stopped["sampled"]
        assert_no_duplicates(env.tp)


async def test_sigterm_during_an_outage_keeps_unsent_points_in_the_outbox(tmp_path: Path) -> None:
    # On asyncio's own loop (GATEWAYD_EVENT_LOOP=asyncio), so the fallback keeps working too.
    async with emulator_env(tmp_path) as env:
        config = env.write_inventory()
        async with gatewayd_run(config, tmp_path / "gatewayd.log", GATEWAYD_EVENT_LOOP="asyncio") as child:
            await until(lambda: delivered(env.tp) > 0, timeout=20, what="first points")
            env.server.emulator.faults.set("thingplus", outage_s=math.inf)
            await asyncio.sleep(1.0)  # samples taken during the outage stay local
            child.proc.send_signal(signal.SIGTERM)
            assert await child.wait() == 0
        assert child.event("daemon.running")["event_loop"] == "asyncio"
        stopped = child.event("daemon.stopped")
        on_disk = await pending_on_disk(env.state_dir)
        assert on_disk > 0
        assert on_disk == stopped["pending_on_disk"]
        assert distinct_points(env.tp) + on_disk == stopped["sampled"]
        assert_no_duplicates(env.tp)


# ------------------------------------------------------------------------------------------------ SIGHUP


async def test_sighup_adds_a_sensor_without_a_restart(tmp_path: Path) -> None:
    async with emulator_env(tmp_path) as env:
        config = env.write_inventory()
        async with gatewayd_run(config, tmp_path / "gatewayd.log") as child:
            await until(lambda: len(env.tp.points) == 2, timeout=20, what="points of both sensors")
            old = set(env.tp.sensors)
            counts = {sid: len(points_of(env.tp, sid)) for sid in old}
            env.write_inventory(devices=THREE_SENSORS)
            child.proc.send_signal(signal.SIGHUP)
            await until(lambda: len(env.tp.sensors) == 3, what="the added sensor registered")
            (added,) = set(env.tp.sensors) - old
            assert env.tp.sensors[added]["name"] == "Level"
            await until(lambda: points_of(env.tp, added), what="the added sensor's points")
            await until(
                lambda: all(len(points_of(env.tp, sid)) > counts[sid] for sid in old),
                what="the old sensors still flowing",
            )
            assert child.proc.returncode is None, "SIGHUP must not stop the daemon"
            child.proc.send_signal(signal.SIGTERM)
            assert await child.wait() == 0
        assert child.event("reload.applied")["added"] == ["Cellar/Level"]
        assert env.tp.requests["register_gateway"] == 1
        assert distinct_points(env.tp) == child.event("daemon.stopped")["sampled"]
        assert_no_duplicates(env.tp)


# ------------------------------------------------------------------------------------------------ exit 2


async def test_run_exits_2_naming_a_sensor_type_the_gateway_model_lacks(tmp_path: Path) -> None:
    async with emulator_env(tmp_path) as env:
        config = env.write_inventory(devices=SENSORS.replace("type: humidity", "type: warp_drive"))
        async with gatewayd_run(config, tmp_path / "gatewayd.log") as child:
            assert await child.wait(within_s=30) == 2
        output = child.log.read_text(encoding="utf-8")
        assert "Room/Humidity" in output and "warp_drive" in output
        assert env.tp.requests["register_gateway"] == 0


# ------------------------------------------------------------------------------------------------ demo


def gatewayd_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GATEWAYD, "demo", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=child_env(),
        check=False,
    )


def test_demo_ends_with_nothing_lost() -> None:
    result = gatewayd_demo("--duration", "8", "--port", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"sampled (\d+), delivered (\d+), lost 0", last)
    assert match, result.stdout
    sampled, delivered_ = int(match.group(1)), int(match.group(2))
    assert sampled > 0 and delivered_ == sampled
    lines = result.stdout.splitlines()
    urls = FIRST_LINE.fullmatch(lines[0])  # where the console and the daemons' pages are, first
    assert urls, result.stdout
    pages = dict(page.split(" ", 1) for page in urls.group("pages").split(", "))
    assert list(pages) == (["https", "mqtt"] if mqtt_available() else ["https"]), lines[0]
    assert len({urls.group("console"), *pages.values()}) == len(pages) + 1, lines[0]
    assert all(
        re.fullmatch(r"http://127\.0\.0\.1:\d+/", url) for url in [urls.group("console"), *pages.values()]
    )
    if not mqtt_available():
        assert any("MQTT gateway not run: the emulator's MQTT broker needs amqtt" in line for line in lines)
        return
    # The MQTT gateway beside the HTTPS one: its own points, all delivered, part of the total.
    per_gateway = {}
    for line in lines:
        found = re.fullmatch(r"(https|mqtt): sampled (\d+), delivered (\d+), lost 0", line)
        if found:
            per_gateway[found.group(1)] = (int(found.group(2)), int(found.group(3)))
    assert per_gateway["mqtt"][0] > 0 and per_gateway["mqtt"][0] == per_gateway["mqtt"][1], result.stdout
    assert sum(s for s, _ in per_gateway.values()) == sampled
    assert re.search(r"^  pump-house/Flow rate +simulate +[1-9]\d* ", result.stdout, re.M), result.stdout
    # The commands sent through the emulator's broker, and the gateway's answers.
    actuator = "b827eb000001-pump-house-powerSwitch"
    blink = (
        f'controlActuator {{"id":"{actuator}","cmd":"blink","options":{{"interval":500,"duration":3000}}}}'
    )
    assert f'    {blink} -> {{"result":""}} in ' in result.stdout, result.stdout
    assert '    setProperty {"reportInterval":"2500"} -> {"result":""} in ' in result.stdout
    assert re.search(r'^    swInfo \{\} -> \{"result":\{"version":"[^"]+"\}\} in ', result.stdout, re.M)
    assert "  report interval now 2500 ms" in lines
    assert "  actuator pump-house/Pump power (powerSwitch, simulate): " in result.stdout


def test_demo_on_a_taken_port_given_by_name_exits_1() -> None:
    with taken_port() as port:
        result = gatewayd_demo("--duration", "1", "--port", str(port))
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr == (
        f"gatewayd: cannot serve the console on 127.0.0.1:{port}: the port is taken (--port 0 takes any free port)\n"
    )


# ------------------------------------------------------------------------------------------------ second start


async def test_two_daemons_started_together_on_one_state_dir_one_runs_the_other_exits_1(
    tmp_path: Path,
) -> None:
    async with emulator_env(tmp_path) as env:
        config = env.write_inventory()
        async with (
            gatewayd_run(config, tmp_path / "first.log") as first,
            gatewayd_run(config, tmp_path / "second.log") as second,
        ):
            done, _ = await asyncio.wait(
                {asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())},
                timeout=20,
                return_when=asyncio.FIRST_COMPLETED,
            )
            assert len(done) == 1, "exactly one of the two must stop at once"
            loser, runner = (first, second) if first.proc.returncode is not None else (second, first)
            assert loser.proc.returncode == 1
            message = (
                f"the daemon (pid {runner.proc.pid}) is running on state_dir {env.state_dir}; stop it first"
            )
            assert message in loser.log.read_text(encoding="utf-8")
            await until(lambda: delivered(env.tp) > 0, timeout=20, what="the runner's first points")
            assert runner.proc.returncode is None
            runner.proc.send_signal(signal.SIGTERM)
            assert await runner.wait() == 0
        assert not [e for e in loser.events() if e.get("event") == "daemon.running"]
        assert env.tp.requests["register_gateway"] == 1
        stopped = runner.event("daemon.stopped")
        on_disk = await pending_on_disk(env.state_dir)
        assert on_disk == stopped["pending_on_disk"] >= 0
        assert distinct_points(env.tp) + on_disk == stopped["sampled"] == stopped["uploaded"] + on_disk
        assert_no_duplicates(env.tp)
