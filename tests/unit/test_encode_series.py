"""The upload hot path's pre-encoded series body is the body :meth:`ThingPlusClient.series` would send."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from gatewayd.clouds.thingplus import _dumps, _series_body, encode_series

values = st.one_of(
    st.text(max_size=12),
    st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5)), max_size=3),
)
points = st.lists(
    st.tuples(st.integers(min_value=10**12, max_value=2 * 10**12), values), min_size=1, max_size=20
)


@given(points)
def test_same_json_as_the_checked_encoder(pts: list[tuple[int, str | dict[str, object]]]) -> None:
    body = encode_series([t for t, _ in pts], [json.dumps(v, separators=(",", ":")) for _, v in pts])
    assert json.loads(body) == json.loads(_dumps(_series_body(pts)))


def test_exact_bytes_single_and_many() -> None:
    assert encode_series([1495715734508], ['"36.5"']) == b'{"value":"36.5","time":1495715734508}'
    assert encode_series([1, 2], ['"36.5"', '{"lat":1}']) == (
        b'[{"value":"36.5","time":1},{"value":{"lat":1},"time":2}]'
    )
    assert encode_series([1495715734508], ['"36.5"']) == _dumps(_series_body([(1495715734508, "36.5")]))
