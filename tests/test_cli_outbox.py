"""``gatewayd outbox`` as a real process: stats, dead letters listed and exported, requeue, exit statuses."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gatewayd.outbox import Outbox, Point
from gatewayd.runtime.registry import Registry
from gatewayd.statelock import StateLock
from tests.conftest import VALID
from tests.test_cli import run_cli

T0 = (int(time.time()) - 600) * 1000
INVALID = "400 INVALID_INPUT: body.value: a temperature value must be a numeric string, not 'open'"
MISSING = "404 NOT_FOUND: sensor not found"


@pytest.fixture
async def config(write_inventory: Callable[[str], Path], tmp_path: Path) -> Path:
    """The test inventory, its outbox holding 3 pending points of Room 1/Temperature and 3 dead letters:
    two refused values of it, and one point of a sensor the registry does not know."""
    path = write_inventory(VALID)
    state = tmp_path / "state"
    temperature = Registry(state).sensor_id("Room 1", "Temperature")
    async with await Outbox.open(state / "outbox.db") as outbox:
        await outbox.put(
            [Point(temperature, T0 + i, v) for i, v in enumerate(["open", "shut", "1", "2", "3"])]
        )
        await outbox.put([Point("f" * 32, T0 + 9, {"lat": 1.5})])
        for sensor, n, reason in ((temperature, 2, INVALID), ("f" * 32, 1, MISSING)):
            lease = await outbox.lease(sensor, n)
            assert lease is not None
            await outbox.dead_letter(lease, reason)
    return path


def outbox(config: Path, *args: str) -> tuple[int, str, str]:
    result = run_cli("outbox", *args, "--config", str(config))
    assert "Traceback" not in result.stderr
    return result.returncode, result.stdout, result.stderr


def test_stats(config: Path) -> None:
    rc, out, _ = outbox(config, "stats")
    assert rc == 0
    assert "pending:       3 point(s)" in out
    assert "Room 1/Temperature (" in out and "dead letters:  3" in out
    assert "  400 INVALID_INPUT  2\n  404 NOT_FOUND      1\n" in out
    rc, out, _ = outbox(config, "stats", "--json", "--top", "1")
    data = json.loads(out)
    assert (data["pending"], data["oldest_pending_ms"], data["dead_letters"]) == (3, T0 + 2, 3)
    assert [(s["sensor"], s["pending"]) for s in data["top_sensors"]] == [("Room 1/Temperature", 3)]
    assert data["dead_letters_by_reason"] == {"400 INVALID_INPUT": 2, "404 NOT_FOUND": 1}


def test_dead_letters_newest_first_with_names_values_and_reasons(config: Path) -> None:
    rc, out, _ = outbox(config, "dead-letters", "--json", "--limit", "2")
    assert rc == 0
    assert [(d["sensor"], d["value"], d["reason"]) for d in json.loads(out)] == [
        (None, {"lat": 1.5}, MISSING),
        ("Room 1/Temperature", "shut", INVALID),
    ]
    rc, out, _ = outbox(config, "dead-letters")
    lines = out.splitlines()
    assert lines[0].split() == ["TIME", "SENSOR", "VALUE", "REASON"] and len(lines) == 4
    assert '{"lat":1.5}' in lines[1] and "open" in lines[3] and INVALID in lines[3]


def test_export_every_dead_letter_as_csv_and_json_lines(config: Path) -> None:
    rc, out, _ = outbox(config, "export", "--format", "csv")
    assert rc == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["sensor"], r["time_ms"], r["value"], r["reason"]) for r in rows] == [
        ("Room 1/Temperature", str(T0), "open", INVALID),
        ("Room 1/Temperature", str(T0 + 1), "shut", INVALID),
        ("", str(T0 + 9), '{"lat":1.5}', MISSING),
    ]
    rc, out, _ = outbox(config, "export", "--format", "jsonl")
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["value"] for r in records] == ["open", "shut", {"lat": 1.5}]
    assert records[0]["time"].endswith("Z") and records[0]["dead_at"]


def test_requeue_by_reason_then_all(config: Path) -> None:
    rc, out, _ = outbox(config, "requeue", "--reason", "404")
    assert rc == 0
    assert (
        out
        == "requeued 1 dead letter(s) whose reason contains '404': pending again, sent at the daemon's next start\n"
    )
    rc, out, _ = outbox(config, "stats", "--json")
    data = json.loads(out)
    assert (data["pending"], data["dead_letters_by_reason"]) == (4, {"400 INVALID_INPUT": 2})
    rc, out, _ = outbox(config, "requeue", "--json")
    assert json.loads(out) == {"requeued": 2, "reason": None}
    rc, out, _ = outbox(config, "dead-letters")
    assert out == "no dead letters\n"


def test_requeue_while_the_daemon_runs_exits_1_naming_it(config: Path, tmp_path: Path) -> None:
    with StateLock(tmp_path / "state"):  # this process plays the running daemon
        rc, out, err = outbox(config, "requeue")
    assert rc == 1 and out == ""
    assert (
        err
        == f"gatewayd: the daemon (pid {os.getpid()}) is running on state_dir {tmp_path / 'state'}; stop it first\n"
    )
    rc, out, _ = outbox(config, "stats", "--json")
    assert json.loads(out)["dead_letters"] == 3  # untouched


def test_a_missing_outbox_exits_1_and_is_not_created(
    write_inventory: Callable[[str], Path], tmp_path: Path
) -> None:
    config = write_inventory(VALID)
    for what in (["stats"], ["dead-letters"], ["export", "--format", "csv"], ["requeue"]):
        rc, out, err = outbox(config, *what)
        assert rc == 1 and out == "", what
        assert (
            err
            == f"gatewayd: no outbox at {tmp_path / 'state' / 'outbox.db'}: the daemon has not run with this state_dir yet\n"
        )
    assert not (tmp_path / "state" / "outbox.db").exists()


@pytest.mark.parametrize("args", [[], ["export"], ["dead-letters", "--limit", "0"], ["stats", "--top", "x"]])
def test_bad_usage_exits_2(args: list[str], write_inventory: Callable[[str], Path]) -> None:
    result = run_cli("outbox", *args, "--config", str(write_inventory(VALID)))
    assert result.returncode == 2 and "Traceback" not in result.stderr
