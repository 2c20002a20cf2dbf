"""The fleet's pure parts as tables: shard selection, derived ids, the template filled in, churn's picks."""

from __future__ import annotations

import pytest

from gatewayd.errors import ConfigError
from gatewayd.fleet.churn import goes_offline, sensor_fails
from gatewayd.fleet.ids import fleet_id, id_maker
from gatewayd.fleet.shards import Shard, select_shard
from gatewayd.inventory.config import parse_inventory
from gatewayd.inventory.fleet import expand, fill
from tests.helpers.inventories import inventory_yaml


@pytest.mark.parametrize(
    ("shard", "shards", "env", "hostname", "expected"),
    [
        (
            None,
            None,
            {},
            "laptop-2",
            Shard(0, 1),
        ),  # nothing says: the whole fleet (the hostname alone is not enough)
        ("1/3", None, {"JOB_COMPLETION_INDEX": "2"}, "x", Shard(1, 3)),  # --shard first
        (None, None, {"JOB_COMPLETION_INDEX": "2", "GATEWAYD_FLEET_SHARDS": "3"}, "x", Shard(2, 3)),
        (None, 4, {"JOB_COMPLETION_INDEX": "3", "GATEWAYD_FLEET_SHARDS": "9"}, "x", Shard(3, 4)),
        (None, None, {"GATEWAYD_FLEET_SHARDS": "100"}, "fleet-shard-42", Shard(42, 100)),  # StatefulSet
        (None, 5, {"JOB_COMPLETION_INDEX": ""}, "fleet-7", ConfigError),  # ordinal 7 of 5
        (None, None, {"JOB_COMPLETION_INDEX": "1"}, "x", ConfigError),  # index without a count
        (None, 3, {}, "laptop", ConfigError),  # a count without an index
        ("3/3", None, {}, "x", ConfigError),
        ("1-3", None, {}, "x", ConfigError),
        (None, None, {"JOB_COMPLETION_INDEX": "a", "GATEWAYD_FLEET_SHARDS": "3"}, "x", ConfigError),
    ],
)
def test_shard_selection(shard, shards, env, hostname, expected) -> None:  # type: ignore[no-untyped-def]
    if expected is ConfigError:
        with pytest.raises(ConfigError):
            select_shard(shard, shards, env, hostname)
    else:
        assert select_shard(shard, shards, env, hostname) == expected


@pytest.mark.parametrize(("gateways", "shards"), [(30, 3), (10, 3), (1000, 7), (2, 5)])
def test_shards_split_the_fleet_once(gateways: int, shards: int) -> None:
    taken = [i for s in range(shards) for i in Shard(s, shards).indices(gateways)]
    assert sorted(taken) == list(range(gateways))
    assert all(i % shards == s for s in range(shards) for i in Shard(s, shards).indices(gateways))


def test_ids_derive_from_the_fleet_name_the_index_and_the_object() -> None:
    a = id_maker("Fleet A", 3)
    assert a("gateway") == fleet_id("Fleet A", 3, "gateway")  # the same on every run
    assert len(a("gateway")) == 32 and a("gateway") == a("gateway").lower()
    ids = {
        fleet_id(name, index, key)
        for name in ("Fleet A", "Fleet B")
        for index in range(50)
        for key in ("gateway", "device:Room", "sensor:Room/T")
    }
    assert len(ids) == 2 * 50 * 3


@pytest.mark.parametrize(
    ("text", "index", "shard", "expected"),
    [
        ("Site {index}", 7, 0, "Site 7"),
        ("Site {index:04d}", 7, 0, "Site 0007"),
        ("s{shard}-g{index:x}", 255, 2, "s2-gff"),
        ("{other} {index}", 1, 0, "{other} 1"),  # only the fleet's fields are filled
        ("no placeholder", 1, 0, "no placeholder"),
    ],
)
def test_placeholders(text: str, index: int, shard: int, expected: str) -> None:
    assert fill(text, index, shard) == expected


DEVICES = """\
  - name: "Bay {index}"
    sensors:
      - name: T
        type: temperature
        simulate: {pattern: uniform, min: 0, max: "{index}", seed: 1}
      - name: H
        type: humidity
        simulate: {pattern: constant, value: 50}
"""


def fleet_text(seed: int = 5) -> str:
    return f"fleet: {{gateways: 4, seed: {seed}}}\n" + inventory_yaml(
        gateway='{name: "G{index:02d}"}', state_dir="/tmp/x", devices=DEVICES
    )


def test_each_gateway_gets_its_names_parameters_and_seeds() -> None:
    one = parse_inventory(fleet_text(), fleet_gateway=(1, 0))
    two = parse_inventory(fleet_text(), fleet_gateway=(2, 0))
    assert (one.gateway.name, one.devices[0].name) == ("G01", "Bay 1")
    assert one.devices[0].sensors[0].simulate.max == 1.0  # type: ignore[union-attr]
    assert two.devices[0].sensors[0].simulate.max == 2.0  # type: ignore[union-attr]
    seeds = [
        parse_inventory(fleet_text(), fleet_gateway=(i, 0)).devices[0].sensors[0].simulate.seed
        for i in (1, 2)
    ]  # type: ignore[union-attr]
    assert seeds[0] != seeds[1]  # different per gateway ...
    assert seeds[0] == parse_inventory(fleet_text(), fleet_gateway=(1, 0)).devices[0].sensors[0].simulate.seed  # type: ignore[union-attr]
    other = parse_inventory(fleet_text(seed=6), fleet_gateway=(1, 0))
    assert other.devices[0].sensors[0].simulate.seed != seeds[0]  # type: ignore[union-attr]  # ... and per fleet seed


def test_expand_leaves_the_template_alone() -> None:
    data = {"gateway": {"name": "G{index}"}, "devices": [{"name": "D{index}", "sensors": []}]}
    assert expand(data, 3, 0, None) == {"gateway": {"name": "G3"}, "devices": [{"name": "D3", "sensors": []}]}
    assert data["gateway"] == {"name": "G{index}"}


def test_a_fleet_polls_no_other_cloud() -> None:
    text = fleet_text() + "rcms: {endpoint: 'https://r.example', client_id: a, client_secret: b}\n"
    with pytest.raises(ConfigError, match="a fleet simulates Thing\\+ gateways"):
        parse_inventory(text)


def test_churn_picks_about_its_fraction_the_same_way_every_time() -> None:
    picked = [i for i in range(10_000) if goes_offline(7, 1, i, 0.1)]
    assert 900 < len(picked) < 1100
    assert picked == [i for i in range(10_000) if goes_offline(7, 1, i, 0.1)]
    assert picked != [i for i in range(10_000) if goes_offline(7, 2, i, 0.1)]  # another round, others
    assert not any(goes_offline(7, 1, i, 0.0) for i in range(1000))
    assert all(sensor_fails(7, 1, i, "D/S", 1.0) for i in range(1000))
