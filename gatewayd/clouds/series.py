"""The one encoder of a Thing+ series body, used by the upload hot path, :meth:`ThingPlusClient.series`
and the tests alike.

Why one: a check that lives on a path production never takes protects nothing. The outbox keeps each
value as JSON text, so the encoder splices that text in as it is (decoding and re-encoding it would be
wasted work at thousands of points a second) and checks only what is cheap to check and costly to get
wrong: a time that is integer unix milliseconds (not seconds, not a float), and a value that is JSON
text of a string or an object (Thing+ takes numbers as strings). A failed check is located (which point,
what was wrong) and is a :class:`~gatewayd.errors.InvalidSeriesError`: a permanent refusal of that body,
so the uploader dead-letters it like a refusal from the cloud instead of stopping, and a ``ValueError``
for a caller of ``series`` that passed bad points.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gatewayd.clouds.jsonbody import text as json_text
from gatewayd.errors import InvalidSeriesError

#: Series times are unix milliseconds; anything below this (1973-03-03 in ms) is surely seconds.
MIN_TIME_MS = 10**11

#: How the JSON text of a string or an object begins and ends.
_OPENERS = ('"', "{")
_CLOSERS = ('"', "}")


def encode_series(times: Sequence[int], values_json: Sequence[str]) -> bytes:
    """The series body for points whose values are already JSON text (a string or an object).

    One point goes as the document's single object, several as an array; compact, in the given order.
    """
    if not times or len(times) != len(values_json):
        raise _refusal(
            f"needs as many times as values, at least one (got {len(times)} and {len(values_json)})"
        )
    try:
        items = [f'{{"value":{v},"time":{t:d}}}' for t, v in zip(times, values_json)]
    except (TypeError, ValueError):  # a time that is not an int: format code "d" refuses it
        raise _refusal(_first_fault(times, values_json)) from None
    try:
        valid = min(times) >= MIN_TIME_MS and all(
            v.startswith(_OPENERS) and v.endswith(_CLOSERS) for v in values_json
        )
    except (AttributeError, TypeError):  # a value that is not text
        valid = False
    if not valid:
        raise _refusal(_first_fault(times, values_json))
    if len(items) == 1:
        return items[0].encode("utf-8")
    return ("[" + ",".join(items) + "]").encode("utf-8")


def encode_points(points: Sequence[tuple[int, Any]]) -> bytes:
    """:func:`encode_series` for ``(time_ms, value)`` points whose values are Python strings or dicts."""
    try:
        values = [json_text(value) for _, value in points]
    except (TypeError, ValueError) as exc:
        raise _refusal(f"a value is not JSON: {exc}") from None
    return encode_series([when for when, _ in points], values)


def _first_fault(times: Sequence[Any], values_json: Sequence[Any]) -> str:
    """The located reason of the first bad point (the slow scan, run only once a check has failed)."""
    for i, (when, value) in enumerate(zip(times, values_json)):
        if isinstance(when, bool) or not isinstance(when, int):
            return f"point {i}: time must be integer unix milliseconds, got {when!r}"
        if when < MIN_TIME_MS:
            return f"point {i}: time must be unix milliseconds, {when} looks like seconds"
        if not (isinstance(value, str) and value.startswith(_OPENERS) and value.endswith(_CLOSERS)):
            return (
                f'point {i}: value must be a JSON string (numbers as strings, e.g. "36.5") '
                f"or object, got {value if isinstance(value, str) else repr(value)}"
            )
    return "times must be integer unix milliseconds and values JSON text"


def _refusal(why: str) -> InvalidSeriesError:
    return InvalidSeriesError(
        f"series body refused before sending: {why}", cloud="thingplus", operation="series"
    )
