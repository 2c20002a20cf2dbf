"""``gatewayd demo``: the emulator and two daemons together on loopback, with a live line and a verdict.

Two gateways in one process, each a :class:`Daemon` with its own state directory under the demo's
scratch directory: config/demo.yaml over HTTPS (OAuth2, a request per sensor, RCMS and loctube polled),
and config/demo-mqtt.yaml over MQTT against the emulator's broker, with a simulated power switch that the
demo commands through the emulator as the portal would (:mod:`gatewayd.demomqtt`). The emulator's web
console and each daemon's status page are served where :mod:`gatewayd.demopages` says, and the first line
printed says where.

Why the verdict is computed from the emulator: "lost 0" should mean the cloud really received every
sample, not that the daemon believes it sent them. Sampled = what a daemon read; delivered = distinct
points the emulated Thing+ accepted for its gateway; pending = what is still in its outbox on disk;
lost = the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, TextIO

from gatewayd import demomqtt
from gatewayd.compat import zip_strict
from gatewayd.demopages import daemon_page, reachable, start_console, url_of, urls_line
from gatewayd.emulator import EmulatorServer
from gatewayd.emulator.console import add_daemon_link
from gatewayd.emulator.thingplus import ThingPlusEmulator
from gatewayd.errors import ConfigError
from gatewayd.inventory.config import Inventory, load_inventory
from gatewayd.inventory.models import HttpConfig
from gatewayd.runtime.service import Daemon

#: Where the demo inventories are looked for: the source tree, then the installed copy (pyproject
#: data-files).
DEMO_DIRS = (
    Path(__file__).resolve().parent.parent / "config",
    Path(sys.prefix) / "share" / "gatewayd",
)
DEMO_REPORT_INTERVAL_MS = 5000


def find_config(name: str) -> Path | None:
    """``name`` in the source tree's config/ (what ``make run`` uses), else in the installed copy."""
    for directory in DEMO_DIRS:
        if (directory / name).exists():
            return directory / name
    return None


def default_config() -> Path:
    path = find_config("demo.yaml")
    if path is None:
        raise ConfigError(
            f"no demo inventory demo.yaml in {' or '.join(map(str, DEMO_DIRS))}: pass --config FILE"
        )
    return path


def point_inventory_at(inventory: Inventory, url: str, state_dir: Path, listen: str) -> Inventory:
    """The same inventory with every cloud endpoint on the emulator, state in a scratch directory and the
    status page (with /healthz, /metrics, /status) on ``listen``."""
    updates: dict[str, object] = {
        "state_dir": state_dir,
        "http": HttpConfig(listen=listen),
        "thingplus": inventory.thingplus.model_copy(update={"endpoint": url}),
    }
    if inventory.rcms is not None:
        updates["rcms"] = inventory.rcms.model_copy(update={"endpoint": url})
    if inventory.loctube is not None:
        updates["loctube"] = inventory.loctube.model_copy(update={"endpoint": url})
    return inventory.model_copy(update=updates)


def delivered_points(thingplus: ThingPlusEmulator, gateway_id: str | None = None) -> int:
    """Distinct (sensor, time) points the emulated Thing+ accepted (for one gateway's sensors, if given):
    duplicates do not count twice."""
    if gateway_id is None:
        sensor_ids = list(thingplus.points)
    else:
        sensor_ids = [str(record["id"]) for record in thingplus.sensors.of(gateway_id)]
    return sum(len({p.time for p in thingplus.points.get(sid, ())}) for sid in sensor_ids)


@dataclass
class DemoGateway:
    """One daemon of the demo: its label in the output, its inventory (as written) and the daemon."""

    label: str
    inventory: Inventory
    daemon: Daemon

    def gateway_id(self) -> str | None:
        registered = self.daemon.registered
        return registered.gateway_id if registered is not None else None

    def counts(self, thingplus: ThingPlusEmulator) -> tuple[int, int, int]:
        """(sampled, delivered, pending) of this gateway."""
        sampled = self.daemon.sampler.stats.sampled if self.daemon.sampler else 0
        pending = self.daemon.outbox.stats.pending if self.daemon.outbox else 0
        gateway_id = self.gateway_id()
        delivered = delivered_points(thingplus, gateway_id) if gateway_id is not None else 0
        return sampled, delivered, pending


async def run_demo(
    config: Path | None = None,
    duration: float | None = None,
    *,
    mqtt_config: Path | None = None,
    out: TextIO = sys.stdout,
    live_every_s: float = 3.0,
    report_interval_ms: int = DEMO_REPORT_INTERVAL_MS,
    host: str = "127.0.0.1",
    port: int | None = None,
) -> int:
    """Run until ``duration`` seconds pass or SIGINT/SIGTERM; print the summary; 0 when nothing was lost.

    ``mqtt_config`` is the MQTT gateway's inventory (default: config/demo-mqtt.yaml); without amqtt the
    demo runs the HTTPS gateway alone and says why. The console listens on ``host:port``
    (:func:`gatewayd.demopages.start_console` says how ``port`` None and 0 are taken); the first line
    printed says where it and the daemons' status pages are.
    """
    inventory = load_inventory(config or default_config())
    skipped = demomqtt.unavailable_reason()
    mqtt_path = mqtt_config or find_config(demomqtt.MQTT_DEMO_NAME)
    if skipped is None and mqtt_path is None:
        skipped = f"MQTT gateway not run: no {demomqtt.MQTT_DEMO_NAME} in {' or '.join(map(str, DEMO_DIRS))}"
    mqtt_inventory = load_inventory(mqtt_path) if skipped is None and mqtt_path is not None else None

    def emulator(on_port: int) -> EmulatorServer:
        return EmulatorServer(
            inventory,
            host=host,
            port=on_port,
            report_interval_ms=report_interval_ms,
            mqtt_port=0 if mqtt_inventory is not None else None,
        )

    server, moved = await start_console(emulator, port)
    with tempfile.TemporaryDirectory(prefix="gatewayd-demo-") as scratch:
        try:
            assert server.port is not None  # started
            pages = [daemon_page("https", inventory)]
            if mqtt_inventory is not None:
                pages.append(daemon_page("mqtt"))
            print(urls_line(url_of(server.host, server.port), pages), file=out, flush=True)
            for note in [moved, *(p.note() for p in pages)]:
                if note is not None:
                    print(f"gatewayd demo: {note}", file=out, flush=True)
            for page in pages:
                add_daemon_link(server.app, f"{page.label} gateway", page.url)
            endpoint = url_of(server.host, server.port).rstrip("/")
            thingplus = server.emulator.thingplus
            gateways = [
                DemoGateway(
                    "https",
                    inventory,
                    Daemon(
                        point_inventory_at(inventory, endpoint, Path(scratch) / "https", pages[0].listen),
                        grace_s=10.0,
                    ),
                )
            ]
            sensors = sum(len(d.sensors) for d in inventory.devices)
            print(
                f"gatewayd demo: emulated clouds on {endpoint}, {sensors} sensors, "
                f"reportInterval {report_interval_ms} ms",
                file=out,
                flush=True,
            )
            mqtt_gateway_id: str | None = None
            if mqtt_inventory is not None and server.mqtt_port is not None:
                mqtt_gateway_id = demomqtt.make_known(mqtt_inventory, thingplus)
                pointed = point_inventory_at(
                    mqtt_inventory, endpoint, Path(scratch) / "mqtt", pages[1].listen
                )
                broker = demomqtt.with_broker(
                    pointed, reachable(server.host), server.mqtt_port, report_interval_ms
                )
                gateways.append(DemoGateway("mqtt", mqtt_inventory, Daemon(broker, grace_s=10.0)))
                print(
                    f"gatewayd demo: MQTT gateway {mqtt_gateway_id}, "
                    f"{sum(len(d.sensors) for d in mqtt_inventory.devices)} sensors and "
                    f"{sum(len(d.actuators) for d in mqtt_inventory.devices)} actuator(s), "
                    f"on the emulator's broker mqtt://{reachable(server.host)}:{server.mqtt_port}",
                    file=out,
                    flush=True,
                )
            else:
                print(f"gatewayd demo: {skipped}", file=out, flush=True)
            sent: list[demomqtt.SentCommand] = []
            await _run(
                gateways, thingplus, mqtt_gateway_id, sent, duration, out, live_every_s, report_interval_ms
            )
            return _summary(gateways, thingplus, sent, out)
        finally:
            await server.stop()


async def _run(
    gateways: list[DemoGateway],
    thingplus: ThingPlusEmulator,
    mqtt_gateway_id: Optional[str],  # noqa: UP045
    sent: list[demomqtt.SentCommand],
    duration: float | None,
    out: TextIO,
    live_every_s: float,
    report_interval_ms: int,
) -> None:
    """Run the daemons (and the commands to the MQTT one) until ``duration`` or a signal, then stop them."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(g.daemon.run()) for g in gateways]
    commands: asyncio.Task[None] | None = None
    if mqtt_gateway_id is not None:
        commands = asyncio.create_task(
            demomqtt.send_commands(thingplus, mqtt_gateway_id, report_interval_ms, sent)
        )
    started = time.monotonic()
    try:
        while not stop.is_set() and not any(t.done() for t in tasks):
            timeout = live_every_s
            if duration is not None:
                timeout = min(timeout, max(0.0, started + duration - time.monotonic()))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=timeout)
            if duration is not None and time.monotonic() - started >= duration:
                stop.set()
            print(
                _live_line(gateways, thingplus, len(sent), time.monotonic() - started), file=out, flush=True
            )
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if commands is not None:
            commands.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await commands
        for g in gateways:
            g.daemon.stop()
        await asyncio.gather(*tasks)


def _summary(
    gateways: list[DemoGateway], thingplus: ThingPlusEmulator, sent: list[demomqtt.SentCommand], out: TextIO
) -> int:
    """Each gateway's sensors, the MQTT gateway's actuators and commands, then one verdict line each and
    the total last. Returns the exit status: 0 when nothing was lost."""
    for g in gateways:
        print(
            f"{g.label} gateway {g.gateway_id() or '(not registered)'} ({g.inventory.gateway.name}):",
            file=out,
        )
        print(_sensor_table(g.daemon, g.inventory, thingplus), file=out)
        snapshot = g.daemon.snapshot()
        for row in snapshot.actuators:
            print(
                f"  actuator {row.key} ({row.type}, {row.target}): {row.state}, {row.commands} command(s), "
                f"last {row.last_command or '-'}",
                file=out,
            )
        if g.label == "https":
            polls = {f"{c}:{r}": n for (c, r), n in sorted(g.daemon.poll_stats.polls.items())}
            print(f"  polls: {polls or 'none'}", file=out)
        else:
            print(f"  report interval now {g.daemon.report_interval_ms} ms", file=out)
            print("  commands sent through the emulator (as the portal sends them):", file=out)
            for command in sent:
                print(f"    {command.line()}", file=out)
            if not sent:
                print("    none (the gateway was not connected in time)", file=out)
    totals = [0, 0, 0]
    for g in gateways:
        sampled, delivered, pending = g.counts(thingplus)
        print(f"{g.label}: {_verdict(sampled, delivered, pending)}", file=out)
        totals = [totals[0] + sampled, totals[1] + delivered, totals[2] + pending]
    print(_verdict(*totals), file=out, flush=True)
    return 0 if totals[0] - totals[1] - totals[2] <= 0 else 1


def _verdict(sampled: int, delivered: int, pending: int) -> str:
    lost = max(0, sampled - delivered - pending)
    tail = f", pending {pending} (kept on disk)" if pending else ""
    return f"sampled {sampled}, delivered {delivered}, lost {lost}{tail}"


def _sensor_table(daemon: Daemon, inventory: Inventory, thingplus: ThingPlusEmulator) -> str:
    """One line per sensor: where its values come from, what Thing+ got last, and its status."""
    kinds = {(d.name, s.name): s.source_kind for d, s in inventory.sensors()}
    rows = [("sensor", "source", "delivered", "latest", "status")]
    for runtime in daemon.sampler.sensors if daemon.sampler else []:
        # Over MQTT the Thing+ id is made from the cloud's templates; over HTTPS it is the local id.
        cloud_id = daemon.registry.cloud_id(runtime.device, runtime.name) or runtime.sensor_id
        points = thingplus.points.get(cloud_id, [])
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


def _live_line(
    gateways: list[DemoGateway], thingplus: ThingPlusEmulator, commands: int, elapsed: float
) -> str:
    parts = []
    for g in gateways:
        sampled, delivered, pending = g.counts(thingplus)
        sensors = len(g.daemon.sampler.sensors) if g.daemon.sampler else 0
        registered = "registered" if g.daemon.registered else "registering"
        part = (
            f"{g.label} {registered}: {sensors} sensors, sampled {sampled}, delivered {delivered}, "
            f"pending {pending}"
        )
        if g.label == "mqtt":
            part += f", commands {commands}"
        parts.append(part)
    return f"[{elapsed:6.1f}s] " + " | ".join(parts)
