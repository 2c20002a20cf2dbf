"""Thing+ MQTT topics and payloads (the embedded-gateway protocol): pure functions, tested as tables.

* **Gateway status** ``v/a/g/{gw}/status``: ``{gw_status},{valid},{sid},{status},{valid},...`` — the
  gateway's status and every sensor's in one message; ``valid`` in seconds (1.5 x the report interval, as
  the HTTPS path's ``validDuration``).
* **Gateway data** ``v/a/g/{gw}``: ``{"<sid>": [time, value, time, value, ...], ...}`` — every sensor's
  pending points, in messages of at most :data:`MAX_DATA_BYTES` (a single point bigger than that goes
  alone), oldest first, in time order per sensor. Each message says which outbox lease parts it carries:
  they leave the outbox when the broker acknowledges that message (PUBACK), and only then.

Values come from the outbox as JSON text (a string such as ``"36.5"`` or an object), spliced in as they are.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from gatewayd.outbox import Lease

#: The largest gateway-data message built: big enough for a few thousand points (a report of a few
#: thousand sensors in a handful of messages), small enough for any broker's default limit and for a
#: box's memory while it waits for its PUBACK.
MAX_DATA_BYTES = 64 * 1024
#: The statuses Thing+ knows (``err`` may carry ``:reason``).
STATUS_VALUES = ("on", "off", "err")


def base_topic(gateway_id: str) -> str:
    return f"v/a/g/{gateway_id}"


def will_topic(gateway_id: str) -> str:
    """Where the last will (``err``) and the ``on`` after connecting go, retained."""
    return f"{base_topic(gateway_id)}/mqtt/status"


def status_topic(gateway_id: str) -> str:
    return f"{base_topic(gateway_id)}/status"


def request_topic(gateway_id: str) -> str:
    return f"{base_topic(gateway_id)}/req"


def response_topic(gateway_id: str) -> str:
    return f"{base_topic(gateway_id)}/res"


def status_value(value: str) -> str:
    """A status as Thing+ takes it: on, off, or err with an optional reason without commas."""
    head, _, reason = value.partition(":")
    if head not in STATUS_VALUES:
        raise ValueError(f"status must be one of {', '.join(STATUS_VALUES)}, got {value!r}")
    reason = reason.replace(",", ";").strip()
    return f"{head}:{reason}" if head == "err" and reason else head


def gateway_status(gateway_status: str, valid_s: int, sensors: Iterable[tuple[str, str]]) -> bytes:
    """The gateway-status payload: the gateway's status then each (sensor id, status), all valid for
    ``valid_s`` seconds."""
    valid = str(int(valid_s))
    parts = [status_value(gateway_status), valid]
    for sensor_id, value in sensors:
        parts += (sensor_id, status_value(value), valid)
    return ",".join(parts).encode("utf-8")


@dataclass(frozen=True)
class DataMessage:
    """One gateway-data message and the outbox lease parts it carries."""

    payload: bytes
    parts: tuple[Lease, ...]

    @property
    def points(self) -> int:
        return sum(len(part) for part in self.parts)


def data_messages(
    leases: Sequence[Lease], cloud_ids: Mapping[str, str], max_bytes: int = MAX_DATA_BYTES
) -> list[DataMessage]:
    """The leases' points as gateway-data messages of at most ``max_bytes``, the sensor whose oldest point
    is oldest first; a lease too big for one message is split (in its order) across the next ones.

    Every lease must have a Thing+ id in ``cloud_ids`` (the caller leases only those).
    """
    messages: list[DataMessage] = []
    entries: list[str] = []
    parts: list[Lease] = []
    size = 2  # the braces

    def close() -> None:
        nonlocal entries, parts, size
        if parts:
            messages.append(DataMessage(("{" + ",".join(entries) + "}").encode("utf-8"), tuple(parts)))
        entries, parts, size = [], [], 2

    for lease in sorted(leases, key=lambda lease: (min(lease.times), lease.first_id)):
        key = json.dumps(cloud_ids[lease.sensor_id])
        key_bytes = len(key.encode("utf-8"))
        start = 0
        while start < len(lease):
            overhead = key_bytes + 3 + (1 if entries else 0)  # "sid":[...] and the comma before it
            stop, grown = start, 0
            while stop < len(lease):
                item = len(str(lease.times[stop])) + 1 + len(lease.values[stop].encode("utf-8"))
                item += 1 if stop > start else 0
                if size + overhead + grown + item > max_bytes and (stop > start or entries):
                    break  # full (a point alone bigger than the bound still goes, in its own message)
                grown += item
                stop += 1
            if stop == start:  # nothing more fits in this message: the next one takes it
                close()
                continue
            part = lease if (start, stop) == (0, len(lease)) else lease.part(start, stop)
            entries.append(f"{key}:[{_points(part)}]")
            parts.append(part)
            size += overhead + grown
            start = stop
            if start < len(lease):
                close()
    close()
    return messages


def _points(part: Lease) -> str:
    """``t,v,t,v`` in time order (a stable sort: points of one time keep the order they were read)."""
    order = sorted(range(len(part)), key=part.times.__getitem__)
    return ",".join(f"{part.times[i]:d},{part.values[i]}" for i in order)
