"""The operations endpoints of a real daemon: /healthz, /metrics, /status, and ``gatewayd health``.

The daemon runs in-process against the emulator with ``http.listen`` on a free loopback port; the tests
talk to it over HTTP like a load balancer, Prometheus or a container HEALTHCHECK would. /metrics is read
with prometheus-client's own parser, and its counters are checked against what the emulated Thing+ says
it received, not against the daemon's belief.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from gatewayd import __version__
from gatewayd.runtime.service import Daemon
from tests.helpers.ports import free_port
from tests.helpers.waiting import until

from .conftest import (
    Metrics,
    delivered,
    emulator_env,
    gatewayd_cli,
    get,
    healthz,
    inventory_text,
    polled_sections,
    running,
    scrape,
    until_health,
    until_registered_and_polled,
    with_http,
    write_with_http,
)

#: RCMS (one router, first polled a minute back) and loctube (one device) beside Thing+.
POLLED = polled_sections("signature")


def upload_errors(metrics: Metrics) -> float:
    return metrics.total("gatewayd_upload_errors_total", cloud="thingplus")


def pending(daemon: Daemon) -> int:
    assert daemon.outbox is not None
    return daemon.outbox.stats.pending


# ------------------------------------------------------------------------------------------------ /healthz


async def test_health_follows_registration_outage_and_recovery(tmp_path: Path) -> None:
    """503 before registration, 200 while uploading, 503 past 3 x reportInterval of outage, 200 after."""
    async with emulator_env(tmp_path, report_interval_ms=300) as env:
        faults = env.server.emulator.faults
        faults.set("thingplus", outage_s=math.inf)
        inventory, base = with_http(env.inventory())
        async with running(inventory) as run:
            daemon = run.daemon

            # Thing+ away from the start: sampling goes on, but the gateway is not registered.
            await until(lambda: daemon.sampler is not None and daemon.sampler.stats.sampled > 0)
            code, body = await healthz(base)
            assert code == 503
            assert body["status"] == "unhealthy" and "not registered" in body["reason"]
            metrics = await scrape(base)
            assert metrics.value("gatewayd_registered") == 0

            # Thing+ back: registered and uploading.
            faults.clear("thingplus", "outage")
            body = await until_health(base, 200)
            assert body["status"] == "ok" and body["reason"] in ("uploading", "draining backlog")
            assert daemon.registered is not None
            await until(lambda: delivered(env.tp) > 0, what="points on Thing+")

            # An outage: still healthy for up to 3 x reportInterval, then 503 with the reason.
            errors_before = upload_errors(await scrape(base))
            faults.set("thingplus", outage_s=math.inf)
            outage_at = time.monotonic()
            body = await until_health(base, 503)
            elapsed = time.monotonic() - outage_at
            assert body["window_s"] == pytest.approx(0.9)  # 3 x 300 ms
            assert body["status"] == "unhealthy"
            assert "no successful upload cycle" in body["reason"], body
            assert body["last_success_age_s"] > body["window_s"], body
            assert body["errors"], "the failures are named"
            # The last success was at most one reportInterval (+ slack) before the outage began.
            assert elapsed >= body["window_s"] - 0.3 - 0.2, (elapsed, body)

            # The failures are counted by cloud and kind while it lasts; points wait in the outbox.
            await until(lambda: pending(daemon) > 0, what="a backlog")
            before = pending(daemon)
            metrics = await scrape(base)
            after = pending(daemon)
            assert upload_errors(metrics) > errors_before
            assert daemon.uploader is not None
            kinds = {s.labels["kind"] for s in metrics.find("gatewayd_upload_errors_total")}
            assert kinds <= set(daemon.uploader.stats.errors) and kinds
            # Nothing is acknowledged during the outage, so pending only grows: the gauge is in between.
            assert before <= metrics.value("gatewayd_outbox_points") <= after

            # Recovery: healthy again once an upload cycle goes through.
            faults.clear("thingplus", "outage")
            body = await until_health(base, 200)
            assert body["status"] == "ok"
            await run.stop()


# ------------------------------------------------------------------------------------------------ /metrics


async def test_metrics_match_what_the_emulator_received(tmp_path: Path) -> None:
    async with emulator_env(tmp_path, report_interval_ms=1000, extra=POLLED) as env:
        inventory, base = with_http(env.inventory())
        async with running(inventory) as run:
            daemon = run.daemon
            assert daemon.sampler is not None and daemon.uploader is not None and daemon.buffer is not None
            polls = daemon.poll_stats.polls
            await until(
                lambda: (
                    daemon.registered is not None
                    and delivered(env.tp) >= 4
                    and polls.get(("rcms", "ok"), 0) >= 1
                    and polls.get(("loctube", "ok"), 0) >= 1
                ),
                what="uploads and a poll of each cloud",
            )

            # A quiet moment: sampling stopped, then everything read is committed and acknowledged.
            sampler, uploader, buffer = daemon.sampler, daemon.uploader, daemon.buffer
            await sampler.stop()
            await until(
                lambda: (
                    len(buffer) == 0
                    and pending(daemon) == 0
                    and uploader.stats.uploaded == sampler.stats.sampled
                ),
                what="the outbox drained after sampling stopped",
            )
            metrics = await scrape(base)

            received = delivered(env.tp)
            assert metrics.value("gatewayd_points_uploaded_total") == received
            assert received == sum(len({p.time for p in pts}) for pts in env.tp.points.values()), "no dupes"
            assert metrics.value("gatewayd_points_sampled_total") >= metrics.value(
                "gatewayd_points_uploaded_total"
            )
            assert metrics.value("gatewayd_points_sampled_total") == sampler.stats.sampled
            assert metrics.value("gatewayd_outbox_points") == pending(daemon) == 0
            assert metrics.value("gatewayd_read_errors_total") == 0
            assert metrics.value("gatewayd_dead_letter_total") == 0
            assert metrics.value("gatewayd_outbox_dropped_total") == 0
            assert metrics.value("gatewayd_statuses_sent_total") >= 1
            assert metrics.find("gatewayd_upload_errors_total") == []  # the family is there, empty
            assert "gatewayd_upload_errors" in metrics.families

            for cloud in ("rcms", "loctube"):
                assert (
                    1
                    <= metrics.value("gatewayd_poll_total", cloud=cloud, result="ok")
                    <= polls[(cloud, "ok")]
                )
                assert not metrics.find("gatewayd_poll_total", cloud=cloud, result="error")

            count = metrics.value("gatewayd_request_seconds_count", cloud="thingplus", operation="series")
            assert count >= 1
            assert (
                metrics.value(
                    "gatewayd_request_seconds_bucket", cloud="thingplus", operation="series", le="+Inf"
                )
                == count
            )
            assert metrics.value("gatewayd_request_seconds_sum", cloud="thingplus", operation="series") > 0
            for cloud in ("rcms", "loctube"):
                assert metrics.total("gatewayd_request_seconds_count", cloud=cloud) >= 1

            assert (
                metrics.value("gatewayd_report_interval_seconds") == env.tp.report_interval_ms / 1000 == 1.0
            )
            assert metrics.value("gatewayd_registered") == 1
            assert metrics.value("gatewayd_sensors") == 2
            info = metrics.find("gatewayd_build_info")
            assert len(info) == 1 and info[0].value == 1
            assert info[0].labels["version"] == __version__ and info[0].labels["python"]
            await run.stop()


# ------------------------------------------------------------------------------------------------ /status


async def test_status_shows_the_latest_polled_state_with_its_age(tmp_path: Path) -> None:
    async with emulator_env(tmp_path, report_interval_ms=1000, extra=POLLED) as env:
        inventory, base = with_http(env.inventory())
        async with running(inventory) as run:
            daemon = run.daemon
            polls = daemon.poll_stats.polls
            await until_registered_and_polled(daemon)
            code, text, _ = await get(f"{base}/status")
            assert code == 200
            first = json.loads(text)
            assert first["registered"] is True
            assert daemon.registered is not None and first["gateway_id"] == daemon.registered.gateway_id
            assert first["report_interval_ms"] == 1000
            assert {s["name"] for s in first["sensors"]} == {"Temperature", "Humidity"}
            assert all(s["id"] and s["status"] for s in first["sensors"])

            router = first["polled"]["rcms"]["IT-SN-0001"]
            assert 0 <= router["age_s"] < 10
            assert abs(router["polled_at_ms"] / 1000 - time.time()) < 10
            assert "cellular" in router["data"]["data"]  # the newest RCMS status record
            device = first["polled"]["loctube"]["test001"]
            assert 0 <= device["age_s"] < 10 and device["data"]["id"] == "test001"

            # The RCMS record (polled every 60 s) ages while loctube (every 300 ms) is refreshed.
            loctube_polls = polls[("loctube", "ok")]
            await until(lambda: polls.get(("loctube", "ok"), 0) >= loctube_polls + 2, what="more polls")
            second = json.loads((await get(f"{base}/status"))[1])
            assert second["polled"]["rcms"]["IT-SN-0001"]["age_s"] > router["age_s"]
            assert second["polled"]["loctube"]["test001"]["polled_at_ms"] > device["polled_at_ms"]
            await run.stop()


# ------------------------------------------------------------------------------------------------ CLI


async def gatewayd_health(config: Path) -> tuple[int, str, str]:
    return await gatewayd_cli("health", "--config", str(config))


async def test_health_command_exit_status(tmp_path: Path) -> None:
    """1 while unhealthy (503), 0 when healthy (200), 1 once the daemon is gone (connection refused)."""
    async with emulator_env(tmp_path, report_interval_ms=500) as env:
        listen = f"127.0.0.1:{free_port()}"
        config = write_with_http(env, listen)
        inventory = env.load(config)
        assert inventory.http is not None and inventory.http.listen == listen
        env.server.emulator.faults.set("thingplus", outage_s=math.inf)
        async with running(inventory, inventory_path=config) as run:
            rc, out, _ = await gatewayd_health(config)
            assert rc == 1
            assert json.loads(out)["status"] == "unhealthy"

            env.server.emulator.faults.clear("thingplus", "outage")
            await until_health(f"http://{listen}", 200)
            rc, out, err = await gatewayd_health(config)
            assert rc == 0, (out, err)
            assert json.loads(out)["status"] == "ok"
            await run.stop()

        rc, out, _ = await gatewayd_health(config)
        assert rc == 1
        answer = json.loads(out)
        assert answer["status"] == "unreachable" and answer["url"] == f"http://{listen}/healthz"


async def test_health_command_without_an_http_section_fails(tmp_path: Path) -> None:
    config = tmp_path / "inventory.yaml"
    config.write_text(inventory_text("http://127.0.0.1:9", tmp_path / "state"), encoding="utf-8")
    rc, out, err = await gatewayd_health(config)
    assert rc == 1
    assert out == ""
    assert "no 'http' section" in err
