"""Shared pieces of the daemon integration tests: inventories, a deadline helper, a running daemon.

Everything is real: the emulator serves HTTP on 127.0.0.1, the outbox is SQLite in ``tmp_path``, and the
daemon's APScheduler fires the jobs. Timing is never asserted with fixed sleeps: :func:`until` polls a
condition up to a deadline, and bounds on periods are generous.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from gatewayd.clouds.http import RetryPolicy
from gatewayd.emulator import EmulatorServer
from gatewayd.emulator.thingplus import Point, ThingPlusEmulator
from gatewayd.inventory.config import HttpConfig, Inventory, load_inventory, parse_inventory
from gatewayd.runtime.service import Daemon, Hooks
from tests.helpers.inventories import inventory_yaml, loctube, rcms
from tests.helpers.ports import free_port
from tests.helpers.waiting import until

ROOT = Path(__file__).resolve().parents[2]

#: Registration retried quickly while the cloud is away (the production default starts at 1 s).
FAST_CONNECT = RetryPolicy(attempts=10**9, base=0.05, cap=0.2)
#: Per-call retries kept short so an outage is noticed (and left) quickly.
FAST_CALL = RetryPolicy(attempts=2, base=0.05, cap=0.2)

#: MQTT: reconnect at once in tests (the production wait is at least 10 s, as the platform asks).
FAST_RECONNECT = RetryPolicy(attempts=10**9, base=0.2, cap=0.5)

#: Two sensors on one device, at two sampling intervals.
SENSORS = """\
- name: Room
  sensors:
    - name: Temperature
      type: temperature
      interval: 200ms
      simulate: {pattern: sine, min: 18, max: 26, period: 1m, seed: 1}
    - name: Humidity
      type: humidity
      interval: 100ms
      simulate: {pattern: random_walk, min: 40, max: 80, step: 1, seed: 2}
"""

#: SENSORS plus a third sensor on a second device.
THREE_SENSORS = (
    SENSORS
    + """\
- name: Cellar
  sensors:
    - name: Level
      type: percent
      interval: 150ms
      simulate: {pattern: uniform, min: 0, max: 100, seed: 3}
"""
)


def inventory_text(
    endpoint: str,
    state_dir: Path,
    *,
    devices: str = SENSORS,
    extra: str = "",
) -> str:
    """An inventory YAML with every cloud at ``endpoint``.

    ``extra`` adds top-level sections (rcms, loctube); ``@endpoint@`` in it becomes ``endpoint``.
    """
    return inventory_yaml(
        endpoint,
        gateway='{name: "Integration gateway", model: "52"}',
        state_dir=state_dir,
        sections=textwrap.dedent(extra).replace("@endpoint@", endpoint),
        devices=textwrap.indent(textwrap.dedent(devices), "  "),
    )


def polled_sections(auth: str, *, rcms_interval: str = "60s") -> str:
    """RCMS (one router) and loctube (one device) beside Thing+, for ``extra``.

    RCMS keeps one record a minute, so the first poll (one interval back) must span a minute boundary.
    """
    return rcms("@endpoint@", poll_interval=rcms_interval, devices=["IT-SN-0001"]) + loctube(
        "@endpoint@", sign="sha256", auth=auth, poll_interval="300ms", devices=["test001"]
    )


def make_inventory(endpoint: str, state_dir: Path, **kw: Any) -> Inventory:
    return parse_inventory(inventory_text(endpoint, state_dir, **kw), "<test>", env={})


def describe(daemon: Daemon, tp: ThingPlusEmulator | None = None) -> str:
    """The daemon's (and the emulated Thing+'s) state in a few lines, for a failure message."""
    snapshot = daemon.snapshot()
    lines = [f"registration: {snapshot.registration} reporting: {snapshot.reporting}"]
    if daemon.sampler is not None:
        lines.append(f"sampler: {daemon.sampler.stats}")
        lines.extend(f"  {s.key} {s.sensor_id} reads={s.reads} ok={s.ok}" for s in daemon.sampler.sensors)
    if daemon.buffer is not None:
        lines.append(f"buffer: {len(daemon.buffer)} points, committed {daemon.buffer.committed}")
    if daemon.outbox is not None:
        lines.append(f"outbox: {daemon.outbox.stats} leased={sorted(daemon.outbox.leased)}")
    if daemon.disk_guard is not None:
        lines.append(f"storage: {daemon.disk_guard.as_json()}")
    if daemon.uploader is not None:
        lines.append(f"uploader: {daemon.uploader.stats} sendable={len(daemon.uploader.sendable)}")
    lines.extend(f"task {t.get_name()} running" for t in daemon.supervisor.tasks())
    if tp is not None:
        lines.append(f"thingplus requests: {dict(tp.requests)} rejections: {dict(tp.rejections)}")
        for sid, points in tp.points.items():
            last = points[-1] if points else None
            lines.append(f"  {sid}: {len(points)} points, last {last}")
    return "\n".join(lines)


def points_of(tp: ThingPlusEmulator, sensor_id: str) -> list[Point]:
    return tp.points.get(sensor_id, [])


def times_of(tp: ThingPlusEmulator, sensor_id: str) -> list[int]:
    """A sensor's point times in the order Thing+ received them (duplicates kept)."""
    return [p.time for p in points_of(tp, sensor_id)]


def delivered(tp: ThingPlusEmulator) -> int:
    return sum(len(points) for points in tp.points.values())


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Running:
    """A daemon running as a task of the test's event loop."""

    daemon: Daemon
    task: asyncio.Task[None]

    async def stop(self, within_s: float = 20.0) -> None:
        """Stop it and wait for :meth:`Daemon.run` to return (re-raising what it raised)."""
        self.daemon.stop()
        await asyncio.wait_for(asyncio.shield(self.task), timeout=within_s)


@contextlib.asynccontextmanager
async def running(
    inventory: Inventory,
    *,
    inventory_path: Path | None = None,
    grace_s: float = 10.0,
    wait_ready: bool = True,
    hooks: Hooks | None = None,
    mqtt_reconnect: RetryPolicy = FAST_RECONNECT,
) -> AsyncIterator[Running]:
    """Run a daemon with fast retry policies; stopped (if still running) when the block ends."""
    daemon = Daemon(
        inventory,
        inventory_path=inventory_path,
        hooks=hooks,
        grace_s=grace_s,
        connect_policy=FAST_CONNECT,
        call_policy=FAST_CALL,
        mqtt_reconnect=mqtt_reconnect,
    )
    task = asyncio.create_task(daemon.run(), name="daemon under test")
    run = Running(daemon, task)
    try:
        if wait_ready:
            ready = asyncio.create_task(daemon.ready.wait())
            await asyncio.wait({ready, task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            if task.done():
                task.result()  # raises what run() raised
            assert daemon.ready.is_set(), "daemon did not start sampling within 10 s"
        yield run
    finally:
        if not task.done():
            daemon.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, timeout=30)


@dataclass
class Env:
    """One test's emulator and state directory."""

    server: EmulatorServer
    state_dir: Path
    tmp_path: Path
    #: Extra inventory sections the emulator was built for (see :func:`inventory_text`).
    extra: str = ""

    @property
    def tp(self) -> ThingPlusEmulator:
        return self.server.emulator.thingplus

    def inventory(self, **kw: Any) -> Inventory:
        kw.setdefault("extra", self.extra)
        return make_inventory(self.server.url, self.state_dir, **kw)

    def write_inventory(self, name: str = "inventory.yaml", **kw: Any) -> Path:
        kw.setdefault("extra", self.extra)
        path = self.tmp_path / name
        path.write_text(inventory_text(self.server.url, self.state_dir, **kw), encoding="utf-8")
        return path

    def load(self, path: Path) -> Inventory:
        return load_inventory(path, env={})


@contextlib.asynccontextmanager
async def emulator_env(
    tmp_path: Path, *, report_interval_ms: int = 500, extra: str = "", port: int = 0
) -> AsyncIterator[Env]:
    """An emulator for the standard test inventory (plus ``extra`` sections) on loopback."""
    spec = make_inventory("http://127.0.0.1:9", tmp_path / "state", extra=extra)
    async with EmulatorServer(spec, port=port, report_interval_ms=report_interval_ms) as server:
        yield Env(server, tmp_path / "state", tmp_path, extra)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    """An emulator handing out reportInterval 500 ms, and a fresh state directory."""
    async with emulator_env(tmp_path) as e:
        yield e


# ------------------------------------------------------------------------------------------------ ops side


def with_http(inventory: Inventory) -> tuple[Inventory, str]:
    """The inventory serving its ops endpoints on a free loopback port, and the base URL."""
    listen = f"127.0.0.1:{free_port()}"
    return inventory.model_copy(update={"http": HttpConfig(listen=listen)}), f"http://{listen}"


def write_with_http(env: Env, listen: str) -> Path:
    """The test inventory as a file (for the CLI), serving its ops endpoints on ``listen``."""
    path = env.tmp_path / "inventory.yaml"
    extra = f'http: {{listen: "{listen}"}}\n'
    path.write_text(inventory_text(env.server.url, env.state_dir, extra=extra), encoding="utf-8")
    return path


async def get(url: str) -> tuple[int, str, dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.text(), dict(resp.headers)


class Metrics:
    """One /metrics scrape, parsed by prometheus-client."""

    def __init__(self, text: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples: list[Sample] = [s for f in self.families.values() for s in f.samples]

    def find(self, name: str, **labels: str) -> list[Sample]:
        return [s for s in self.samples if s.name == name and labels.items() <= s.labels.items()]

    def value(self, name: str, **labels: str) -> float:
        found = self.find(name, **labels)
        assert len(found) == 1, f"expected one sample {name}{labels}, found {found}"
        return float(found[0].value)

    def total(self, name: str, **labels: str) -> float:
        return sum(float(s.value) for s in self.find(name, **labels))


def sensor_ids(daemon: Daemon) -> dict[str, str]:
    """'device/sensor' -> Thing+ sensor id, for the sensors the daemon samples now."""
    assert daemon.sampler is not None
    return {s.key: s.sensor_id for s in daemon.sampler.sensors}


def every_sensor_has_points_after(tp: ThingPlusEmulator, daemon: Daemon, after_ms: int) -> bool:
    return all(any(t > after_ms for t in times_of(tp, sid)) for sid in sensor_ids(daemon).values())


def assert_delivered_exactly_once(daemon: Daemon, tp: ThingPlusEmulator) -> None:
    """After a stop: nothing pending, and per sensor every read arrived once, in time order."""
    assert daemon.outbox is not None and daemon.sampler is not None
    assert daemon.outbox.stats.pending == 0
    assert daemon.sampler.stats.sampled > 0
    for sensor in daemon.sampler.sensors:
        times = times_of(tp, sensor.sensor_id)
        assert len(times) == len(set(times)), f"{sensor.key}: duplicate points"
        assert times == sorted(times), f"{sensor.key}: not received oldest first"
        assert len(times) == sensor.reads, f"{sensor.key}: sampled {sensor.reads}, received {len(times)}"
    assert delivered(tp) == daemon.sampler.stats.sampled


async def until_registered_and_polled(daemon: Daemon) -> None:
    """Until the daemon is registered and has polled RCMS and loctube once each (:func:`polled_sections`)."""
    polls = daemon.poll_stats.polls
    await until(
        lambda: (
            daemon.registered is not None
            and polls.get(("rcms", "ok"), 0) >= 1
            and polls.get(("loctube", "ok"), 0) >= 1
        ),
        what="registration and a poll of each cloud",
    )


async def healthz(base: str) -> tuple[int, dict[str, Any]]:
    status, text, headers = await get(f"{base}/healthz")
    assert "application/json" in headers.get("Content-Type", ""), headers
    return status, json.loads(text)


async def until_health(base: str, status: int, limit_s: float = 10.0) -> dict[str, Any]:
    """Poll /healthz until it answers ``status``; its JSON body then."""
    deadline = time.monotonic() + limit_s
    seen: list[tuple[int, str]] = []
    while True:
        code, body = await healthz(base)
        if code == status:
            return body
        if not seen or seen[-1] != (code, body["reason"]):
            seen.append((code, body["reason"]))
        if time.monotonic() >= deadline:
            pytest.fail(f"/healthz did not answer {status} within {limit_s:g}s; answers: {seen}")
        await asyncio.sleep(0.05)


async def scrape(base: str) -> Metrics:
    status, text, headers = await get(f"{base}/metrics")
    assert status == 200
    assert headers.get("Content-Type", "").startswith("text/plain"), headers
    return Metrics(text)


async def gatewayd_cli(*args: str) -> tuple[int, str, str]:
    """``gatewayd ARGS...`` as a child process, without blocking the loop a daemon under test runs on:
    its exit status, stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gatewayd",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


# ------------------------------------------------------------------------------------------------ MQTT


@pytest.fixture
def mqtt_broker(tmp_path: Path) -> Iterator[Any]:
    """mosquitto with a password file and an ACL for the test gateway (swap this fixture for another
    broker that knows the same accounts)."""
    from tests.helpers.mosquitto import Mosquitto, mosquitto_path
    from tests.helpers.mqttenv import MQTT_APIKEY, MQTT_GATEWAY

    if mosquitto_path() is None:
        pytest.skip("mosquitto is not installed (apt-get install -y mosquitto; .ci/run installs it)")
    broker = Mosquitto(tmp_path / "mosquitto", {MQTT_GATEWAY: MQTT_APIKEY})
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
async def mqtt_env(tmp_path: Path, mqtt_broker: Any) -> AsyncIterator[Any]:
    """The broker, the discovery REST stand-in, a state directory (tests.helpers.mqttenv.MqttEnv)."""
    from tests.conftest import loopback_server
    from tests.helpers.discoveryrest import DiscoveryRest
    from tests.helpers.mqttenv import MQTT_APIKEY, MQTT_GATEWAY, MqttEnv

    rest = DiscoveryRest({MQTT_GATEWAY: MQTT_APIKEY})
    async with loopback_server(rest.handle) as url:
        yield MqttEnv(mqtt_broker, rest, url, tmp_path / "state", tmp_path)


@pytest.fixture
async def emulator_mqtt_env(tmp_path: Path) -> AsyncIterator[Any]:
    """The emulator built from the MQTT test gateway's inventory, serving its discovery REST and its MQTT
    broker on loopback, as a tests.helpers.mqttenv.MqttEnv (``rest`` is the emulated Thing+). The
    emulator's reportInterval (what its gateway records say) is 1 s, like the inventory's."""
    pytest.importorskip("amqtt", reason="the emulator's MQTT broker needs amqtt (Python >= 3.10)")
    from tests.helpers.mqttenv import EmulatorBroker, MqttEnv, emulator_inventory

    state_dir = tmp_path / "state"
    spec = emulator_inventory(state_dir, tmp_path)
    async with EmulatorServer(spec, report_interval_ms=1000, mqtt_port=0) as server:
        tp = server.emulator.thingplus
        yield MqttEnv(EmulatorBroker(server), tp, server.url, state_dir, tmp_path)


@contextlib.asynccontextmanager
async def killed_daemon_child(env: Any, *, backlog: int, within_s: float) -> AsyncIterator[None]:
    """``gatewayd run`` on ``env``'s MQTT inventory (a tests.helpers.mqttenv.MqttEnv) as a child process;
    the body runs while it samples (e.g. an outage starts), then the exit waits until its outbox holds
    ``backlog`` points (read from its /status) and SIGKILLs it: the power cut of the lose-nothing tests."""
    import signal

    listen = f"127.0.0.1:{free_port()}"
    path = env.tmp_path / "inventory.yaml"
    path.write_text(env.inventory_text(extra=f'http: {{listen: "{listen}"}}\n'))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gatewayd", "run", "--config", str(path), stderr=asyncio.subprocess.DEVNULL
    )

    async def pending() -> int:
        try:
            _, text, _ = await get(f"http://{listen}/status")
        except OSError:
            return -1  # not serving yet
        return int(json.loads(text)["outbox"]["pending"])

    try:
        yield
        deadline = time.monotonic() + within_s
        while await pending() < backlog:
            assert time.monotonic() < deadline, f"the daemon kept no {backlog} points within {within_s} s"
            await asyncio.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()


@pytest.fixture
async def peer() -> AsyncIterator[Any]:
    """A Modbus TCP device on loopback (tests.helpers.modbuspeer.TcpPeer); stopped with no answer pending."""
    from tests.helpers.modbuspeer import SLOW_S, TcpPeer

    server = TcpPeer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
        await asyncio.wait_for(server.slow.idle.wait(), SLOW_S + 1)
