"""``gatewayd fleet report FILE...`` as a real process: the shards' reports merged, bad files located (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.helpers.fleetreports import gateway, report
from tests.test_cli import run_cli


def _write(path: Path, value: Any) -> str:
    path.write_text(json.dumps(value) if not isinstance(value, str) else value, encoding="utf-8")
    return str(path)


def test_the_shards_reports_merge_into_the_fleets(tmp_path: Path) -> None:
    files = [
        _write(tmp_path / f"shard-{i}.json", report(i, 3, [gateway()] * (i + 1), [0.02] * (i + 1)))
        for i in range(3)
    ]
    done = run_cli("fleet", "report", *files)
    assert done.returncode == 0, done.stderr
    merged = json.loads(done.stdout)
    assert merged["shards"] == {"count": 3, "included": [0, 1, 2], "missing": []}
    assert merged["gateways"]["total"] == 6 and merged["points"]["delivered"] == 360
    assert merged["latency"]["all"]["count"] == 6


def test_bad_report_files_are_named_with_the_place_at_fault(tmp_path: Path) -> None:
    good = _write(tmp_path / "a.json", report(0))
    broken = _write(tmp_path / "b.json", '{"format": "gatewayd-fleet-report/1",\n "fleet": }')
    wrong = _write(tmp_path / "c.json", {**report(1), "points": {**report(1)["points"], "lost": "none"}})
    done = run_cli("fleet", "report", good, broken, wrong, str(tmp_path / "missing.json"))
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert f"{broken}:2:11: not JSON: Expecting value" in lines
    assert f"{wrong}: points.lost: input should be a valid integer" in lines
    assert f"{tmp_path / 'missing.json'}: cannot read the report: No such file or directory" in lines


def test_reports_of_another_fleet_are_refused(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.json", report(0))
    b = _write(tmp_path / "b.json", report(1, fleet="other"))
    done = run_cli("fleet", "report", a, b)
    assert done.returncode == 2
    assert f"{b}: fleet: fleet 'other', but {a} has 'test fleet'" in done.stderr


def test_fleet_report_needs_a_file() -> None:
    done = run_cli("fleet", "report")
    assert done.returncode == 2 and "FILE" in done.stderr
