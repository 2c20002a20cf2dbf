"""Issue 19's "Done when": three shard processes of a 30-gateway fleet against the emulator, as an
Indexed Job runs them (``JOB_COMPLETION_INDEX`` 0..2, ``GATEWAYD_FLEET_SHARDS=3``).

Every process is a real ``gatewayd fleet`` (its own event loop, session, outbox); the emulator runs in
the test's loop, so the processes are awaited, never waited for in a blocking way.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from gatewayd.emulator.thingplus import ThingPlusEmulator
from tests.helpers.inventories import inventory_yaml
from tests.integration.conftest import ROOT, delivered, emulator_env

GATEWAYS = 30
SHARDS = 3
SENSORS_PER_GATEWAY = 2

FLEET = """\
fleet:
  name: Integration fleet
  gateways: 30
  seed: 11
  ramp: {per_second: 300}
"""

DEVICES = """\
  - name: "Room {index}"
    sensors:
      - name: Temperature
        type: temperature
        interval: 200ms
        simulate: {pattern: sine, min: 18, max: 26, period: 1m, phase: "0.{index:02d}"}
      - name: Humidity
        type: humidity
        interval: 300ms
        simulate: {pattern: random_walk, min: 40, max: 80, step: 1}
"""


async def run_shard(config: Path, index: int, report: Path, duration_s: float = 3.0) -> str:
    """``gatewayd fleet`` as pod ``index`` of the Indexed Job; its output (stdout and stderr) once it ends."""
    env = {**os.environ, "JOB_COMPLETION_INDEX": str(index), "GATEWAYD_FLEET_SHARDS": str(SHARDS)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gatewayd",
        "fleet",
        "--config",
        str(config),
        "--duration",
        str(duration_s),
        "--report",
        str(report),
        "--log-level",
        "warning",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=ROOT,
        env=env,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    text = out.decode()
    assert proc.returncode == 0, f"shard {index} exited {proc.returncode}:\n{text}"
    return text


def created(tp: ThingPlusEmulator, kind: str) -> int:
    """Objects of ``kind`` (``gateway``, ``device``, ``sensor``) the emulated Thing+ created: requests
    less the ones it refused (409 for an object that exists)."""
    refused = sum(n for key, n in tp.rejections.items() if key.startswith(f"register_{kind}:"))
    return tp.requests[f"register_{kind}"] - refused


def merged(reports: list[Path]) -> dict[str, Any]:
    from gatewayd.fleet.report import merge_reports

    return merge_reports([json.loads(r.read_text()) for r in reports], names=[str(r) for r in reports])


async def test_three_shards_register_thirty_gateways_once_and_deliver_every_point(tmp_path: Path) -> None:
    async with emulator_env(tmp_path, report_interval_ms=500) as env:
        tp = env.tp
        config = tmp_path / "fleet.yaml"
        config.write_text(
            FLEET
            + inventory_yaml(
                env.server.url,
                gateway='{name: "Site {index:03d}", model: "52"}',
                state_dir=env.state_dir,
                devices=DEVICES,
            ),
            encoding="utf-8",
        )
        reports = [tmp_path / f"report-{i}.json" for i in range(SHARDS)]
        await asyncio.gather(*(run_shard(config, i, reports[i]) for i in range(SHARDS)))

        assert len(tp.gateways) == GATEWAYS
        assert sorted(g["name"] for g in tp.gateways.values()) == [f"Site {i:03d}" for i in range(GATEWAYS)]
        assert created(tp, "gateway") == GATEWAYS
        assert created(tp, "sensor") == GATEWAYS * SENSORS_PER_GATEWAY
        report = merged(reports)
        points = report["points"]
        assert report["shards"] == {"count": SHARDS, "included": [0, 1, 2], "missing": []}
        assert report["gateways"]["total"] == GATEWAYS
        assert report["gateways"]["registered"] == GATEWAYS
        assert points["sampled"] > GATEWAYS * SENSORS_PER_GATEWAY
        assert points["delivered"] == points["sampled"] == delivered(tp)
        assert points["lost"] == points["dead_lettered"] == points["pending"] == 0
        for series in tp.points.values():
            times = [p.time for p in series]
            assert len(times) == len(set(times)), "a point delivered twice"

        # Shard 1 restarts as a Job's pod does, on a fresh volume: the ids derive from the fleet's name
        # and the gateway's index, so it finds its gateways on Thing+ and creates nothing.
        shutil.rmtree(env.state_dir / f"shard-1-of-{SHARDS}")
        before = delivered(tp)
        again = tmp_path / "report-1-again.json"
        await run_shard(config, 1, again, duration_s=2.0)
        assert len(tp.gateways) == GATEWAYS
        assert created(tp, "gateway") == GATEWAYS
        assert created(tp, "device") == GATEWAYS
        assert created(tp, "sensor") == GATEWAYS * SENSORS_PER_GATEWAY
        second = json.loads(again.read_text())
        assert second["gateways"]["registered"] == GATEWAYS // SHARDS
        assert delivered(tp) - before == second["points"]["delivered"] == second["points"]["sampled"]


async def test_run_refuses_a_fleet_inventory_and_check_accepts_it(tmp_path: Path) -> None:
    from tests.integration.conftest import gatewayd_cli

    config = tmp_path / "fleet.yaml"
    config.write_text(FLEET + inventory_yaml(state_dir=tmp_path / "state", devices=DEVICES), encoding="utf-8")
    code, out, err = await gatewayd_cli("check", "--config", str(config))
    assert code == 0, err
    assert "fleet:     30 gateways" in out
    code, out, err = await gatewayd_cli("run", "--config", str(config))
    assert code == 2
    assert "is a fleet inventory" in err and "gatewayd fleet --config" in err
