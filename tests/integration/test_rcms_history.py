"""RCMS history end to end: the real daemon polls the emulated RCMS (routers reporting every 200 ms) and
every record reaches the emulated Thing+ as one point per bridged sensor, stamped with the record's time:
through an RCMS outage, and across a restart, with no gap and no duplicate."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gatewayd.runtime.service import Daemon
from tests.helpers.inventories import rcms as rcms_section
from tests.helpers.waiting import until
from tests.integration.conftest import Env, describe, emulator_env, now_ms, running, times_of

SN = "IT-SN-0001"
RECORD_MS = 200

RCMS = rcms_section("@endpoint@", poll_interval="300ms", lookback="2s", devices=[SN])

ROUTER = f"""\
- name: Router
  sensors:
    - name: RSSI
      type: number
      interval: 100ms
      rcms: {{sn: {SN}, field: cellular.rssi}}
    - name: RSRP
      type: number
      interval: 100ms
      rcms: {{sn: {SN}, field: data.cellular.rsrp}}
"""


@pytest.fixture
async def rcms_env(tmp_path: Path) -> AsyncIterator[Env]:
    """The emulator with RCMS, its router reporting every RECORD_MS over its whole history."""
    async with emulator_env(tmp_path, extra=RCMS) as env:
        rcms = env.server.emulator.rcms
        assert rcms is not None
        rcms.set_record_interval(RECORD_MS, since_ms=0)
        yield env


def bridged(daemon: Daemon) -> dict[str, str]:
    """field -> Thing+ sensor id of the two bridged sensors."""
    assert daemon.sampler is not None
    return {s.name: s.sensor_id for s in daemon.sampler.sensors}


def caught_up(env: Env, daemon: Daemon, since_ms: int) -> bool:
    """Every bridged sensor has a point of a record at or after ``since_ms`` on Thing+."""
    return all(any(t >= since_ms for t in times_of(env.tp, sid)) for sid in bridged(daemon).values())


def assert_every_record_once(env: Env, sensor_ids: dict[str, str], lookback_from_ms: int) -> None:
    """Per sensor: the points are exactly the router's records from the first to the last delivered, each
    once, stamped with its time and carrying its value."""
    rcms = env.server.emulator.rcms
    assert rcms is not None
    for name, sid in sensor_ids.items():
        times = times_of(env.tp, sid)
        assert len(times) == len(set(times)), f"{name}: duplicate points"
        first, last = min(times), max(times)
        assert lookback_from_ms - RECORD_MS <= first, f"{name}: history before the lookback"
        expected = rcms.timeline.times(SN, first, last, 0, 10**6)
        missing = sorted(set(expected) - set(times))
        assert not missing, f"{name}: {len(missing)} records never delivered, e.g. {missing[:5]}"
        assert sorted(times) == expected
        field = "rssi" if name == "RSSI" else "rsrp"
        for point in env.tp.points[sid]:
            assert point.value == str(rcms.status_record(SN, point.time)["data"]["cellular"][field])


async def test_an_rcms_outage_ends_with_every_record_of_the_gap_on_thingplus(rcms_env: Env) -> None:
    env = rcms_env
    started_ms = now_ms()
    async with running(env.inventory(devices=ROUTER)) as run:
        daemon = run.daemon
        explain = lambda: describe(daemon, env.tp)  # noqa: E731
        # The first poll looks back 2 s: ten records at once, before any new one.
        await until(
            lambda: daemon.registered is not None and caught_up(env, daemon, started_ms - 1500),
            what="the lookback's records on Thing+",
            explain=explain,
        )
        assert daemon.sampler is not None
        assert all(s.ok for s in daemon.sampler.sensors)
        env.server.emulator.faults.set("rcms", outage_s=math.inf)
        outage_ms = now_ms()
        polls = daemon.poll_stats.polls
        errors = polls.get(("rcms", "error"), 0)
        # Records stop coming: the sensors go err once the newest is older than max_age (3 polls, 0.9 s).
        await until(
            lambda: (
                polls.get(("rcms", "error"), 0) > errors and not any(s.ok for s in daemon.sampler.sensors)
            ),
            what="failed polls and err statuses",
            explain=explain,
        )
        assert "stale" in str(daemon.sampler.sensors[0].last_error)
        # err comes when the newest record is 0.9 s old, which may be sooner after the outage began:
        # the outage lasts until at least four records of the router fell in the gap.
        await until(lambda: now_ms() - outage_ms >= 900, what="four records in the gap")
        env.server.emulator.faults.clear("rcms")
        recovered_ms = now_ms()
        await until(lambda: caught_up(env, daemon, recovered_ms), what="the gap fetched", explain=explain)
        await until(lambda: all(s.ok for s in daemon.sampler.sensors), what="statuses on again")
        ids = bridged(daemon)
        await run.stop()
    assert daemon.outbox is not None and daemon.outbox.stats.pending == 0
    for sid in ids.values():
        gap = [t for t in times_of(env.tp, sid) if outage_ms < t < recovered_ms]
        assert len(gap) >= (recovered_ms - outage_ms) // RECORD_MS - 1
    assert_every_record_once(env, ids, started_ms - 2000)


async def test_a_restart_neither_repeats_nor_loses_a_record(rcms_env: Env) -> None:
    env = rcms_env
    started_ms = now_ms()
    async with running(env.inventory(devices=ROUTER)) as run:
        daemon = run.daemon
        await until(
            lambda: daemon.registered is not None and caught_up(env, daemon, started_ms + 600),
            what="records on Thing+",
            explain=lambda: describe(daemon, env.tp),
        )
        ids = bridged(daemon)
        await run.stop()
    stopped_ms = now_ms()
    marks = (env.state_dir / "rcms-poll.json").read_text()
    assert '"record_ms"' in marks
    async with running(env.inventory(devices=ROUTER)) as run:
        daemon = run.daemon
        assert bridged(daemon) == ids
        # The records made while it was stopped come first, then the new ones.
        await until(
            lambda: daemon.registered is not None and caught_up(env, daemon, stopped_ms + 1000),
            what="records after the restart",
            explain=lambda: describe(daemon, env.tp),
        )
        await run.stop()
    for sid in ids.values():
        assert any(stopped_ms - RECORD_MS < t < stopped_ms + 1000 for t in times_of(env.tp, sid))
    assert_every_record_once(env, ids, started_ms - 2000)
