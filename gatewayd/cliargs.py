"""The inventory a command works on: its ``--config`` option, and the inventory it names, loaded.

Every subcommand that reads an inventory takes it the same way, ``gatewayd outbox`` included (its
parser lives in :mod:`gatewayd.ops.outboxcli`, which must not import the whole command line back).
"""

from __future__ import annotations

import argparse
import os

from gatewayd.errors import ConfigError
from gatewayd.inventory.config import Inventory, load_inventory


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
