"""The emulated loctube trackers: their detail, latest properties and the device query.

Deterministic from the device id and the clock, so tests can predict them: each tracker is online 20
minutes then offline 10 at a phase of its own, its battery drains over 12 hours and is recharged, and
it drives round a circle of about 1 km radius once an hour.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from gatewayd.emulator.loctube.bodies import illegal_argument, json_object, not_found

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 1000

_QUERY_COLUMNS = ("id", "name", "state", "productId")
_TERM_TYPES = ("eq", "not", "like", "in")

#: Each tracker is online 20 minutes, then offline 10, at a phase of its own.
_STATE_PERIOD_MS = 30 * 60 * 1000
_OFFLINE_MS = 10 * 60 * 1000
#: Battery drains from 100 % to 20 % over 12 hours, then is recharged.
_BATTERY_PERIOD_MS = 12 * 3600 * 1000
#: A tracker drives round a circle of about 1 km radius once an hour.
_LAP_MS = 3600 * 1000
_RADIUS_DEG = 0.01
_KM_PER_DEG = 111.32


def _digest_int(*parts: object) -> int:
    text = "|".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


class Trackers:
    """The configured trackers, in configuration order."""

    def __init__(self, devices: list[str]) -> None:
        self.ids: list[str] = list(dict.fromkeys(devices))

    def known(self, device_id: str) -> str:
        """``device_id`` if configured; 404 otherwise."""
        if device_id not in self.ids:
            raise not_found(f"device not found: {device_id}")
        return device_id

    def latest(self, device_id: str, now_ms: int) -> list[dict[str, Any]]:
        """``GET /{id}/properties/_latest``: one entry per property, at the detail's time."""
        detail = self.device_detail(device_id, now_ms)
        stamp = detail["propertiesTime"]
        return [
            {"property": name, "value": value, "formatValue": str(value), "timestamp": stamp}
            for name, value in detail["properties"].items()
        ]

    def query(self, raw: bytes, now_ms: int) -> dict[str, Any]:
        """``POST /_query``: a page of details, filtered by ``terms``."""
        body = json_object(raw, required=False)
        page_index = _int_field(body, "pageIndex", 0, 0, None)
        page_size = _int_field(body, "pageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        terms = body.get("terms") or []
        if not isinstance(terms, list):
            raise illegal_argument("terms must be a list")
        rows = [self.device_detail(d, now_ms) for d in self.ids]
        for term in terms:
            rows = [row for row in rows if _matches(row, term)]
        start = page_index * page_size
        return {
            "pageIndex": page_index,
            "pageSize": page_size,
            "total": len(rows),
            "data": rows[start : start + page_size],
        }

    def is_online(self, device_id: str, now_ms: int) -> bool:
        """Online 20 minutes, offline 10, at a phase fixed per device id."""
        return self._state_position(device_id, now_ms) < _STATE_PERIOD_MS - _OFFLINE_MS

    def _state_position(self, device_id: str, now_ms: int) -> int:
        phase = _digest_int(device_id, "state") % _STATE_PERIOD_MS
        return (now_ms + phase) % _STATE_PERIOD_MS

    def device_detail(self, device_id: str, now_ms: int) -> dict[str, Any]:
        """The tracker's detail as the document shows it, plus ``properties`` (latest values) and their time."""
        position = self._state_position(device_id, now_ms)
        cycle_start = now_ms - position
        online_span = _STATE_PERIOD_MS - _OFFLINE_MS
        online = position < online_span
        if online:
            online_time = cycle_start
            offline_time = cycle_start - _OFFLINE_MS
        else:
            online_time = cycle_start
            offline_time = cycle_start + online_span
        profile = _digest_int(device_id, "profile")
        create_time = 1_672_124_830_209 + profile % (90 * 86400 * 1000)
        values_at = now_ms if online else offline_time
        return {
            "id": device_id,
            "name": f"Tracker {device_id}",
            "protocol": "evgps",
            "transport": "TCP",
            "orgId": "emulator",
            "productId": "katchu",
            "productName": "katchu",
            "deviceType": {"text": "directly connected device", "value": "device"},
            "state": {"text": "online", "value": "online"}
            if online
            else {"text": "offline", "value": "offline"},
            "address": f"/10.{(profile >> 8) & 0xFF}.{(profile >> 16) & 0xFF}.{2 + (profile >> 24) % 250}:"
            f"{30000 + profile % 30000}",
            "onlineTime": online_time,
            "offlineTime": offline_time,
            "createTime": create_time,
            "registerTime": create_time + 2923,
            "metadata": _METADATA,
            "configuration": {
                "isDebug": "false",
                "parseType": "",
                "isChina": "false",
                "isDelayMsg": "true",
                "isHexLog": "false",
                "trackerType": "katchu",
                "isIgnoreEvLog": "false",
            },
            "tags": [],
            "properties": self.properties(device_id, values_at),
            "propertiesTime": values_at - values_at % 1000,
        }

    def properties(self, device_id: str, at_ms: int) -> dict[str, Any]:
        """Latest values at ``at_ms``: battery drains and recharges; the tracker drives round a circle."""
        profile = _digest_int(device_id, "profile")
        battery_phase = _digest_int(device_id, "battery") % _BATTERY_PERIOD_MS
        drained = ((at_ms + battery_phase) % _BATTERY_PERIOD_MS) / _BATTERY_PERIOD_MS
        lap_phase = _digest_int(device_id, "lap") % _LAP_MS
        angle = 2 * math.pi * ((at_ms + lap_phase) % _LAP_MS) / _LAP_MS
        base_lat = 37.5665 + ((profile >> 4) % 1000 - 500) / 10000
        base_lon = 126.9780 + ((profile >> 14) % 1000 - 500) / 10000
        lap_km = 2 * math.pi * _RADIUS_DEG * _KM_PER_DEG
        wobble = (_digest_int(device_id, at_ms // 60000) % 200 - 100) / 100  # +-1 km/h per minute
        return {
            "battery": round(100 - 80 * drained),
            "latitude": round(base_lat + _RADIUS_DEG * math.sin(angle), 6),
            "longitude": round(base_lon + _RADIUS_DEG * math.cos(angle), 6),
            "speed": round(lap_km * 3600 * 1000 / _LAP_MS + wobble, 1),
        }


_METADATA = json.dumps(
    {
        "properties": [
            {"id": "battery", "name": "Battery", "valueType": {"type": "int", "unit": "percent"}},
            {"id": "latitude", "name": "Latitude", "valueType": {"type": "double"}},
            {"id": "longitude", "name": "Longitude", "valueType": {"type": "double"}},
            {"id": "speed", "name": "Speed", "valueType": {"type": "float", "unit": "km/h"}},
        ]
    },
    separators=(",", ":"),
)


def _int_field(body: dict[str, Any], name: str, default: int, minimum: int, maximum: int | None) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]{1,18}\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise illegal_argument(f"{name} must be an integer")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise illegal_argument(f"{name} must be {bound}")
    return value


def _term_value(row: dict[str, Any], column: str) -> str:
    value = row[column]
    return str(value["value"]) if isinstance(value, dict) else str(value)


def _matches(row: dict[str, Any], term: Any) -> bool:
    if not isinstance(term, dict) or not isinstance(term.get("column"), str):
        raise illegal_argument("each term needs a 'column'")
    column = term["column"]
    if column not in _QUERY_COLUMNS:
        raise illegal_argument(f"unsupported term column {column!r}: one of {', '.join(_QUERY_COLUMNS)}")
    term_type = str(term.get("termType") or "eq").lower()
    if term_type not in _TERM_TYPES:
        raise illegal_argument(f"unsupported termType {term_type!r}: one of {', '.join(_TERM_TYPES)}")
    actual = _term_value(row, column)
    wanted = term.get("value")
    if term_type == "in":
        options = wanted if isinstance(wanted, list) else str(wanted).split(",")
        return actual in [str(o) for o in options]
    if term_type == "like":
        return _like(actual, str(wanted))
    equal = actual == str(wanted)
    return equal if term_type == "eq" else not equal


def _like(value: str, pattern: str) -> bool:
    """SQL LIKE with ``%`` (any run) only, case-sensitive."""
    parts = pattern.split("%")
    if len(parts) == 1:
        return value == pattern
    if not value.startswith(parts[0]) or not value.endswith(parts[-1]):
        return False
    pos = len(parts[0])
    end = len(value) - len(parts[-1])
    for part in parts[1:-1]:
        found = value.find(part, pos, end)
        if found < 0:
            return False
        pos = found + len(part)
    return pos <= end
