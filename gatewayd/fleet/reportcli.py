"""``gatewayd fleet report FILE...``: the shards' final reports merged into the fleet's.

Each shard of a fleet writes its own report (``--report``/``GATEWAYD_FLEET_REPORT``); this adds them up
into one: counts summed, latency percentiles computed from the summed histograms, the shards present
and missing listed. Every file is read and checked before any merge, and every problem in every file
is printed (exit 2), so a broken shard's file is found at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gatewayd.errors import ConfigError, ConfigProblem

EXIT_OK = 0


def add_fleet_report_parser(fleet_commands: Any) -> argparse.ArgumentParser:
    """``report`` under the ``fleet`` command's subcommands (``fleet_commands``: their subparsers action)."""
    p: argparse.ArgumentParser = fleet_commands.add_parser(
        "report",
        help="merge the final reports of a fleet's shards into one (JSON on stdout)",
        description="Read the JSON reports the shards of one fleet wrote at their end and print their "
        "merge: gateways, points sampled/delivered/lost, statuses, errors by kind, latency percentiles "
        "from the summed histograms, and the shards included and missing. Exit 2, naming the file and "
        "the key, when a file cannot be read, is not a report, or belongs to another fleet or run.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="a shard's report (or a merged one)")
    p.set_defaults(handler=cmd_fleet_report)
    return p


def cmd_fleet_report(args: argparse.Namespace) -> int:
    from gatewayd.fleet.report import merge_reports
    from gatewayd.fleet.reportfile import load_report

    reports: list[dict[str, Any]] = []
    problems: list[ConfigProblem] = []
    for file in args.files:
        try:
            reports.append(load_report(file))
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems)
    merged = merge_reports(reports, names=args.files)
    json.dump(merged, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return EXIT_OK
