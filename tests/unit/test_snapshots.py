"""What the daemon shows of itself: read-only snapshots, the ops side's health from them, request metrics."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import aiohttp
import pytest

from gatewayd.inventory.config import parse_inventory
from gatewayd.ops.health import assess
from gatewayd.ops.server import OpsServer
from gatewayd.runtime.requestmetrics import BUCKETS, RequestMetrics
from gatewayd.runtime.schedule import DEFAULT_REPORT_INTERVAL_MS
from gatewayd.runtime.service import Daemon
from gatewayd.runtime.snapshots import (
    NOT_REGISTERED,
    NOT_REPORTING,
    ActuatorRow,
    CommandsSnapshot,
    DaemonSnapshot,
    summary_line,
)
from tests.conftest import VALID
from tests.helpers.ports import free_port


@pytest.fixture
async def snapshot(tmp_path: Path) -> DaemonSnapshot:
    """A daemon not started yet, as the ops side would see it (made on a running loop, as the daemon always
    is: before Python 3.10 its asyncio.Events bind to the loop current when they are made)."""
    return Daemon(parse_inventory(VALID, base_dir=tmp_path, env={})).snapshot(detail=True)


def test_a_daemon_not_started_shows_nothing_done_yet(snapshot: DaemonSnapshot) -> None:
    assert snapshot.registration == NOT_REGISTERED
    assert snapshot.reporting == NOT_REPORTING
    assert snapshot.reporting.report_interval_ms == DEFAULT_REPORT_INTERVAL_MS
    assert (snapshot.sensors.count, snapshot.sensors.sampled, snapshot.sensors.rows) == (0, 0, ())
    assert snapshot.storage.pending == 0 and not snapshot.storage.writable
    assert dict(snapshot.storage.dropped_by_reason) == {
        "memory_full": 0,
        "max_points": 0,
        "max_age": 0,
        "shutdown": 0,
    }
    assert summary_line(snapshot).startswith(
        "not registered yet; 0 sensors; sampled 0, uploaded 0, pending 0"
    )


def test_snapshots_cannot_be_written(snapshot: DaemonSnapshot) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.registration.registered = True  # type: ignore[misc]
    with pytest.raises(TypeError):
        snapshot.storage.detail["writable"] = True  # type: ignore[index]
    with pytest.raises(TypeError):
        snapshot.sensors.registry["saved"] = False  # type: ignore[index]


def test_health_is_judged_from_a_snapshot_alone(snapshot: DaemonSnapshot) -> None:
    health = assess(snapshot, now=1000.0)
    assert not health.ok and health.reason.startswith("outbox not writable")
    writable = dataclasses.replace(snapshot, storage=dataclasses.replace(snapshot.storage, problem=None))
    assert assess(writable, now=1000.0).reason.startswith("not registered on Thing+ yet")
    registered = dataclasses.replace(
        writable,
        registration=dataclasses.replace(writable.registration, registered=True, gateway_id="gw"),
        reporting=dataclasses.replace(writable.reporting, last_success=900.0),
    )
    health = assess(registered, now=1000.0)
    assert health.ok and health.reason == "uploading" and health.detail["last_success_age_s"] == 100.0
    stale = assess(registered, now=900.0 + 3 * DEFAULT_REPORT_INTERVAL_MS / 1000 + 1)
    assert not stale.ok and stale.reason == "no successful upload cycle in the last 180s"


@pytest.mark.parametrize(
    ("seconds", "bucket"),
    [(0.0, 0), (0.01, 0), (0.011, 1), (0.3, 5), (30.0, len(BUCKETS) - 1), (31.0, len(BUCKETS))],
)
def test_request_latencies_fall_in_their_buckets(seconds: float, bucket: int) -> None:
    metrics = RequestMetrics()
    metrics.on_response("thingplus", "series", 200, seconds)
    metrics.on_response("rcms", "status_data", None, 0.5)  # no answer: timed all the same
    latency = metrics.snapshot()[("thingplus", "series")]
    assert latency.counts[bucket] == 1 and latency.count == 1 and latency.sum_s == seconds
    assert metrics.snapshot()[("rcms", "status_data")].count == 1
    with pytest.raises(TypeError):
        metrics.snapshot()[("x", "y")] = latency  # type: ignore[index]


def test_the_ops_side_knows_nothing_of_how_the_daemon_is_built() -> None:
    import subprocess
    import sys

    code = (
        "import sys, gatewayd.ops.server; "
        "print(sorted(m for m in sys.modules if m.startswith(('gatewayd.runtime.service', "
        "'gatewayd.runtime.supervisor', 'gatewayd.runtime.reporting', 'gatewayd.runtime.sensors'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


async def test_commands_and_actuators_are_shown_from_the_snapshot(
    snapshot: DaemonSnapshot, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    fan = ActuatorRow(
        "Room 1", "Fan", "powerSwitch", "modbus", "unknown", "off", "unit 1: no answer, sorry", 2, 1
    )
    shown = dataclasses.replace(
        snapshot,
        actuators=(fan,),
        commands=CommandsSnapshot({("controlActuator", "failed"): 1, ("timeSync", "ok"): 2}, -1.5),
    )
    listen = f"127.0.0.1:{free_port()}"
    server = OpsServer(lambda detail=False: shown, listen, tmp_path / "outbox.sqlite")
    await server.start()
    try:
        async with session.get(f"http://{listen}/metrics") as response:
            text = await response.text()
        async with session.get(f"http://{listen}/status") as response:
            body = await response.json()
    finally:
        await server.stop()
    assert 'gatewayd_commands_total{method="controlActuator",result="failed"} 1.0' in text
    assert 'gatewayd_commands_total{method="timeSync",result="ok"} 2.0' in text
    assert "gatewayd_time_offset_seconds -1.5" in text
    assert body["actuators"] == [
        {
            "device": "Room 1",
            "name": "Fan",
            "type": "powerSwitch",
            "target": "modbus",
            "state": "unknown",
            "status": "err:unit 1: no answer; sorry",
            "last_command": "off",
            "last_error": "unit 1: no answer, sorry",
            "commands": 2,
            "failures": 1,
        }
    ]  # fmt: skip (no commas in a Thing+ status)
