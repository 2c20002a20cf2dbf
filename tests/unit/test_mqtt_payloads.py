"""Thing+ MQTT payloads: the gateway status, and gateway data split to a bounded size (tables)."""

from __future__ import annotations

import json

import pytest

from gatewayd.clouds.mqttpayloads import DataMessage, data_messages, gateway_status, status_value
from gatewayd.outbox import Lease


def lease(sensor: str, first_id: int, times: list[int], values: list[str] | None = None) -> Lease:
    ids = list(range(first_id, first_id + len(times)))
    vals = values if values is not None else [json.dumps(str(i)) for i in ids]
    return Lease(sensor, ids[0], ids[-1], times, vals, ids)


IDS = {"a": "gw-dev-temperature", "b": "gw-dev-humidity", "c": "gw-dev-number-1"}


@pytest.mark.parametrize(
    ("status", "valid", "sensors", "payload"),
    [
        ("on", 90, [], "on,90"),
        ("on", 90, [("s1", "on"), ("s2", "err")], "on,90,s1,on,90,s2,err,90"),
        ("on", 2, [("s1", "err:bad, worse")], "on,2,s1,err:bad; worse,2"),
        ("off", 1, [("s1", "off")], "off,1,s1,off,1"),
    ],
)
def test_gateway_status(status: str, valid: int, sensors: list[tuple[str, str]], payload: str) -> None:
    assert gateway_status(status, valid, sensors) == payload.encode()


@pytest.mark.parametrize("value", ["ok", "", "ON"])
def test_unknown_status_refused(value: str) -> None:
    with pytest.raises(ValueError, match="status must be one of"):
        status_value(value)


def decoded(messages: list[DataMessage]) -> list[dict[str, list[object]]]:
    return [json.loads(m.payload) for m in messages]


@pytest.mark.parametrize(
    ("leases", "max_bytes", "expected"),
    [
        # everything fits in one message; the sensor with the oldest point first
        (
            [lease("b", 10, [2000, 3000]), lease("a", 1, [1000])],
            1000,
            [{"gw-dev-temperature": [1000, "1"], "gw-dev-humidity": [2000, "10", 3000, "11"]}],
        ),
        # a lease read out of time order goes in time order
        (
            [lease("a", 1, [3000, 1000, 2000])],
            1000,
            [{"gw-dev-temperature": [1000, "2", 2000, "3", 3000, "1"]}],
        ),
        # a small bound: one lease split across messages in its order, the next sensor after it
        (
            [lease("a", 1, [1000, 2000, 3000]), lease("c", 7, [4000])],
            45,
            [
                {"gw-dev-temperature": [1000, "1", 2000, "2"]},
                {"gw-dev-temperature": [3000, "3"]},
                {"gw-dev-number-1": [4000, "7"]},
            ],
        ),
        # a point bigger than the bound still goes, alone
        ([lease("a", 1, [1000], ['"' + "x" * 100 + '"'])], 30, [{"gw-dev-temperature": [1000, "x" * 100]}]),
    ],
)
def test_data_messages(leases: list[Lease], max_bytes: int, expected: list[dict[str, list[object]]]) -> None:
    assert decoded(data_messages(leases, IDS, max_bytes)) == expected


@pytest.mark.parametrize("max_bytes", [45, 64, 100, 333, 4096])
def test_split_keeps_every_point_once_within_the_bound(max_bytes: int) -> None:
    leases = [lease(s, 100 * i, [1000 + 7 * k + i for k in range(40)]) for i, s in enumerate("abc", 1)]
    messages = data_messages(leases, IDS, max_bytes)
    assert all(len(m.payload) <= max_bytes for m in messages)
    seen: dict[str, list[int]] = {}
    for m in messages:
        for part in m.parts:  # the parts a message carries are the points it holds
            body = json.loads(m.payload)[IDS[part.sensor_id]]
            assert body[0::2] == part.times and part.ids == list(range(part.first_id, part.last_id + 1))
            seen.setdefault(part.sensor_id, []).extend(part.times)
    assert seen == {lease.sensor_id: lease.times for lease in leases}
