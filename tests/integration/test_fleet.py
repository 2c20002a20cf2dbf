"""Issue 19's "Done when": three shard processes of a 30-gateway fleet against the emulator, as an
Indexed Job runs them (``JOB_COMPLETION_INDEX`` 0..2, ``GATEWAYD_FLEET_SHARDS=3``; tests.helpers.fleetshards).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from tests.helpers.fleetshards import created, merged, run_shard
from tests.helpers.inventories import inventory_yaml
from tests.integration.conftest import delivered, emulator_env

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
        await asyncio.gather(*(run_shard(config, i, SHARDS, reports[i]) for i in range(SHARDS)))

        assert len(tp.gateways) == GATEWAYS
        assert sorted(g["name"] for g in tp.gateways.values()) == [f"Site {i:03d}" for i in range(GATEWAYS)]
        assert created(tp, "register_gateway") == GATEWAYS
        assert created(tp, "register_sensor") == GATEWAYS * SENSORS_PER_GATEWAY
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
        await run_shard(config, 1, SHARDS, again, duration_s=2.0)
        assert len(tp.gateways) == GATEWAYS
        assert created(tp, "register_gateway") == GATEWAYS
        assert created(tp, "register_device") == GATEWAYS
        assert created(tp, "register_sensor") == GATEWAYS * SENSORS_PER_GATEWAY
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
