"""The ``gatewayd`` command line.

Exit status is a contract: 0 on a clean stop (SIGTERM/SIGINT), 2 for bad configuration or usage, 1 for
anything else. Problems are printed as located one-line messages, never as tracebacks (unless
``--log-level debug``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

import structlog

from gatewayd import __version__
from gatewayd.config import Inventory, load_inventory
from gatewayd.errors import CloudError, ConfigError, GatewaydError
from gatewayd.logging import LEVELS, resolve_level, setup_logging

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

log = structlog.get_logger("gatewayd.cli")


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors name the program and exit 2 like every other bad input."""

    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _add_config(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        default=os.environ.get("GATEWAYD_CONFIG"),
        help="inventory YAML (default: $GATEWAYD_CONFIG)" + ("" if required else "; optional"),
    )


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
        epilog="Exit status: 0 clean stop, 2 bad configuration or usage, 1 any other failure.",
    )
    parser.add_argument("--version", action="version", version=f"gatewayd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("check", help="validate an inventory and print a summary")
    _add_config(p)
    p.set_defaults(handler=cmd_check, needs_config=True)
    return parser


def _require_config(args: argparse.Namespace) -> str:
    if not args.config:
        raise ConfigError("no inventory given: use --config FILE or set GATEWAYD_CONFIG")
    return str(args.config)


def load_config_arg(args: argparse.Namespace) -> Inventory:
    """The inventory named by --config / $GATEWAYD_CONFIG, validated (ConfigError otherwise)."""
    return load_inventory(_require_config(args))


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
    return EXIT_OK


def print_json(value: Any) -> None:
    """One-shot commands print their answer as JSON on stdout."""
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def run_async(coro: Coroutine[Any, Any, int]) -> int:
    return asyncio.run(coro)


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
