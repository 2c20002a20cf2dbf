"""The ``gatewayd`` command line.

Exit status is a contract: 0 on a clean stop (SIGTERM/SIGINT), 2 for bad configuration or usage, 1 for
anything else. Problems are printed as located one-line messages, never as tracebacks (unless
``--log-level debug``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import structlog

from gatewayd import __version__, eventloop
from gatewayd.cliargs import add_config, add_demo_options, load_config_arg, require_config
from gatewayd.cliargs import duration as _duration
from gatewayd.cliargs import port as _port
from gatewayd.cliargs import positive_seconds as _positive_seconds
from gatewayd.errors import CloudError, ConfigError, GatewaydError
from gatewayd.fleet.cli import add_fleet_run_options
from gatewayd.fleet.reportcli import add_fleet_report_parser
from gatewayd.logging import LEVELS, resolve_level, setup_logging
from gatewayd.ops.oneshotcli import add_oneshot_parsers, print_json
from gatewayd.ops.outboxcli import add_outbox_parser

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

log = structlog.get_logger("gatewayd.cli")

T = TypeVar("T")


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors name the program and exit 2 like every other bad input."""

    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _add_log_level(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        choices=LEVELS,
        type=str.lower,
        default=None,
        help="debug|info|warning|error|critical (default: $GATEWAYD_LOG_LEVEL or info)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gatewayd",
        description=(
            "Thing+ Open API Gateway daemon: samples the sensors in an inventory, registers them on Thing+, "
            "sends status heartbeats and batched series, and polls RCMS and loctube. Data waits in a "
            "durable outbox while the uplink is down."
        ),
        epilog="Environment: GATEWAYD_CONFIG, GATEWAYD_LOG_LEVEL, GATEWAYD_EVENT_LOOP (auto|uvloop|asyncio). "
        "Exit status: 0 clean stop, 2 bad configuration or usage, 1 any other failure.",
    )
    parser.add_argument("--version", action="version", version=f"gatewayd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    _command(
        sub,
        "check",
        cmd_check,
        help="validate an inventory and print a summary",
        description="Validate an inventory; every problem is printed as FILE:LINE:COL: path: message.",
    )
    _command(
        sub,
        "run",
        cmd_run,
        help="run the daemon (SIGTERM/SIGINT stop it cleanly, SIGHUP reloads the inventory)",
        description="Run the gateway: sample, register on Thing+, report, poll RCMS and loctube. "
        "SIGTERM/SIGINT stop it (pending points get a grace period, the rest stay on disk); "
        "SIGHUP re-reads the inventory. With http.listen set it serves its read-only status page at / "
        "and /status, /healthz and /metrics there.",
        log_level=True,
    )
    p = _command(
        sub,
        "health",
        cmd_health,
        help="ask a running daemon's /healthz (exit 0 healthy, 1 not): for container HEALTHCHECKs",
        description="GET http://<http.listen>/healthz of the daemon the inventory describes; print its "
        "answer; exit 0 on 200, 1 otherwise (unreachable, 503, no http section).",
    )
    p.add_argument("--timeout", type=_positive_seconds, default=5.0, metavar="S", help="default 5")

    p = sub.add_parser(
        "demo",
        help="the local simulation: emulated clouds and the daemon on loopback, no account needed",
        description="Start the emulator with config/demo.yaml (or --config) and its web console on "
        "http://127.0.0.1:8080/ (--host, --port), run the daemon against it with its status page on the "
        "inventory's http.listen and, beside it, a second gateway over MQTT (config/demo-mqtt.yaml, or "
        "--mqtt-config; needs amqtt) that is sent commands through the emulator. The first line printed says "
        "where the console and each daemon's page are; then a live line every few seconds and, at the end "
        "(Ctrl-C or --duration), the commands and their answers and 'sampled N, delivered N, lost N' per "
        "gateway and in total, computed from what the emulator received.",
    )
    add_demo_options(p)
    p.set_defaults(handler=cmd_demo)

    p = _command(
        sub,
        "emulator",
        cmd_emulator,
        help="serve emulated Thing+, RCMS and loctube clouds for an inventory's credentials",
        description="Serve the three clouds on HOST:PORT, accepting exactly the credentials in the "
        "inventory, until SIGTERM/SIGINT. A live web console at http://HOST:PORT/ (open it in a "
        "browser: the clouds, gateways, sensors and charts, and controls for faults and commands); "
        "fault injection and state: /_emulator/...",
        log_level=True,
    )
    p.add_argument("--port", "-p", type=_port, required=True, help="TCP port (0 = any free port)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--report-interval",
        type=int,
        default=60000,
        metavar="MS",
        help="the gateway reportInterval Thing+ hands out, in ms (default 60000, like the real platform)",
    )
    p.add_argument(
        "--series-max-age",
        type=_duration,
        default="5d",
        metavar="D",
        help="Thing+ refuses series points older than D (400 INVALID_INPUT), e.g. 90s, 30m, 2d (default 5d, "
        "like the real platform)",
    )
    p.add_argument(
        "--mqtt-port",
        type=_port,
        default=None,
        metavar="P",
        help="also serve Thing+'s MQTT broker on HOST:P (0 = any free port; default: no broker); needs "
        "the emulator-mqtt extra (amqtt, Python >= 3.10)",
    )
    p.add_argument(
        "--shards",
        type=int,
        default=None,
        metavar="K",
        help="of a fleet inventory over MQTT: the shard count its {shard} placeholders are filled with "
        "(default: $GATEWAYD_FLEET_SHARDS, else 1)",
    )

    add_oneshot_parsers(sub, _Parser, _add_log_level)
    add_outbox_parser(sub, add_config, _add_log_level)
    fleet = _command(
        sub,
        "fleet",
        None,
        help="run many simulated Thing+ gateways from one fleet inventory (or a shard of them)",
        description="Run the gateways of a fleet inventory (its 'fleet:' section) in this process, or the "
        "shard --shard I/K of them; print a live line every few seconds and, at the end, write the "
        "shard's JSON report. 'gatewayd fleet report FILE...' merges the shards' reports.",
        log_level=True,
    )
    add_fleet_run_options(fleet)
    add_fleet_report_parser(
        fleet.add_subparsers(dest="fleet_command", metavar="COMMAND", parser_class=_Parser)
    )
    return parser


def _command(
    sub: Any, name: str, handler: Any, *, help: str, description: str, log_level: bool = False
) -> argparse.ArgumentParser:
    """A subcommand that reads the inventory named by ``--config`` (and takes ``--log-level`` when it
    logs), run by ``handler``."""
    p: argparse.ArgumentParser = sub.add_parser(name, help=help, description=description)
    add_config(p)
    if log_level:
        _add_log_level(p)
    p.set_defaults(handler=handler)
    return p


def cmd_check(args: argparse.Namespace) -> int:
    inventory = load_config_arg(args)
    summary = inventory.summary()
    sources = ", ".join(f"{n} {kind}" for kind, n in summary["sources"].items()) or "none"
    polled = ", ".join(summary["polled"]) or "none"
    print(f"{args.config}: OK")
    print(f"  gateway:   {summary['gateway']} (model {inventory.gateway.model})")
    print(f"  devices:   {summary['devices']}")
    print(f"  sensors:   {summary['sensors']} ({sources})")
    print(f"  polled:    {polled}")
    print(f"  thingplus: {summary['thingplus']}")
    print(f"  state_dir: {summary['state_dir']}")
    if inventory.fleet is not None:
        fleet = inventory.fleet
        print(f"  fleet:     {fleet.gateways} gateways (checked as gateway 0: the template filled in)")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from gatewayd.runtime.service import run_daemon

    inventory = load_config_arg(args)
    if inventory.fleet is not None:
        raise ConfigError(
            f"{args.config}: is a fleet inventory (it has a 'fleet' section): 'gatewayd run' runs one gateway; "
            f"run the fleet with 'gatewayd fleet --config {args.config}'"
        )
    return run_daemon(inventory, require_config(args))


def cmd_health(args: argparse.Namespace) -> int:
    from gatewayd.ops.server import probe_health

    inventory = load_config_arg(args)
    if inventory.http is None:
        print("gatewayd: the inventory has no 'http' section: no health endpoint to ask", file=sys.stderr)
        return EXIT_FAILURE
    ok, body = run_async(probe_health(inventory.http.listen, args.timeout))
    print(body)
    return EXIT_OK if ok else EXIT_FAILURE


def cmd_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gatewayd.demo import run_demo

    config = Path(args.config) if args.config else None
    mqtt_config = Path(args.mqtt_config) if args.mqtt_config else None
    return run_async(
        run_demo(
            config,
            args.duration,
            mqtt_config=mqtt_config,
            report_interval_ms=args.report_interval,
            host=args.host,
            port=args.port,
        )
    )


def cmd_emulator(args: argparse.Namespace) -> int:
    from gatewayd.emulator import serve_forever
    from gatewayd.emulator.app import mqtt_available

    if args.mqtt_port is not None and not mqtt_available():
        print(
            "gatewayd emulator: --mqtt-port needs amqtt (pip install 'gatewayd[emulator-mqtt]', Python >= 3.10)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    inventory = load_config_arg(args)
    fleet: list[tuple[str, str]] = []
    if inventory.fleet is not None and inventory.thingplus.transport == "mqtt":
        from gatewayd.fleet.shards import shard_count
        from gatewayd.inventory.fleetmqtt import load_fleet_credentials

        fleet = load_fleet_credentials(require_config(args), shards=shard_count(args.shards, os.environ))
    return run_until_signal(
        serve_forever(
            inventory,
            host=args.host,
            port=args.port,
            report_interval_ms=args.report_interval,
            series_max_age_s=args.series_max_age,
            mqtt_port=args.mqtt_port,
            mqtt_gateways=fleet,
        )
    )


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    return eventloop.run(coro)


def run_until_signal(coro: Coroutine[Any, Any, Any]) -> int:
    """Run a long-lived coroutine until SIGTERM or SIGINT, then cancel it and exit 0."""

    async def runner() -> int:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(coro)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            return EXIT_OK
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        return EXIT_OK

    return eventloop.run(runner())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        level = resolve_level(getattr(args, "log_level", None))
    except ValueError as exc:
        print(f"gatewayd: {exc}", file=sys.stderr)
        return EXIT_USAGE
    setup_logging(level)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        for problem in exc.problems:
            print(str(problem).lstrip(": "), file=sys.stderr)
        return EXIT_USAGE
    except CloudError as exc:
        print_json(exc.to_dict())
        print(f"gatewayd: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except GatewaydError as exc:
        print(f"gatewayd: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception as exc:
        if level == "debug":
            raise
        print(f"gatewayd: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
