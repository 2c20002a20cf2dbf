"""A fleet run's figures: totals, latency percentiles from buckets, shard reports and their merge, the
console line, the check of a report read back from its file."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from gatewayd.errors import ConfigError
from gatewayd.fleet.figures import FleetTotals
from gatewayd.fleet.latency import add_latencies, quantile
from gatewayd.fleet.report import FORMAT, GatewayFigures, console_line, fleet_totals, merge_reports
from gatewayd.fleet.reportfile import check_report
from gatewayd.inventory.config import parse_inventory
from gatewayd.runtime.requestmetrics import BUCKETS, LatencySnapshot
from gatewayd.runtime.service import Daemon
from tests.conftest import VALID
from tests.helpers.fleetreports import gateway, latencies, report

B = (0.01, 0.1, 1.0)  # a short histogram for the quantile table: 4 buckets, the last unbounded


@pytest.mark.parametrize(
    ("counts", "q", "expected"),
    [
        ((0, 0, 0, 0), 0.5, None),  # nothing seen
        ((10, 0, 0, 0), 0.5, 0.005),  # the first bucket starts at 0
        ((10, 0, 0, 0), 1.0, 0.01),
        ((0, 10, 0, 0), 0.5, 0.055),  # halfway through (0.01, 0.1]
        ((5, 5, 0, 0), 0.5, 0.01),  # the rank falls on a bucket's end
        ((0, 0, 4, 0), 0.25, 0.325),
        ((9, 0, 0, 1), 0.99, 1.0),  # in the unbounded bucket: the highest finite bound
        ((0, 0, 0, 3), 0.5, 1.0),
    ],
)
def test_quantile_of_buckets(counts: tuple[int, ...], q: float, expected: float | None) -> None:
    assert quantile(B, counts, q) == pytest.approx(expected)


def test_latencies_of_many_observers_add_up_bucket_by_bucket() -> None:
    a = latencies(0.005, 0.2).snapshot()
    b = {**latencies(0.005).snapshot(), **latencies(3.0, operation="status").snapshot()}
    total = add_latencies([a, b])
    series = total[("thingplus", "series")]
    assert series.count == 3 and series.sum_s == pytest.approx(0.21)
    assert series.counts[0] == 2 and series.counts[BUCKETS.index(0.25)] == 1
    assert total[("thingplus", "status")] == LatencySnapshot(b[("thingplus", "status")].counts, 3.0)


def test_totals_of_gateways() -> None:
    t = fleet_totals(
        [
            gateway(errors_by_kind={"timeout": 2}, pending=3, statuses_sent=1),
            gateway(
                "offline", delivered=40, pending=20, lost=1, errors_by_kind={"timeout": 1, "http_5xx": 1}
            ),
            gateway("starting", registered=False, sampled=0, delivered=0),
        ]
    )
    assert (t.gateways, t.registered, t.up, t.offline) == (3, 2, 1, 1)
    assert dict(t.by_status) == {"offline": 1, "starting": 1, "up": 1}
    assert (t.sampled, t.delivered, t.lost, t.pending, t.statuses_sent) == (120, 100, 1, 23, 1)
    assert dict(t.errors_by_kind) == {"http_5xx": 1, "timeout": 3} and t.errors == 4


async def test_figures_of_a_daemon_snapshot(tmp_path: Path) -> None:
    # made on a running loop, as the daemon always is (before 3.10 its asyncio.Events bind to the loop)
    snapshot = Daemon(parse_inventory(VALID, base_dir=tmp_path, env={})).snapshot()
    snapshot = dataclasses.replace(
        snapshot,
        reporting=dataclasses.replace(snapshot.reporting, uploaded=7, statuses=2, errors={"timeout": 1}),
        storage=dataclasses.replace(
            snapshot.storage, pending=4, memory_points=1, dead_lettered=2, dropped_by_reason={"max_age": 3}
        ),
        sensors=dataclasses.replace(snapshot.sensors, sampled=17),
    )
    assert GatewayFigures.from_snapshot(snapshot, "up") == GatewayFigures(
        registered=False,
        sampled=17,
        delivered=7,
        lost=3,
        dead_lettered=2,
        status="up",
        errors_by_kind={"timeout": 1},
        pending=5,
        statuses_sent=2,
    )


def test_a_shard_report() -> None:
    r = report(1, 3, [gateway(), gateway("offline", delivered=50, pending=10)], [0.02, 0.02, 0.2])
    assert r["format"] == FORMAT and r["fleet"] == "test fleet"
    assert r["shards"] == {"count": 3, "included": [1], "missing": [0, 2]}
    assert (r["started_at"], r["ended_at"], r["duration_s"]) == (
        "2024-01-01T00:00:00.000+00:00",
        "2024-01-01T00:01:00.000+00:00",
        60.0,
    )
    assert r["gateways"] == {"total": 2, "registered": 2, "by_status": {"offline": 1, "up": 1}}
    assert r["points"] == {"sampled": 120, "delivered": 110, "lost": 0, "dead_lettered": 0, "pending": 10}
    series = r["latency"]["by_operation"]["thingplus/series"]
    assert series["count"] == 3 and series["p50_ms"] == pytest.approx(
        10 + 15 * 1.5 / 2
    )  # rank 1.5 of 2 in (10, 25] ms
    assert r["latency"]["all"] == series and r["latency"]["bounds_s"] == list(BUCKETS)
    assert json.loads(json.dumps(r)) == r  # plain JSON


def test_merged_reports_add_up_and_take_percentiles_from_the_summed_buckets() -> None:
    fast = report(0, 3, [gateway()] * 3, [0.005] * 90, start=5)
    slow = report(1, 3, [gateway(errors_by_kind={"timeout": 1})], [2.0] * 10, duration=100)
    merged = merge_reports([fast, slow])
    assert merged["shards"] == {"count": 3, "included": [0, 1], "missing": [2]}
    assert merged["gateways"] == {"total": 4, "registered": 4, "by_status": {"up": 4}}
    assert merged["points"]["sampled"] == 240 and merged["errors_by_kind"] == {"timeout": 1}
    assert (merged["started_at"], merged["duration_s"]) == (slow["started_at"], 100.0)
    every = merged["latency"]["all"]
    assert every["count"] == 100 and every["sum_s"] == pytest.approx(0.45 + 20)
    # 90 % of the calls took 5 ms: the fleet's p50 is in the first bucket, not the mean of the shards' p50s
    assert every["p50_ms"] == pytest.approx(10 * 50 / 90, abs=0.001)
    assert every["p99_ms"] == pytest.approx(
        1000 + 1500 * 9 / 10, abs=0.001
    )  # rank 99: 9th of 10 in (1, 2.5] s


def test_merging_is_the_same_in_any_grouping() -> None:
    a, b, c = (report(i, seconds=[0.01 * (i + 1)] * (i + 2), start=i) for i in range(3))
    once = merge_reports([a, b, c])
    assert merge_reports([merge_reports([a, b]), c]) == once == merge_reports([c, merge_reports([b, a])])
    assert once["shards"]["missing"] == []


@pytest.mark.parametrize(
    ("other", "message"),
    [
        (report(1, fleet="another"), "b.json: fleet: fleet 'another', but a.json has 'test fleet'"),
        (report(1, shards=4), "b.json: shards.count: shard count 4, but a.json has 3"),
        (report(0), "b.json: shards.included: shard 0 is also in a.json"),
        ({**report(1), "latency": {**report(1)["latency"], "bounds_s": [1.0]}}, "b.json: latency.bounds_s"),
    ],
)
def test_reports_that_do_not_belong_together_are_refused(other: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        merge_reports([report(0), other], names=["a.json", "b.json"])
    assert message in str(caught.value)


TOTALS = fleet_totals([gateway(), gateway("offline", pending=12, errors_by_kind={"timeout": 3})])


@pytest.mark.parametrize(
    ("previous", "interval_s", "label", "expected"),
    [
        (
            None,
            5.0,
            "",
            "gateways 1 up, 2 registered, 1 offline of 2 | points/s sampled -, delivered - | pending 12 "
            "| errors 3 (timeout 3)",
        ),
        (
            dataclasses.replace(TOTALS, sampled=100, delivered=110),
            4.0,
            "fleet 0/3",
            "fleet 0/3: gateways 1 up, 2 registered, 1 offline of 2 | points/s sampled 5.0, delivered 2.5 "
            "| pending 12 | errors 3 (timeout 3)",
        ),
        (
            TOTALS,
            0.0,  # two lines at once: no rate to give
            "",
            "gateways 1 up, 2 registered, 1 offline of 2 | points/s sampled -, delivered - | pending 12 "
            "| errors 3 (timeout 3)",
        ),
    ],
)
def test_console_line(previous: FleetTotals | None, interval_s: float, label: str, expected: str) -> None:
    assert console_line(TOTALS, previous, interval_s, label) == expected


def test_console_line_names_the_most_frequent_error_kinds() -> None:
    totals = fleet_totals([gateway(errors_by_kind={"a": 1, "b": 5, "c": 2, "d": 2})])
    assert console_line(totals, None, 1).endswith("errors 10 (b 5, c 2, d 2)")
    assert console_line(fleet_totals([gateway()]), None, 1).endswith("| errors 0")


def test_a_report_read_back_checks() -> None:
    r = json.loads(json.dumps(report(2, seconds=[0.1])))
    assert check_report(r, "r.json") is r


def _broken(change: dict[str, Any]) -> dict[str, Any]:
    r = json.loads(json.dumps(report(0, seconds=[0.1])))
    for dotted, value in change.items():
        *parents, last = dotted.split(".")
        node = r
        for part in parents:
            node = node[part]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return r


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "gatewayd-fleet-report/9"}, "r.json: format: not a fleet report of this version"),
        ({"points.sampled": None}, "r.json: points.sampled: required key is missing"),
        ({"points.lost": -1}, "r.json: points.lost: input should be greater than or equal to 0"),
        ({"points.delivered": "12"}, "r.json: points.delivered: input should be a valid integer"),
        ({"shards.included": [3]}, "r.json: shards: shards [3] are not below the shard count 3"),
        ({"ended_at": "yesterday"}, "r.json: ended_at: not an ISO 8601 time: 'yesterday'"),
        ({"started_at": "2024-01-01T00:00:00"}, "r.json: started_at: a time without a zone"),
        ({"latency.all.counts": [1, 2]}, "r.json: latency: all: 2 counts for 12 buckets"),
    ],
)
def test_a_broken_report_is_refused_with_the_key_at_fault(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_report(_broken(change), "r.json")
    assert message in str(caught.value)
