"""The emulated Thing+'s body checks: each from the document, or from the real server where it is laxer.

Where the real platform (an error suite recorded against its sandbox) accepts more than the document
shows, these accept it too: a client tested here must not fail there, nor be refused here for what the
real platform takes. The server is JavaScript, so a JSON number is a double: ``90.0`` and ``90`` are the
same number and both are an integer wherever one is asked for (:func:`as_integer`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from gatewayd.emulator.thingplus.model import Point
from gatewayd.emulator.thingplus.wire import conflict, invalid, schema

_REQ_ID = re.compile(r"^[0-9a-f]{32}$")
_INTEGER_TEXT = re.compile(r"^[0-9]+$")
_STATUS_VALUES = ("on", "off", "err")
_YES_NO = ("y", "n")
#: Types whose value is free text or an object; every other type needs a numeric string.
FREE_TYPES = frozenset({"string", "onoff", "location"})

_NONE: frozenset[str] = frozenset()


def keys(obj: Any, where: str, *, required: tuple[str, ...], optional: frozenset[str] = _NONE) -> None:
    """``obj`` is an object with every ``required`` key and no key outside ``required`` + ``optional``."""
    if isinstance(obj, dict) and len(obj) == len(required) and all(map(obj.__contains__, required)):
        return  # exactly the required keys: the common case, without building sets
    if not isinstance(obj, dict):
        raise schema(f"{where} must be an object, not {json_type(obj)}")
    extra = sorted(set(obj) - set(required) - optional)
    if extra:
        raise schema(f"{where} has unknown key(s): {', '.join(extra)}")
    missing = [k for k in required if k not in obj]
    if missing:
        raise schema(f"{where} is missing required key(s): {', '.join(missing)}")


def conflict_first(body: Any, store: Mapping[str, Any], what: str) -> None:
    """409 CONFLICT for a ``reqId`` that exists, before any other check of the body (the real order)."""
    if isinstance(body, dict):
        req = body.get("reqId")
        if isinstance(req, str) and req in store:
            raise conflict(f"{what} {req} already exists")


def string(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj[key]
    if not isinstance(value, str):
        raise schema(f"{where}.{key} must be a string, not {json_type(value)}")
    if not value:
        raise schema(f"{where}.{key} must not be empty")
    return value


def req_id(value: Any) -> str:
    """The Open API Gateway model's idFormat is uuid: 32 lowercase hex digits, no dashes."""
    if not isinstance(value, str):
        raise schema(f"reqId must be a string, not {json_type(value)}")
    if not _REQ_ID.match(value):
        raise schema(f"reqId {value!r} is not a uuid without dashes in lowercase (32 hex digits)")
    return value


def as_integer(value: Any) -> int | None:
    """``value`` as an integer the way a JavaScript server reads JSON (``90.0`` is 90), or None."""
    if type(value) is int:
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def yes_no(obj: Mapping[str, Any], key: str, where: str) -> None:
    """An optional ``"y"``/``"n"`` flag, as the platform writes its flags."""
    if key in obj and obj[key] not in _YES_NO:
        raise schema(f"{where}.{key} must be 'y' or 'n', not {obj[key]!r}")


def text_or_integer(obj: Mapping[str, Any], key: str, where: str) -> None:
    """An optional address or sequence: the platform fills id templates with it, text or a number."""
    if key not in obj:
        return
    value = obj[key]
    if isinstance(value, str):
        if not value:
            raise schema(f"{where}.{key} must not be empty")
    elif as_integer(value) is None:
        raise schema(f"{where}.{key} must be a string or an integer, not {json_type(value)}")


def report_interval(value: Any, where: str) -> int:
    """A reportInterval in ms: a positive integer, or its decimal text (the platform writes it as text)."""
    ms = int(value) if isinstance(value, str) and _INTEGER_TEXT.match(value) else as_integer(value)
    if ms is None or ms <= 0:
        raise schema(f"{where} must be a positive integer of milliseconds, not {value!r}")
    return ms


def check_interval(ms: Any) -> None:
    """A reportInterval the emulator's own knobs take (a ValueError, not a refusal: no request made it)."""
    if isinstance(ms, bool) or not isinstance(ms, int) or ms <= 0:
        raise ValueError(f"reportInterval must be a positive integer of milliseconds, not {ms!r}")


def status_body(body: Any) -> tuple[str, int]:
    keys(body, "body", required=("validDuration", "value"))
    value, valid_duration = body["value"], as_integer(body["validDuration"])
    if not isinstance(value, str) or value not in _STATUS_VALUES:
        raise schema(f"value must be one of {', '.join(_STATUS_VALUES)}, not {value!r}")
    if valid_duration is None:
        raise schema(f"validDuration must be an integer (seconds), not {json_type(body['validDuration'])}")
    if valid_duration <= 0:
        raise schema("validDuration must be a positive number of seconds")
    return value, valid_duration


def point(item: Any, where: str, kind: str, now: int, oldest: int | None, newest: int | None) -> Point:
    """One series point of a sensor of type ``kind``, received at ``now`` (ms).

    ``oldest`` and ``newest`` bound its ``time`` (ms; None: unbounded): the real platform refuses a point
    too old (400 INVALID_INPUT), and one too far ahead of its own clock.
    """
    keys(item, where, required=("value", "time"))
    value, when = item["value"], item["time"]
    if isinstance(value, dict):
        if kind not in FREE_TYPES:
            raise invalid(f"{where}.value: a {kind} value must be a numeric string, not an object")
    elif isinstance(value, str):
        if kind not in FREE_TYPES and not numeric(value):
            raise invalid(f"{where}.value: a {kind} value must be a numeric string, not {value!r}")
    else:
        raise schema(f"{where}.value must be a string or an object, not {json_type(value)}")
    if type(when) is not int:
        when = as_integer(when)
        if when is None:
            raise schema(f"{where}.time must be an integer (unix ms), not {json_type(item['time'])}")
    if when <= 0:
        raise schema(f"{where}.time must be a positive unix time in ms")
    if oldest is not None and when < oldest:
        raise invalid(f"{where}.time {when} is too far in the past (older than {(now - oldest) // 1000} s)")
    if newest is not None and when > newest:
        raise invalid(f"{where}.time {when} is too far in the future ({(newest - now) // 1000} s at most)")
    return Point(when, value, now)


def numeric(value: str) -> bool:
    try:
        number = float(value)
    except ValueError:
        return False
    return math.isfinite(number)


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
