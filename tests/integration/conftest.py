"""Shared pieces of the daemon integration tests: inventories, a deadline helper, a running daemon.

Everything is real: the emulator serves HTTP on 127.0.0.1, the outbox is SQLite in ``tmp_path``, and the
daemon's APScheduler fires the jobs. Timing is never asserted with fixed sleeps: :func:`until` polls a
condition up to a deadline, and bounds on periods are generous.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gatewayd.clouds.http import RetryPolicy
from gatewayd.config import Inventory, load_inventory, parse_inventory
from gatewayd.emulator import EmulatorServer
from gatewayd.emulator.thingplus import Point, ThingPlusEmulator
from gatewayd.service import Daemon, Hooks

#: Registration retried quickly while the cloud is away (the production default starts at 1 s).
FAST_CONNECT = RetryPolicy(attempts=10**9, base=0.05, cap=0.2)
#: Per-call retries kept short so an outage is noticed (and left) quickly.
FAST_CALL = RetryPolicy(attempts=2, base=0.05, cap=0.2)

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
    text = textwrap.dedent(
        f"""\
        gateway: {{name: "Integration gateway", model: "52"}}
        state_dir: {state_dir}
        thingplus:
          endpoint: {endpoint}
          client_id: itClient
          client_secret: itSecret
          username: it-user
          password: it-password
        """
    )
    if extra:
        text += textwrap.dedent(extra).replace("@endpoint@", endpoint)
    text += "devices:\n" + textwrap.indent(textwrap.dedent(devices), "  ")
    return text


def make_inventory(endpoint: str, state_dir: Path, **kw: Any) -> Inventory:
    return parse_inventory(inventory_text(endpoint, state_dir, **kw), "<test>", env={})


def free_port() -> int:
    """A loopback port nothing listens on right now (the kernel's pick, released at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until(
    cond: Callable[[], Any],
    timeout: float = 10.0,  # noqa: ASYNC109 - a deadline for polling a condition, not one awaited call
    *,
    every: float = 0.02,
    what: str = "",
    explain: Callable[[], str] | None = None,
) -> None:
    """Wait until ``cond()`` is true, polling; fail the test with ``what`` when ``timeout`` passes.

    ``explain`` (called only on failure) adds what the test knows about the state, e.g. :func:`describe`.
    """
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() >= deadline:
            detail = f"\n{explain()}" if explain is not None else ""
            pytest.fail(
                f"timed out after {timeout:g}s waiting for {what or getattr(cond, '__name__', cond)}{detail}"
            )
        await asyncio.sleep(every)


def describe(daemon: Daemon, tp: ThingPlusEmulator | None = None) -> str:
    """The daemon's (and the emulated Thing+'s) state in a few lines, for a failure message."""
    lines = [f"registered={daemon.registered is not None} report_interval_ms={daemon.report_interval_ms}"]
    if daemon.sampler is not None:
        lines.append(f"sampler: {daemon.sampler.stats}")
        lines.extend(f"  {s.key} {s.sensor_id} reads={s.reads} ok={s.ok}" for s in daemon.sampler.sensors)
    if daemon.buffer is not None:
        lines.append(f"buffer: {len(daemon.buffer)} points, committed {daemon.buffer.committed}")
    if daemon.outbox is not None:
        lines.append(f"outbox: {daemon.outbox.stats} leased={sorted(daemon.outbox._leased)}")
    if daemon.uploader is not None:
        lines.append(f"uploader: {daemon.uploader.stats} sendable={len(daemon.uploader.sendable)}")
    if daemon.scheduler is not None:
        lines.extend(f"job {job.id} next={job.next_run_time}" for job in daemon.scheduler.get_jobs())
    lines.extend(f"task {t.get_name()} done={t.done()}" for t in daemon._tasks)
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
) -> AsyncIterator[Running]:
    """Run a daemon with fast retry policies; stopped (if still running) when the block ends."""
    daemon = Daemon(
        inventory,
        inventory_path=inventory_path,
        hooks=hooks,
        grace_s=grace_s,
        connect_policy=FAST_CONNECT,
        call_policy=FAST_CALL,
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
