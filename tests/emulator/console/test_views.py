"""The console's sections as pure functions of the emulator's state: table tests, no server."""

from __future__ import annotations

from typing import Any

import pytest

from gatewayd.emulator.console.requestlog import RequestLog
from gatewayd.emulator.console.state import DaemonLink
from gatewayd.emulator.console.thingplusviews import (
    GATEWAYS_PAGE,
    SENSORS_PAGE,
    Actuators,
    default_gateway,
    gateway_status,
    gateways_view,
    paged,
    rpc_view,
    sensors_view,
)
from gatewayd.emulator.console.views import (
    clouds_view,
    faults_view,
    health,
    links_view,
    loctube_view,
    mqtt_view,
    rcms_view,
)
from gatewayd.emulator.faults import Faults
from gatewayd.emulator.loctube import LoctubeEmulator
from gatewayd.emulator.rcms import RcmsEmulator
from tests.emulator import ALL_CLOUDS, inventory
from tests.emulator.console import add_gateway, add_points, add_status, thingplus
from tests.helpers.clocks import FakeClock

NO_FAULT: dict[str, Any] = {
    "outage": None,
    "failure_rate": 0.0,
    "failure_statuses": [503, 500],
    "latency_s": 0.0,
    "rate_limit": None,
    "oauth2_form_only": False,
    "injected": {},
}


@pytest.mark.parametrize(
    ("faults", "expected"),
    [
        ({}, "ok"),
        ({"outage": {"until_cleared": True, "remaining_s": None}}, "down"),
        ({"outage": {"until_cleared": False, "remaining_s": 3.0}, "latency_s": 0.5}, "down"),
        ({"failure_rate": 0.2}, "faulted"),
        ({"latency_s": 0.5}, "faulted"),
        ({"rate_limit": {"remaining_count": 3, "window_remaining_s": None, "retry_after": None}}, "faulted"),
        ({"oauth2_form_only": True}, "ok"),  # a server setting, not a failure
    ],
)
def test_a_cloud_card_is_down_in_an_outage_faulted_with_another_fault_else_ok(
    faults: dict[str, Any], expected: str
) -> None:
    assert health({**NO_FAULT, **faults}) == expected


def test_clouds_view_says_which_clouds_are_served_with_their_health_and_counts() -> None:
    registry = Faults(monotonic=FakeClock(100.0))
    registry.set("rcms", outage_s=30)
    registry.set("loctube", failure_rate=0.5)
    requests = RequestLog()
    requests.record("thingplus", "GET", "/v2/sites", 200, None)
    requests.record("thingplus", "GET", "/v2/sites", 503, b"503 Service Unavailable (emulated outage)\n")
    view = clouds_view(frozenset({"thingplus", "rcms"}), registry.snapshot(), requests)
    assert view["thingplus"] == {
        "served": True,
        "health": "ok",
        "requests": 2,
        "refused": 1,
        "by_status": {"200": 1, "503": 1},
    }
    assert (view["rcms"]["served"], view["rcms"]["health"]) == (True, "down")
    assert (view["loctube"]["served"], view["loctube"]["health"]) == (False, "faulted")


def test_faults_view_lists_only_what_is_set_and_the_mqtt_outage_when_active() -> None:
    clock = FakeClock(100.0)
    registry = Faults(monotonic=clock)
    registry.set("thingplus", outage_s=30, latency_s=0.25)
    clock.advance(10)
    view = faults_view(registry.snapshot(), {"active": True, "seconds_left": 5.0})
    assert view["thingplus"]["set"] == {
        "outage": {"until_cleared": False, "remaining_s": 20.0},
        "latency_s": 0.25,
    }
    assert view["rcms"] == {"set": {}, "injected": {}}
    assert view["mqtt"]["set"]["outage"]["seconds_left"] == 5.0
    assert "mqtt" not in faults_view(registry.snapshot(), {"active": False})


@pytest.mark.parametrize(
    ("items", "page", "size", "expected"),
    [
        (list(range(5)), 0, 2, ([0, 1], 0, 3)),
        (list(range(5)), 2, 2, ([4], 2, 3)),
        (list(range(5)), 9, 2, ([4], 2, 3)),  # past the end: the last page
        (list(range(5)), -1, 2, ([0, 1], 0, 3)),
        ([], 3, 2, ([], 0, 0)),
        (list(range(4)), 1, 2, ([2, 3], 1, 2)),
    ],
)
def test_paged(items: list[int], page: int, size: int, expected: tuple[list[int], int, int]) -> None:
    assert paged(items, page, size) == expected


def test_gateways_view_pages_filters_and_shows_status_and_counts() -> None:
    tp = thingplus()
    for i in range(GATEWAYS_PAGE + 5):
        add_gateway(tp, f"gw{i:03d}", sensors=2 if i == 7 else 0)
    record = add_status(tp, "gw007", "on", valid_s=30)
    view = gateways_view(tp)
    # the HTTPS gateways, then the MQTT gateways the portal knows (the demo one, always)
    assert (view["total"], view["matched"], view["page"], view["pages"]) == (GATEWAYS_PAGE + 6,) * 2 + (0, 2)
    assert len(view["rows"]) == GATEWAYS_PAGE
    row = view["rows"][7]
    assert row == {
        "id": "gw007",
        "name": "Gateway gw007",
        "transport": "https",
        "status": "on",
        "expireAt": record.expire_at,
        "reportInterval": "5000",
        "devices": 1,
        "sensors": 2,
    }
    last = gateways_view(tp, page=1)
    assert [r["id"] for r in last["rows"]][-2:] == ["gw054", "b827eb000001"]
    assert last["rows"][-1]["transport"] == "mqtt"
    assert [r["id"] for r in gateways_view(tp, text="GW00")["rows"]] == [f"gw00{i}" for i in range(10)]


def test_an_mqtt_gateway_is_off_when_disconnected_and_err_after_its_last_will() -> None:
    tp = thingplus()
    gateway = "b827eb000001"
    assert gateway_status(tp, gateway, "mqtt") == (None, None)
    tp.mqtt.connected(gateway)
    tp.mqtt.link(gateway).mqtt_status = "on"
    assert gateway_status(tp, gateway, "mqtt") == ("on", None)
    record = add_status(tp, gateway, "on", valid_s=10)
    assert gateway_status(tp, gateway, "mqtt") == ("on", record.expire_at)
    tp.mqtt.disconnected(gateway)
    assert gateway_status(tp, gateway, "mqtt")[0] == "off"
    tp.mqtt.link(gateway).mqtt_status = "err"
    assert gateway_status(tp, gateway, "mqtt")[0] == "err"


def test_sensors_view_pages_one_gateways_sensors_with_latest_values_and_statuses() -> None:
    tp = thingplus()
    ids = add_gateway(tp, "gw", sensors=SENSORS_PAGE + 20)
    add_gateway(tp, "other", sensors=3)
    # the latest point is the last received, whatever its time (a late retry shows as the latest)
    add_points(tp, ids[1], "20.5", "21.5", start_ms=tp.now_ms() - 10_000)
    add_points(tp, ids[1], "19.0", start_ms=tp.now_ms() - 600_000)
    tp.sensor_statuses[ids[1]] = [add_status(tp, "gw", "err", valid_s=60)]
    view = sensors_view(tp, "gw")
    assert (view["gateway"], view["name"], view["known"]) == ("gw", "Gateway gw", True)
    assert (view["total"], view["matched"], view["page"], view["pages"]) == (SENSORS_PAGE + 20,) * 2 + (0, 2)
    assert len(view["rows"]) == SENSORS_PAGE
    row = view["rows"][1]
    assert (row["value"], row["points"], row["status"]) == ("19.0", 3, "err")
    assert row["time"] == tp.points[ids[1]][-1].time
    assert view["rows"][0]["value"] is None and view["rows"][0]["status"] is None
    second = sensors_view(tp, "gw", page=1)
    assert [r["id"] for r in second["rows"]] == ids[SENSORS_PAGE:]
    filtered = sensors_view(tp, "gw", text="sensor 11")
    assert [r["name"] for r in filtered["rows"]] == ["Sensor 11", *(f"Sensor {i}" for i in range(110, 120))]
    assert sensors_view(tp, "nope")["known"] is False
    assert sensors_view(tp, None)["rows"] == []


def test_the_default_gateway_is_the_first_with_sensors() -> None:
    tp = thingplus()
    add_gateway(tp, "empty")
    assert default_gateway(tp) == "empty"
    add_gateway(tp, "full", sensors=1)
    assert default_gateway(tp) == "full"


def test_command_targets_are_connected_mqtt_gateways_with_their_actuators() -> None:
    tp = thingplus()
    gateway = "b827eb000001"
    assert rpc_view(tp, Actuators()) == {"served": False, "gateways": []}
    tp.mqtt.port = 1883
    actuators = Actuators()
    assert rpc_view(tp, actuators)["gateways"] == []
    tp.mqtt.connected(gateway)
    add_gateway(tp, gateway, sensors=2)
    assert rpc_view(tp, actuators)["gateways"] == [{"id": gateway, "actuators": []}]
    (switch,) = add_gateway(tp, gateway, sensors=1, sensor_type="powerSwitch", category="actuator")
    targets = rpc_view(tp, actuators)["gateways"]
    assert targets == [
        {"id": gateway, "actuators": [{"id": switch, "name": "Sensor 2", "type": "powerSwitch"}]}
    ]


def test_rcms_and_loctube_views_show_what_the_clouds_hold_and_no_secret() -> None:
    config = inventory(ALL_CLOUDS)
    assert config.rcms is not None and config.loctube is not None
    clock = FakeClock()
    now_ms = int(clock() * 1000)
    rcms = RcmsEmulator(config.rcms, clock=clock)
    rcms.set_record_interval(10_000, "SN-0001", since_ms=0)
    view = rcms_view(rcms, now_ms)
    (router,) = view["routers"]
    assert (view["served"], view["total"], router["sn"], router["interval_ms"]) == (
        True,
        1,
        "SN-0001",
        10_000,
    )
    assert router["last_record"] == now_ms - now_ms % 10_000
    assert router["online"] == rcms.is_online("SN-0001", now_ms / 1000)
    loctube = LoctubeEmulator(config.loctube, clock=clock)
    (device,) = loctube_view(loctube, now_ms)["devices"]
    assert device["id"] == "dev0001" and set(device["properties"]) == {
        "battery",
        "latitude",
        "longitude",
        "speed",
    }
    text = repr((view, loctube_view(loctube, now_ms)))
    assert config.rcms.client_secret.reveal() not in text
    assert config.loctube.secure_key.reveal() not in text
    assert rcms_view(None, now_ms)["served"] is False and loctube_view(None, now_ms)["served"] is False


def test_mqtt_view_counts_connected_gateways_and_shows_no_api_key() -> None:
    tp = thingplus()
    assert mqtt_view(tp.mqtt) == {"served": False}
    tp.mqtt.port = 1883
    tp.mqtt.connected("b827eb000001")
    tp.mqtt.link("b827eb000001").mqtt_status = "on"
    tp.mqtt.count("points", "b827eb000001", 5)
    view = mqtt_view(tp.mqtt)
    assert (view["port"], view["known"], view["connected"], view["counts"]) == (1883, 1, 1, {"points": 5})
    assert view["links"] == [
        {"gateway": "b827eb000001", "connected": True, "node_status": "on", "messages": 0, "points": 5}
    ]
    assert "demo-mqtt-apikey" not in repr(view)


def test_links_view() -> None:
    assert links_view([DaemonLink("HTTPS gateway", "http://127.0.0.1:9108/")]) == [
        {"label": "HTTPS gateway", "url": "http://127.0.0.1:9108/"}
    ]
