"""``gatewayd fleet --config FLEET.yaml [--shard I/K] [--report FILE] [--duration S]``: run a fleet's shard.

Its own module so that gatewayd.cli only wires it in (``fleet report`` is gatewayd.fleet.reportcli).
Usage and configuration problems exit 2, as everywhere; the report path may come from
``GATEWAYD_FLEET_REPORT``, the shard from the environment of a Kubernetes Job or StatefulSet
(gatewayd.fleet.shards).
"""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path

from gatewayd.cliargs import positive_seconds, require_config

REPORT_ENV = "GATEWAYD_FLEET_REPORT"


def add_fleet_run_options(fleet: argparse.ArgumentParser) -> None:
    """The options of ``gatewayd fleet`` itself (its inventory is ``--config``, added by the caller)."""
    fleet.add_argument(
        "--shard",
        metavar="I/K",
        default=None,
        help="run shard I of K: the gateways i with i mod K = I (default: $JOB_COMPLETION_INDEX with "
        "--shards, a StatefulSet pod's -N hostname with --shards, else the whole fleet)",
    )
    fleet.add_argument(
        "--shards",
        type=int,
        default=None,
        metavar="K",
        help="the shard count when the index comes from the environment (default: $GATEWAYD_FLEET_SHARDS)",
    )
    fleet.add_argument(
        "--report",
        metavar="FILE",
        default=os.environ.get(REPORT_ENV),
        help=f"write the shard's final JSON report to FILE (default: ${REPORT_ENV})",
    )
    fleet.add_argument(
        "--duration",
        type=positive_seconds,
        default=None,
        metavar="S",
        help="stop after S seconds (default: run until SIGTERM/SIGINT)",
    )
    fleet.set_defaults(handler=cmd_fleet)


def cmd_fleet(args: argparse.Namespace) -> int:
    from gatewayd.fleet.runner import run_fleet
    from gatewayd.fleet.shards import select_shard
    from gatewayd.fleet.template import FleetTemplate

    shard = select_shard(args.shard, args.shards, os.environ, socket.gethostname())
    template = FleetTemplate(require_config(args), shard)
    report = Path(args.report) if args.report else None
    return run_fleet(template, report_path=report, duration_s=args.duration)
