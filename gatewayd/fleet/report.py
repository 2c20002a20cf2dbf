"""A fleet run's figures: the final JSON report of a shard, the merge of shards' reports, the console line.

Pure functions of counts (no I/O, no clock): the fleet runtime feeds them, tests hold them as tables.

The API the fleet runtime calls (gatewayd.fleet):

- ``GatewayFigures(registered, sampled, delivered, lost, dead_lettered, status, errors_by_kind={},
  pending=0, statuses_sent=0)``: one gateway's counts, frozen; ``GatewayFigures.from_snapshot(snapshot,
  status)`` makes one from a ``DaemonSnapshot``. ``status`` is ``"up"``, ``"offline"`` (churn) or any
  other word the runtime uses (``"starting"``...). ``fleet_totals(gateways) -> FleetTotals``.
- ``shard_report(fleet_name, shard, shards, started_at, ended_at, gateways, requests) -> dict``:
  ``started_at``/``ended_at`` are Unix times, ``gateways`` a sequence of ``GatewayFigures``,
  ``requests`` the request observer's snapshot (``RequestMetrics.snapshot()``, a mapping of
  ``(cloud, operation)`` to ``LatencySnapshot``; ``add_latencies`` sums one per gateway).
- ``merge_reports(reports, names=None) -> dict``: reports of shards of one fleet (or merged reports)
  into one; raises ``ConfigError`` (located by ``names``, the files) when they do not belong together.
- ``console_line(current, previous, interval_s, label="") -> str``: one live line from two
  ``FleetTotals`` taken ``interval_s`` apart (``previous`` None at the first).
- ``render_fleet_metrics(fleet_name, shard, shards, gateways, requests) -> str``: Prometheus text
  (``fleet_metric_families`` for a collector), defined in gatewayd.fleet.metrics, re-exported here.

The report (``FORMAT`` version 1; README "Fleet reports" describes each field)::

    {"format", "fleet", "shards": {"count", "included", "missing"}, "started_at", "ended_at",
     "duration_s", "gateways": {"total", "registered", "by_status"}, "points": {"sampled", "delivered",
     "lost", "dead_lettered", "pending"}, "statuses_sent", "errors_by_kind",
     "latency": {"bounds_s", "all", "by_operation": {"cloud/operation": histogram}}}

where a histogram is ``{"count", "sum_s", "counts" (per bucket, the last unbounded), "p50_ms", "p90_ms",
"p99_ms"}``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from gatewayd.errors import ConfigError, ConfigProblem
from gatewayd.fleet.figures import STATUS_OFFLINE, STATUS_UP, FleetTotals, GatewayFigures, fleet_totals
from gatewayd.fleet.latency import add_latencies, latency_section, merge_latency_sections
from gatewayd.fleet.metrics import fleet_metric_families, render_fleet_metrics
from gatewayd.runtime.requestmetrics import LatencySnapshot

__all__ = [
    "FORMAT",
    "STATUS_OFFLINE",
    "STATUS_UP",
    "FleetTotals",
    "GatewayFigures",
    "add_latencies",
    "console_line",
    "fleet_metric_families",
    "fleet_totals",
    "merge_reports",
    "render_fleet_metrics",
    "shard_report",
]

#: The report's ``format``: a reader refuses other versions.
FORMAT = "gatewayd-fleet-report/1"

#: The keys of ``points``, all counts.
POINT_KEYS = ("sampled", "delivered", "lost", "dead_lettered", "pending")

#: The console line names at most this many error kinds (the most frequent).
CONSOLE_ERROR_KINDS = 3


def shard_report(
    fleet_name: str,
    shard: int,
    shards: int,
    started_at: float,
    ended_at: float,
    gateways: Sequence[GatewayFigures],
    requests: Mapping[tuple[str, str], LatencySnapshot],
) -> dict[str, Any]:
    """The final report of shard ``shard`` of ``shards``."""
    t = fleet_totals(gateways)
    return {
        "format": FORMAT,
        "fleet": fleet_name,
        "shards": _shards(shards, [shard]),
        "started_at": _iso(started_at),
        "ended_at": _iso(ended_at),
        "duration_s": round(ended_at - started_at, 3),
        "gateways": {"total": t.gateways, "registered": t.registered, "by_status": dict(t.by_status)},
        "points": {key: getattr(t, key) for key in POINT_KEYS},
        "statuses_sent": t.statuses_sent,
        "errors_by_kind": dict(t.errors_by_kind),
        "latency": latency_section(requests),
    }


def merge_reports(reports: Sequence[Mapping[str, Any]], names: Sequence[str] | None = None) -> dict[str, Any]:
    """One report of many (checked ones: gatewayd.fleet.reportfile): counts added, percentiles computed
    from the added buckets. ``names`` (the files) locate the problems when the reports do not belong
    together: another fleet, another shard count, other latency buckets, or a shard given twice."""
    if not reports:
        raise ConfigError("no report to merge")
    where = list(names) if names is not None else [f"report {i + 1}" for i in range(len(reports))]
    first = reports[0]
    problems: list[ConfigProblem] = []
    seen: dict[int, str] = {}
    for report, name in zip(reports, where):
        for key, what in (("fleet", "fleet"), ("shards.count", "shard count")):
            mine, theirs = _get(report, key), _get(first, key)
            if mine != theirs:
                problems.append(_problem(name, key, f"{what} {mine!r}, but {where[0]} has {theirs!r}"))
        if report["latency"]["bounds_s"] != first["latency"]["bounds_s"]:
            problems.append(_problem(name, "latency.bounds_s", f"other buckets than {where[0]}'s"))
        for shard in report["shards"]["included"]:
            if shard in seen:
                problems.append(_problem(name, "shards.included", f"shard {shard} is also in {seen[shard]}"))
            seen.setdefault(shard, name)
    if problems:
        raise ConfigError(problems)
    started = min(_parse_iso(r["started_at"]) for r in reports)
    ended = max(_parse_iso(r["ended_at"]) for r in reports)
    by_status: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for report in reports:
        by_status.update(report["gateways"]["by_status"])
        errors.update(report["errors_by_kind"])
    return {
        "format": FORMAT,
        "fleet": first["fleet"],
        "shards": _shards(first["shards"]["count"], list(seen)),
        "started_at": _iso(started),
        "ended_at": _iso(ended),
        "duration_s": round(ended - started, 3),
        "gateways": {
            "total": _sum(reports, "gateways", "total"),
            "registered": _sum(reports, "gateways", "registered"),
            "by_status": dict(sorted(by_status.items())),
        },
        "points": {key: _sum(reports, "points", key) for key in POINT_KEYS},
        "statuses_sent": sum(r["statuses_sent"] for r in reports),
        "errors_by_kind": dict(sorted(errors.items())),
        "latency": merge_latency_sections([r["latency"] for r in reports]),
    }


def console_line(
    current: FleetTotals, previous: FleetTotals | None, interval_s: float, label: str = ""
) -> str:
    """The live line: gateways up/registered/offline, points per second sampled and delivered over the
    last ``interval_s`` (``-`` at the first line), pending points, reporting errors (the most frequent
    kinds named)."""
    c = current
    if previous is None or interval_s <= 0:
        sampled_rate = delivered_rate = "-"
    else:
        sampled_rate = f"{(c.sampled - previous.sampled) / interval_s:.1f}"
        delivered_rate = f"{(c.delivered - previous.delivered) / interval_s:.1f}"
    errors = f"errors {c.errors}"
    if c.errors:
        top = sorted(c.errors_by_kind.items(), key=lambda item: (-item[1], item[0]))[:CONSOLE_ERROR_KINDS]
        errors += " (" + ", ".join(f"{kind} {n}" for kind, n in top) + ")"
    parts = [
        f"gateways {c.up} up, {c.registered} registered, {c.offline} offline of {c.gateways}",
        f"points/s sampled {sampled_rate}, delivered {delivered_rate}",
        f"pending {c.pending}",
        errors,
    ]
    line = " | ".join(parts)
    return f"{label}: {line}" if label else line


def _shards(count: int, included: Sequence[int]) -> dict[str, Any]:
    shards = sorted(set(included))
    return {"count": count, "included": shards, "missing": [i for i in range(count) if i not in shards]}


def _sum(reports: Sequence[Mapping[str, Any]], section: str, key: str) -> int:
    return sum(int(r[section][key]) for r in reports)


def _get(report: Mapping[str, Any], dotted: str) -> Any:
    value: Any = report
    for part in dotted.split("."):
        value = value[part]
    return value


def _problem(name: str, path: str, message: str) -> ConfigProblem:
    return ConfigProblem(file=name, line=None, column=None, path=path, message=message)


def _iso(unix_time: float) -> str:
    return datetime.fromtimestamp(unix_time, timezone.utc).isoformat(timespec="milliseconds")


def _parse_iso(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()
