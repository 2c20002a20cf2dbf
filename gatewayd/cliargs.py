"""What the command line takes: the inventory a command works on, and the types of its options.

Every subcommand that reads an inventory takes it the same way (``--config``), ``gatewayd outbox``
included (its parser lives in :mod:`gatewayd.ops.outboxcli`, which must not import the whole command
line back). The argument types check values as argparse reads them, each refusal a usage error (exit 2)
that says what was expected. Their own module so that ``gatewayd.cli`` stays one job: the commands.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import TypeVar

from gatewayd.errors import ConfigError
from gatewayd.inventory.config import Inventory, load_inventory

N = TypeVar("N", int, float)


def add_config(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        default=os.environ.get("GATEWAYD_CONFIG"),
        help="inventory YAML (default: $GATEWAYD_CONFIG)" + ("" if required else "; optional"),
    )


def require_config(args: argparse.Namespace) -> str:
    if not args.config:
        raise ConfigError("no inventory given: use --config FILE or set GATEWAYD_CONFIG")
    return str(args.config)


def load_config_arg(args: argparse.Namespace) -> Inventory:
    """The inventory named by --config / $GATEWAYD_CONFIG, validated (ConfigError otherwise)."""
    return load_inventory(require_config(args))


def _number(text: str, kind: Callable[[str], N], what: str, ok: Callable[[N], bool], bounds: str) -> N:
    """An option's number: ``kind(text)``, refused as not ``what`` or, unless ``ok``, as out of ``bounds``."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a {what}: {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{bounds}, got {text}")
    return value


def positive_seconds(text: str) -> float:
    return _number(text, float, "number of seconds", lambda v: v > 0, "must be greater than zero")


def duration(text: str) -> float:
    """Seconds from ``90s``, ``30m``, ``2d``, ... (the inventory's durations)."""
    from gatewayd.inventory.types import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def port(text: str) -> int:
    return _number(text, int, "port number", lambda v: 0 <= v < 65536, "port must be 0..65535")


def add_demo_options(parser: argparse.ArgumentParser) -> None:
    """``gatewayd demo``'s options: what it runs, how long, and where its console listens."""
    from gatewayd.demopages import DEFAULT_PORT
    from gatewayd.logging import LEVELS

    parser.add_argument(
        "--duration",
        type=positive_seconds,
        default=None,
        metavar="S",
        help="stop after S seconds (default: run until Ctrl-C)",
    )
    parser.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        default=None,
        help="inventory to simulate (default: config/demo.yaml)",
    )
    parser.add_argument(
        "--mqtt-config",
        metavar="FILE",
        default=None,
        help="the MQTT gateway's inventory (thingplus.transport: mqtt; default: config/demo-mqtt.yaml)",
    )
    parser.add_argument(
        "--report-interval",
        type=int,
        default=5000,
        metavar="MS",
        help="reportInterval the emulated Thing+ hands out (default 5000)",
    )
    parser.add_argument(
        "--port",
        "-p",
        type=port,
        default=None,
        metavar="P",
        help=f"the console's (and the emulated clouds') TCP port (default {DEFAULT_PORT}, or a free port if "
        f"{DEFAULT_PORT} is taken; a port given here that is taken is an error; 0 = any free port)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address the console listens on (default 127.0.0.1)",
    )
    parser.add_argument(
        "--log-level",
        choices=LEVELS,
        type=str.lower,
        default="error",
        help="log level of the daemon's own lines (default error, to keep the demo readable)",
    )
