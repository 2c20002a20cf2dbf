"""A fleet shard's /metrics: per-fleet totals under the daemon's names, no label per gateway."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from gatewayd.fleet.report import render_fleet_metrics
from tests.helpers.fleetreports import gateway, latencies


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_fleet_metrics_are_totals_without_a_gateway_label() -> None:
    gateways = [gateway(statuses_sent=2) for _ in range(500)] + [
        gateway("offline", delivered=0, pending=60, lost=3, errors_by_kind={"timeout": 4}) for _ in range(500)
    ]
    text = render_fleet_metrics("big", 2, 100, gateways, latencies(0.02, 0.3, 0.3).snapshot())
    samples = _samples(text)
    assert samples[("gatewayd_fleet_info", (("fleet", "big"), ("shard", "2"), ("shards", "100")))] == 1
    assert samples[("gatewayd_fleet_gateways", (("status", "up"),))] == 500
    assert samples[("gatewayd_fleet_gateways", (("status", "offline"),))] == 500
    assert samples[("gatewayd_fleet_gateways_registered", ())] == 1000
    assert samples[("gatewayd_points_sampled_total", ())] == 60_000
    assert samples[("gatewayd_points_uploaded_total", ())] == 30_000
    assert samples[("gatewayd_fleet_points_lost_total", ())] == 1500
    assert samples[("gatewayd_statuses_sent_total", ())] == 1000
    assert samples[("gatewayd_upload_errors_total", (("cloud", "thingplus"), ("kind", "timeout")))] == 2000
    assert samples[("gatewayd_outbox_points", ())] == 30_000
    series = (("cloud", "thingplus"), ("operation", "series"))
    assert samples[("gatewayd_request_seconds_count", series)] == 3
    assert samples[("gatewayd_request_seconds_bucket", (*series[:1], ("le", "0.25"), *series[1:]))] == 1
    assert any(name == "gatewayd_build_info" for name, _ in samples)
    # a thousand gateways, and the number of series does not grow with them
    assert len(samples) < 40
    assert not any("gateway" in dict(labels) for _, labels in samples)


def test_statuses_up_and_offline_are_always_shown() -> None:
    samples = _samples(render_fleet_metrics("f", 0, 1, [gateway("starting", registered=False)], {}))
    by_status = {
        dict(labels)["status"]: value
        for (name, labels), value in samples.items()
        if name == "gatewayd_fleet_gateways"
    }
    assert by_status == {"up": 0, "offline": 0, "starting": 1}
    assert samples[("gatewayd_fleet_gateways_registered", ())] == 0
