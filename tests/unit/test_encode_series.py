"""The one series encoder: the bytes it builds, and the points it refuses before anything is sent."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatewayd.clouds.series import MIN_TIME_MS, encode_points, encode_series
from gatewayd.errors import InvalidSeriesError, PermanentError

T0 = 1_495_715_734_508

values = st.one_of(
    st.text(max_size=12),
    st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5)), max_size=3),
)
points = st.lists(
    st.tuples(st.integers(min_value=MIN_TIME_MS, max_value=2 * 10**12), values), min_size=1, max_size=20
)


@given(points)
def test_any_valid_points_round_trip(pts: list[tuple[int, Any]]) -> None:
    body = encode_series([t for t, _ in pts], [json.dumps(v, separators=(",", ":")) for _, v in pts])
    decoded = json.loads(body)
    items = decoded if isinstance(decoded, list) else [decoded]
    assert items == [{"value": v, "time": t} for t, v in pts]
    assert json.loads(encode_points(pts)) == decoded


@pytest.mark.parametrize(
    ("times", "values_json", "expected"),
    [
        ([T0], ['"36.5"'], b'{"value":"36.5","time":1495715734508}'),
        (
            [T0, T0 + 1],
            ['"36.5"', '{"lat":1}'],
            b'[{"value":"36.5","time":1495715734508},{"value":{"lat":1},"time":1495715734509}]',
        ),
        ([T0], ['"z\u00e4hler"'], '{"value":"z\u00e4hler","time":1495715734508}'.encode()),
    ],
    ids=["one point is the single object", "several are an array", "utf-8 as is"],
)
def test_exact_bytes(times: list[int], values_json: list[str], expected: bytes) -> None:
    assert encode_series(times, values_json) == expected


@pytest.mark.parametrize(
    ("times", "values_json", "reason"),
    [
        ([], [], "at least one"),
        ([T0, T0], ['"1"'], "as many times as values"),
        ([T0 / 1], ['"1"'], "point 0: time must be integer unix milliseconds, got 1495715734508.0"),
        ([T0, True], ['"1"', '"1"'], "point 1: time must be integer unix milliseconds, got True"),
        ([str(T0)], ['"1"'], "point 0: time must be integer unix milliseconds"),
        (
            [T0, 1495715734],
            ['"1"', '"1"'],
            "point 1: time must be unix milliseconds, 1495715734 looks like seconds",
        ),
        ([-T0], ['"1"'], "point 0: time must be unix milliseconds"),
        (
            [T0],
            ["36.5"],
            'point 0: value must be a JSON string (numbers as strings, e.g. "36.5") or object, got 36.5',
        ),
        ([T0], ["null"], "got null"),
        ([T0], ["[1]"], "got [1]"),
        ([T0], ['"open'], 'got "open'),
        ([T0], [""], "point 0: value must be"),
        ([T0], [b'"1"'], "got b'\"1\"'"),
    ],
)
def test_refused_before_sending_with_the_point_at_fault(
    times: list[Any], values_json: list[Any], reason: str
) -> None:
    with pytest.raises(InvalidSeriesError) as info:
        encode_series(times, values_json)
    assert reason in info.value.message
    assert (info.value.cloud, info.value.operation, info.value.kind) == ("thingplus", "series", "permanent")
    # a refusal the uploader dead-letters like the cloud's, and a ValueError for a caller's bad points
    assert isinstance(info.value, PermanentError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("pts", "reason"),
    [
        ([(T0, 36.5)], "got 36.5"),
        ([(T0, True)], "got true"),
        ([(T0, None)], "got null"),
        ([(T0, {"x": float("nan")})], "a value is not JSON"),
        ([(T0, object())], "a value is not JSON"),
    ],
)
def test_python_points_are_checked_by_the_same_encoder(pts: list[tuple[int, Any]], reason: str) -> None:
    with pytest.raises(InvalidSeriesError, match="series body refused before sending") as info:
        encode_points(pts)
    assert reason in info.value.message
