"""The payloads of Thing+'s embedded-gateway MQTT protocol, parsed as the protocol document describes them.

Pure functions, no state: each takes the bytes of one PUBLISH and returns what it says, or raises
:class:`BadPayload` with the reason (the emulator counts and logs it; MQTT 3.1.1 has no way to refuse one
message, so the real platform drops it too).

* gateway status ``{gw_status},{valid},{sid},{status},{valid},...`` (:func:`gateway_status`)
* sensor status ``{status},{valid}`` (:func:`sensor_status`)
* sensor data ``{time},{value},...`` or the JSON array ``[time, value, ...]`` (:func:`sensor_data`)
* gateway data ``{"<sid>": [time, value, ...], ...}`` (:func:`gateway_data`)

A status is ``on``, ``off`` or ``err`` with an optional ``:reason``; ``valid`` is seconds, ``-1`` for
unlimited. Times are unix ms. A value is text, a JSON number (kept as its text, the way the series keep
every value) or a JSON object (a location). Messages over about 1 kB may come zip-compressed
(:func:`inflate` takes zlib, gzip or a one-member zip archive).
"""

from __future__ import annotations

import io
import json
import math
import zipfile
import zlib
from typing import Any, NamedTuple, Union

#: A point's value as the series keep it: text, or an object (a location).
Value = Union[str, dict[str, Any]]

_STATUS_VALUES = ("on", "off", "err")


class BadPayload(ValueError):
    """A payload that does not follow the protocol; the message says where."""


class Status(NamedTuple):
    """One status: ``on``/``off``/``err``, the optional reason after ``err:``, and its validity (s; -1: ever)."""

    value: str
    reason: str
    valid_s: int


class RawPoint(NamedTuple):
    time: int
    value: Value


def inflate(payload: bytes) -> bytes:
    """The payload, decompressed when it is zlib, gzip or a zip archive; as it is otherwise.

    Text payloads of this protocol start with a digit, ``[``, ``{``, ``-`` or a status letter, none of
    which is a compression header.
    """
    head = payload[:4]
    try:
        if head.startswith(b"PK\x03\x04"):
            with zipfile.ZipFile(io.BytesIO(payload)) as archive:
                names = archive.namelist()
                if len(names) != 1:
                    raise BadPayload(f"a zip payload must hold one file, not {len(names)}")
                return archive.read(names[0])
        if head[:1] == b"\x78" or head[:2] == b"\x1f\x8b":
            return zlib.decompress(payload, 47)  # 32 + 15: zlib or gzip, told by the header
    except (zlib.error, zipfile.BadZipFile) as exc:
        raise BadPayload(f"compressed payload does not inflate: {exc}") from None
    return payload


def _text(payload: bytes) -> str:
    try:
        return inflate(payload).decode("utf-8").strip()
    except UnicodeDecodeError:
        raise BadPayload("payload is not UTF-8 text") from None


def _status(value: str, valid: str, where: str) -> Status:
    name, _, reason = value.strip().partition(":")
    if name not in _STATUS_VALUES:
        raise BadPayload(f"{where}: status must be on, off or err (err:reason), not {value!r}")
    if reason and name != "err":
        raise BadPayload(f"{where}: only err takes a reason, not {value!r}")
    try:
        valid_s = int(valid.strip())
    except ValueError:
        raise BadPayload(f"{where}: validity must be whole seconds or -1, not {valid!r}") from None
    if valid_s <= 0 and valid_s != -1:
        raise BadPayload(f"{where}: validity must be positive seconds or -1 (unlimited), not {valid_s}")
    return Status(name, reason, valid_s)


def gateway_status(payload: bytes) -> tuple[Status, dict[str, Status]]:
    """``{gw_status},{valid},{sid},{status},{valid},...``: the gateway's status and each sensor's."""
    fields = _text(payload).split(",")
    if len(fields) < 2 or (len(fields) - 2) % 3:
        raise BadPayload(
            f"gateway status needs status,valid then sid,status,valid triples: {len(fields)} fields"
        )
    gateway = _status(fields[0], fields[1], "gateway")
    sensors: dict[str, Status] = {}
    for i in range(2, len(fields), 3):
        sid = fields[i].strip()
        if not sid:
            raise BadPayload(f"field {i + 1}: empty sensor id")
        sensors[sid] = _status(fields[i + 1], fields[i + 2], f"sensor {sid}")
    return gateway, sensors


def sensor_status(payload: bytes) -> Status:
    """``{status},{valid}``."""
    fields = _text(payload).split(",")
    if len(fields) != 2:
        raise BadPayload(f"sensor status must be status,valid: {len(fields)} fields")
    return _status(fields[0], fields[1], "sensor")


def _time(value: Any, where: str) -> int:
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit():
            raise BadPayload(f"{where}: time must be unix ms, not {value!r}")
        when = int(value)
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadPayload(f"{where}: time must be unix ms, not {value!r}")
    elif isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise BadPayload(f"{where}: time must be whole unix ms, not {value!r}")
    else:
        when = int(value)
    if when <= 0:
        raise BadPayload(f"{where}: time must be a positive unix time in ms")
    return when


def _value(value: Any, where: str) -> Value:
    if isinstance(value, (str, dict)):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return json.dumps(value)
    raise BadPayload(f"{where}: value must be text, a number or an object, not {value!r}")


def _pairs(items: list[Any], where: str) -> list[RawPoint]:
    if not items or len(items) % 2:
        raise BadPayload(f"{where}: needs time,value pairs, not {len(items)} items")
    return [
        RawPoint(_time(items[i], f"{where}[{i}]"), _value(items[i + 1], f"{where}[{i + 1}]"))
        for i in range(0, len(items), 2)
    ]


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise BadPayload(f"payload is not valid JSON: {exc}") from None


def sensor_data(payload: bytes) -> list[RawPoint]:
    """``{time},{value},{time},{value},...`` or the JSON array ``[time, value, ...]``."""
    text = _text(payload)
    if text.startswith("["):
        items = _json(text)
        if not isinstance(items, list):
            raise BadPayload("sensor data must be a JSON array")
        return _pairs(items, "data")
    return _pairs(text.split(","), "data")


def gateway_data(payload: bytes) -> dict[str, list[RawPoint]]:
    """``{"<sid>": [time, value, time, value, ...], ...}``: every sensor's points in one message."""
    body = _json(_text(payload))
    if not isinstance(body, dict):
        raise BadPayload("gateway data must be a JSON object {sensor id: [time, value, ...]}")
    points: dict[str, list[RawPoint]] = {}
    for sid, items in body.items():
        if not isinstance(items, list):
            raise BadPayload(f"{sid}: must be an array [time, value, ...]")
        points[sid] = _pairs(items, sid)
    return points
