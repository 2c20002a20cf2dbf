"""``gatewayd demo``: the emulator and the daemon together on loopback, with a live line and a verdict.

Why the verdict is computed from the emulator: "lost 0" should mean the cloud really received every
sample, not that the daemon believes it sent them. Sampled = what the daemon read; delivered = distinct
points the emulated Thing+ accepted; pending = what is still in the outbox on disk; lost = the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

from gatewayd.compat import zip_strict
from gatewayd.emulator import EmulatorServer
from gatewayd.emulator.thingplus import ThingPlusEmulator
from gatewayd.errors import ConfigError
from gatewayd.inventory.config import Inventory, load_inventory
from gatewayd.runtime.service import Daemon

#: Where the demo inventory is looked for: the source tree, then the installed copy (pyproject data-files).
DEMO_CONFIGS = (
    Path(__file__).resolve().parent.parent / "config" / "demo.yaml",
    Path(sys.prefix) / "share" / "gatewayd" / "demo.yaml",
)
DEMO_REPORT_INTERVAL_MS = 5000


def default_config() -> Path:
    """config/demo.yaml of the source tree (what ``make run`` uses), else the installed copy."""
    for path in DEMO_CONFIGS:
        if path.exists():
            return path
    raise ConfigError(f"no demo inventory at {' or '.join(map(str, DEMO_CONFIGS))}: pass --config FILE")


def point_inventory_at(inventory: Inventory, url: str, state_dir: Path) -> Inventory:
    """The same inventory with every cloud endpoint on the emulator and state in a scratch directory."""
    updates: dict[str, object] = {
        "state_dir": state_dir,
        "http": None,
        "thingplus": inventory.thingplus.model_copy(update={"endpoint": url}),
    }
    if inventory.rcms is not None:
        updates["rcms"] = inventory.rcms.model_copy(update={"endpoint": url})
    if inventory.loctube is not None:
        updates["loctube"] = inventory.loctube.model_copy(update={"endpoint": url})
    return inventory.model_copy(update=updates)


def delivered_points(thingplus: ThingPlusEmulator) -> int:
    """Distinct (sensor, time) points the emulated Thing+ accepted: duplicates do not count twice."""
    return sum(len({p.time for p in points}) for points in thingplus.points.values())


async def run_demo(
    config: Path | None = None,
    duration: float | None = None,
    *,
    out: TextIO = sys.stdout,
    live_every_s: float = 3.0,
    report_interval_ms: int = DEMO_REPORT_INTERVAL_MS,
) -> int:
    """Run until ``duration`` seconds pass or SIGINT/SIGTERM; print the summary; 0 when nothing was lost."""
    inventory = load_inventory(config or default_config())
    with tempfile.TemporaryDirectory(prefix="gatewayd-demo-") as scratch:
        async with EmulatorServer(inventory, port=0, report_interval_ms=report_interval_ms) as server:
            thingplus = server.emulator.thingplus
            daemon = Daemon(point_inventory_at(inventory, server.url, Path(scratch)), grace_s=10.0)
            sensors = sum(len(d.sensors) for d in inventory.devices)
            print(
                f"gatewayd demo: emulated clouds on {server.url}, {sensors} sensors, "
                f"reportInterval {report_interval_ms} ms",
                file=out,
                flush=True,
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            task = asyncio.create_task(daemon.run())
            started = time.monotonic()
            try:
                while not stop.is_set() and not task.done():
                    timeout = live_every_s
                    if duration is not None:
                        timeout = min(timeout, max(0.0, started + duration - time.monotonic()))
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=timeout)
                    if duration is not None and time.monotonic() - started >= duration:
                        stop.set()
                    print(_live_line(daemon, thingplus, time.monotonic() - started), file=out, flush=True)
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
                daemon.stop()
                await task
            sampled = daemon.sampler.stats.sampled if daemon.sampler else 0
            pending = daemon.outbox.stats.pending if daemon.outbox else 0
            delivered = delivered_points(thingplus)
            lost = max(0, sampled - delivered - pending)
            print(_sensor_table(daemon, inventory, thingplus), file=out)
            polls = {f"{c}:{r}": n for (c, r), n in sorted(daemon.poll_stats.polls.items())}
            print(f"polls: {polls or 'none'}", file=out)
            tail = f", pending {pending} (kept on disk)" if pending else ""
            print(f"sampled {sampled}, delivered {delivered}, lost {lost}{tail}", file=out, flush=True)
            return 0 if lost == 0 else 1


def _sensor_table(daemon: Daemon, inventory: Inventory, thingplus: ThingPlusEmulator) -> str:
    """One line per sensor: where its values come from, what Thing+ got last, and its status."""
    kinds = {(d.name, s.name): s.source_kind for d, s in inventory.sensors()}
    rows = [("sensor", "source", "delivered", "latest", "status")]
    for runtime in daemon.sampler.sensors if daemon.sampler else []:
        points = thingplus.points.get(runtime.sensor_id, [])
        latest = str(points[-1].value) if points else "-"
        rows.append(
            (
                runtime.key,
                kinds.get((runtime.device, runtime.name), "?"),
                str(len(points)),
                latest[:24],
                runtime.status,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join("  " + "  ".join(cell.ljust(w) for cell, w in zip_strict(row, widths)) for row in rows)


def _live_line(daemon: Daemon, thingplus: ThingPlusEmulator, elapsed: float) -> str:
    sampled = daemon.sampler.stats.sampled if daemon.sampler else 0
    pending = daemon.outbox.stats.pending if daemon.outbox else 0
    sensors = len(daemon.sampler.sensors) if daemon.sampler else 0
    registered = "registered" if daemon.registered else "registering"
    return (
        f"[{elapsed:6.1f}s] {registered}: {sensors} sensors, sampled {sampled}, "
        f"delivered {delivered_points(thingplus)}, pending {pending}"
    )
