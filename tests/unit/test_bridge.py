"""RCMS/loctube bridges: a field of the latest polled record; missing or stale means a failed read."""

from __future__ import annotations

import pytest

from gatewayd.errors import ConfigError, SourceError
from gatewayd.inventory.config import parse_inventory
from gatewayd.sources.bridge import CloudBridge
from gatewayd.sources.latest import LatestState
from gatewayd.sources.pick import pick_path
from tests.conftest import VALID
from tests.helpers.inventories import loctube, rcms

RCMS_RECORD = {
    "time": 1_700_000_040_000,
    "data": {
        "system": {"uptime": "12345"},
        "cellular": {"rssi": -67, "operator": "Demo"},
        "active_link": {"ip": "10.0.0.2"},
    },
}
LOCTUBE_DETAIL = {
    "id": "test001",
    "state": {"text": "online", "value": "online"},
    "properties": {"battery": 88},
}


def bridge(cloud: str, device: str, field: str, latest: LatestState, now: list[float]) -> CloudBridge:
    return CloudBridge(cloud, device, field, latest=latest, poll_interval_s=60, clock=lambda: now[0])


async def test_rcms_field_with_or_without_data_prefix() -> None:
    latest, now = LatestState(), [1000.0]
    latest.put("rcms", "SN1", 990.0, RCMS_RECORD)
    assert await bridge("rcms", "SN1", "cellular.rssi", latest, now).read() == -67
    assert await bridge("rcms", "SN1", "data.cellular.rssi", latest, now).read() == -67
    assert await bridge("rcms", "SN1", "active_link.ip", latest, now).read() == "10.0.0.2"


async def test_loctube_field() -> None:
    latest, now = LatestState(), [1000.0]
    latest.put("loctube", "test001", 999.0, LOCTUBE_DETAIL)
    assert await bridge("loctube", "test001", "state.value", latest, now).read() == "online"
    assert await bridge("loctube", "test001", "properties.battery", latest, now).read() == 88


async def test_no_data_yet_is_a_failed_read() -> None:
    with pytest.raises(SourceError, match="no rcms data for 'SN1' yet"):
        await bridge("rcms", "SN1", "cellular.rssi", LatestState(), [0.0]).read()


async def test_missing_field_is_a_failed_read() -> None:
    latest, now = LatestState(), [1000.0]
    latest.put("rcms", "SN1", 1000.0, RCMS_RECORD)
    with pytest.raises(SourceError, match=r"no field 'cellular\.rsrp'"):
        await bridge("rcms", "SN1", "cellular.rsrp", latest, now).read()
    latest.put("loctube", "d", 1000.0, {"tags": [1, 2], "note": None})
    for field in ("tags", "note"):
        with pytest.raises(SourceError, match="no usable value"):
            await bridge("loctube", "d", field, latest, now).read()


async def test_stale_after_two_poll_intervals() -> None:
    latest, now = LatestState(), [1000.0]
    latest.put("loctube", "test001", 1000.0, LOCTUBE_DETAIL)
    source = bridge("loctube", "test001", "state.value", latest, now)
    now[0] = 1000.0 + 120.0
    assert await source.read() == "online"
    now[0] = 1000.0 + 121.0
    with pytest.raises(SourceError, match="stale"):
        await source.read()
    latest.put("loctube", "test001", now[0], LOCTUBE_DETAIL)  # a fresh poll heals it
    assert await source.read() == "online"


async def test_a_refused_answer_fails_the_read_at_once_until_a_trusted_one() -> None:
    latest, now = LatestState(), [1000.0]
    latest.put("loctube", "test001", 1000.0, LOCTUBE_DETAIL)
    source = bridge("loctube", "test001", "state.value", latest, now)
    other = bridge("loctube", "other", "state.value", latest, now)
    latest.put("loctube", "other", 1000.0, LOCTUBE_DETAIL)
    latest.refuse("loctube", "test001", "answer carries no X-Sign")
    with pytest.raises(
        SourceError, match="last loctube answer for 'test001' was refused: answer carries no X-Sign"
    ):
        await source.read()
    assert await other.read() == "online"  # one device's refusal is its own
    assert latest.get("loctube", "test001") == (1000.0, LOCTUBE_DETAIL)  # the record was not replaced
    latest.put("loctube", "test001", 1001.0, LOCTUBE_DETAIL)
    assert await source.read() == "online"


def test_pick_path_lists_and_root() -> None:
    doc = {"a": [{"b": 1}, {"b": 2}]}
    assert pick_path(doc, "a.1.b") == 2
    assert pick_path(doc, "$.a.-1.b") == 2
    assert pick_path(doc, None) is doc
    with pytest.raises(SourceError, match=r"no field 'a\.5'"):
        pick_path(doc, "a.5.b")


def _with_bridge(source: str, sections: str = "") -> str:
    return VALID.replace("simulate: {pattern: sine, min: 18, max: 26, period: 1h}", source) + sections


RCMS_SECTION = rcms("https://r.example", devices=["SN1"])
LOCTUBE_SECTION = loctube("https://l.example", devices=["test001"])


def test_bridge_needs_its_section() -> None:
    with pytest.raises(ConfigError) as info:
        parse_inventory(_with_bridge("rcms: {sn: SN1, field: cellular.rssi}"), "inv.yaml", env={})
    assert [str(p) for p in info.value.problems] == [
        "inv.yaml:15:9: devices[0].sensors[0].rcms: bridges an RCMS router, but the inventory has no 'rcms' section"
    ]


def test_bridge_to_an_unpolled_router_or_device() -> None:
    text = _with_bridge("rcms: {sn: SN9, field: cellular.rssi}", RCMS_SECTION)
    with pytest.raises(ConfigError) as info:
        parse_inventory(text, "inv.yaml", env={})
    (problem,) = info.value.problems
    assert problem.path == "devices[0].sensors[0].rcms.sn"
    assert "router 'SN9' is not in rcms.devices" in problem.message
    assert problem.line == 15

    text = _with_bridge("loctube: {device: nope, field: state.value}", LOCTUBE_SECTION)
    with pytest.raises(ConfigError) as info:
        parse_inventory(text, "inv.yaml", env={})
    (problem,) = info.value.problems
    assert problem.path == "devices[0].sensors[0].loctube.device"


def test_valid_bridges() -> None:
    text = _with_bridge("loctube: {device: test001, field: state.value}", LOCTUBE_SECTION)
    sensor = parse_inventory(text, env={}).devices[0].sensors[0]
    assert sensor.source_kind == "loctube"
    assert sensor.loctube is not None and sensor.loctube.field == "state.value"


def test_rcms_lookback_and_max_age_keys() -> None:
    text = _with_bridge(
        "rcms: {sn: SN1, field: cellular.rssi, max_age: 10m}",
        rcms("https://r.example", devices=["SN1"], lookback="2h"),
    )
    inventory = parse_inventory(text, env={})
    assert inventory.rcms is not None and inventory.rcms.lookback == 7200
    sensor = inventory.devices[0].sensors[0]
    assert sensor.rcms is not None and sensor.rcms.max_age == 600
    defaults = parse_inventory(_with_bridge("rcms: {sn: SN1, field: cellular.rssi}", RCMS_SECTION), env={})
    assert defaults.rcms is not None and defaults.rcms.lookback == 3600
    assert defaults.devices[0].sensors[0].rcms is not None
    assert defaults.devices[0].sensors[0].rcms.max_age is None


@pytest.mark.parametrize(
    ("bridge", "lookback", "expected"),
    [
        (
            "rcms: {sn: SN1, field: cellular.rssi}",
            "5d",
            "inv.yaml:21:3: rcms.lookback: must be at most 4d (got 432000s): Thing+ refuses points about "
            "5 days old, so older RCMS history is never fetched",
        ),
        (
            "rcms: {sn: SN1, field: cellular.rssi}",
            "0",
            "inv.yaml:21:3: rcms.lookback: must be greater than zero (got 0)",
        ),
        (
            "rcms: {sn: SN1, field: cellular.rssi, max_age: -5s}",
            "1h",
            "inv.yaml:15:47: devices[0].sensors[0].rcms.max_age: cannot parse duration '-5s': use a number "
            "of seconds or '500ms', '10s', '5m', '1h', '1d'",
        ),
        (
            "rcms: {sn: SN1, field: cellular.rssi, maxage: 5m}",
            "1h",
            "inv.yaml:15:47: devices[0].sensors[0].rcms.maxage: unknown key",
        ),
    ],
)
def test_rcms_history_keys_are_checked_with_their_place(bridge: str, lookback: str, expected: str) -> None:
    text = _with_bridge(bridge, rcms("https://r.example", devices=["SN1"], lookback=lookback))
    with pytest.raises(ConfigError) as info:
        parse_inventory(text, "inv.yaml", env={})
    assert [str(p) for p in info.value.problems] == [expected]
