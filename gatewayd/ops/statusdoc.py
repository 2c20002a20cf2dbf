"""The status document: what ``/status`` answers and what the status page's stream sends, built in one place.

Why one builder: the JSON a script reads and the page a technician looks at must say the same thing, so
both come from one reading of the daemon (:class:`Moment`: a detailed snapshot, the dead letters by
reason, the first pending point) turned into JSON by the pure functions below. ``/status`` gets every
key (its keys are a contract: keys are added, never renamed); the page gets sections, and of the
sensors only the page of rows it shows (:class:`SensorView`), so 10,000 sensors cost a page a hundred
rows. Values that change on every reading (ages) are left out of the page's sections where the page
can work them out from the server's time, so an idle daemon sends almost nothing.

Nothing secret is shown: the snapshots carry none, and free text that could quote one (an error
message with a URL and its token, say) is scrubbed of every secret the process knows
(:func:`without_secrets`) before it leaves.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from gatewayd.logging import scrub
from gatewayd.ops.health import assess
from gatewayd.outbox.deadletters import DeadLetterCounts, OldestPending
from gatewayd.runtime.snapshots import DaemonSnapshot, SensorRow, StatusSource, WaitingSensor
from gatewayd.secret import known_values
from gatewayd.wallclock import is_provisional, sampled_at_mono_ms
from gatewayd.webui.query import int_param

#: Rows of sensors one page shows unless it asks for another number, and the most it may ask for.
PAGE_ROWS = 100
MAX_PAGE_ROWS = 500
#: Polled devices (RCMS routers, loctube devices) the page is sent at most.
MAX_POLLED_ROWS = 200


@dataclass(frozen=True)
class SensorView:
    """The rows of sensors a page looks at: those whose ``device/name`` contains ``filter`` (any case),
    ``limit`` of them from ``offset`` on."""

    offset: int = 0
    limit: int = PAGE_ROWS
    filter: str = ""

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> SensorView:
        """From a stream's query parameters (``offset``, ``limit``, ``filter``); ValueError naming the
        parameter when a number is not a whole one (``limit`` from 1); a limit past the most a page may
        ask for is clamped."""
        return cls(
            offset=int_param(query, "offset", 0),
            limit=min(MAX_PAGE_ROWS, int_param(query, "limit", PAGE_ROWS, lowest=1)),
            filter=query.get("filter", "")[:200],
        )


class Moment(NamedTuple):
    """The daemon read at one moment: everything the document is made of."""

    snapshot: DaemonSnapshot
    #: Dead letters by reason code (gatewayd.outbox.deadletters.DeadLetterCounts).
    dead_letters: Mapping[str, int]
    #: The oldest pending point's stamp (unix ms; negative: provisional), or None when none is pending.
    oldest_ms: int | None
    #: The wall clock (s) and the monotonic clock (s) at that moment.
    wall: float
    mono: float


class StatusDocument:
    """Reads the daemon (:meth:`read`) and builds ``/status`` (:meth:`document`) or the page's sections
    (:meth:`sections`) from one reading."""

    def __init__(
        self,
        status: StatusSource,
        dead_letters: DeadLetterCounts,
        oldest: OldestPending,
        *,
        mono: Callable[[], float],
        clock: Callable[[], float],
    ) -> None:
        self.status = status
        self.dead_letters = dead_letters
        self.oldest = oldest
        self.mono = mono
        self.clock = clock

    async def read(self) -> Moment:
        d = self.status(detail=True)
        dead = await self.dead_letters.refresh(d.storage.dead_lettered)
        oldest = await self.oldest.refresh(d.storage.pending)
        return Moment(d, dead, oldest, self.clock(), self.mono())

    async def document(self) -> str:
        """``/status`` as JSON text."""
        return json_without_secrets(status_json(await self.read()))

    async def sections(self, view: SensorView) -> dict[str, Any]:
        return without_secrets(page_sections(await self.read(), view))


# ------------------------------------------------------------------------------------------------ pieces


def oldest_age_s(oldest_ms: int | None, wall: float, mono: float) -> float | None:
    """How long ago the oldest pending point was read (s), or None when none is pending.

    A provisional stamp (taken before the wall clock was set) is a monotonic reading of this boot, so
    its age is measured on the monotonic clock. Never negative (a wall clock set back).
    """
    if oldest_ms is None:
        return None
    if is_provisional(oldest_ms):
        age = mono - sampled_at_mono_ms(oldest_ms) / 1000
    else:
        age = wall - oldest_ms / 1000
    return round(max(0.0, age), 3)


def wall_ms(time_ms: int | None) -> int | None:
    """A sample's stamp as a wall time (unix ms), or None (no sample, or a provisional stamp)."""
    return None if time_ms is None or is_provisional(time_ms) else time_ms


def sensor_json(s: SensorRow | WaitingSensor, waiting_reason: str) -> dict[str, Any]:
    """One sensor as /status lists it: a running one, or one waiting for its id to be saved."""
    if isinstance(s, WaitingSensor):
        return {
            "device": s.device,
            "name": s.name,
            "id": None,  # made, but not on disk yet: nothing is keyed by it
            "type": s.type,
            "status": "waiting",
            "reason": waiting_reason,
            "reads": 0,
            "failures": 0,
            "last_error": None,
            "last_value": None,
            "last_time": None,
        }
    return {
        "device": s.device,
        "name": s.name,
        "id": s.id,
        "type": s.type,
        "status": s.status,
        "reads": s.reads,
        "failures": s.failures,
        "last_error": s.last_error,
        "last_value": s.last_value,
        "last_time": wall_ms(s.last_time_ms),
    }


def every_sensor(d: DaemonSnapshot) -> list[SensorRow | WaitingSensor]:
    """Running sensors first (inventory order), then those waiting for their id to be saved."""
    return [*d.sensors.rows, *d.sensors.waiting]


def actuator_rows(d: DaemonSnapshot) -> list[dict[str, Any]]:
    return [
        {
            "device": a.device,
            "name": a.name,
            "type": a.type,
            "target": a.target,
            "state": a.state,
            "status": a.status,
            "last_command": a.last_command,
            "last_error": a.last_error,
            "commands": a.commands,
            "failures": a.failures,
        }
        for a in d.actuators
    ]


def health_json(m: Moment) -> dict[str, Any]:
    """The verdict of /healthz (the same :func:`~gatewayd.ops.health.assess`), with ``ok``."""
    health = assess(m.snapshot, m.mono)
    return {"ok": health.ok, **health.as_json()}


def registration_json(d: DaemonSnapshot) -> dict[str, Any]:
    reporting = d.reporting
    return {
        "registered": d.registration.registered,
        "gateway_id": d.registration.gateway_id,
        "report_interval_ms": reporting.report_interval_ms,
        "transport": reporting.transport,
        **({"mqtt": dict(reporting.connection)} if reporting.transport == "mqtt" else {}),
    }


def outbox_json(m: Moment) -> dict[str, Any]:
    dead = dict(m.dead_letters)
    return {
        "pending": m.snapshot.storage.pending,
        "oldest_age_s": oldest_age_s(m.oldest_ms, m.wall, m.mono),
        "oldest_time": wall_ms(m.oldest_ms),
        "dead_letters": {"total": sum(dead.values()), "by_reason": dead},
    }


def status_json(m: Moment) -> dict[str, Any]:
    """``/status``: every key it has ever had, and ``health``."""
    d = m.snapshot
    return {
        **registration_json(d),
        "health": health_json(m),
        "outbox": outbox_json(m),
        "storage": dict(d.storage.detail),
        "registry": dict(d.sensors.registry),
        "sensors": [sensor_json(s, d.sensors.waiting_reason) for s in every_sensor(d)],
        "actuators": actuator_rows(d),
        "polled": dict(d.polling.latest),
    }


def page_sections(m: Moment, view: SensorView) -> dict[str, Any]:
    """The status page's sections: health, registration, sensors (the page of rows ``view`` asks for),
    outbox, polled, actuators."""
    d = m.snapshot
    health = health_json(m)
    return {
        "health": {"ok": health["ok"], "status": health["status"], "reason": health["reason"]},
        "registration": registration_json(d),
        "sensors": sensors_page(d, view),
        "outbox": {
            **outbox_json(m),
            "memory_points": d.storage.memory_points,
            "writable": d.storage.writable,
            "dropped": dict(d.storage.dropped_by_reason),
        },
        "polled": polled_rows(d.polling.latest),
        "actuators": actuator_rows(d),
    }


def sensors_page(d: DaemonSnapshot, view: SensorView) -> dict[str, Any]:
    """The rows ``view`` looks at (only those made into JSON), with how many match its filter and how
    many there are."""
    sensors = every_sensor(d)
    needle = view.filter.strip().lower()
    matching = [s for s in sensors if needle in s.key.lower()] if needle else sensors
    offset = min(view.offset, max(0, len(matching) - 1))
    offset -= offset % view.limit  # whole pages, so prev/next land where they should
    return {
        "total": len(sensors),
        "matching": len(matching),
        "offset": offset,
        "limit": view.limit,
        "filter": view.filter,
        "rows": [sensor_json(s, d.sensors.waiting_reason) for s in matching[offset : offset + view.limit]],
    }


def polled_rows(latest: Mapping[str, Any]) -> dict[str, Any]:
    """The latest polled record of each device, one row each (no age: the page counts it from
    ``polled_at_ms`` and the server's time, so an unchanged record is not sent again)."""
    rows = [
        {"cloud": cloud, "device": device, "polled_at_ms": entry["polled_at_ms"], "data": entry["data"]}
        for cloud, devices in sorted(latest.items())
        for device, entry in sorted(devices.items())
    ]
    return {"total": len(rows), "rows": rows[:MAX_POLLED_ROWS]}


# ------------------------------------------------------------------------------------------------ secrets


def _in_json(secret: str) -> str:
    """How ``secret`` reads inside a JSON string (quotes and backslashes escaped)."""
    return json.dumps(secret, ensure_ascii=False)[1:-1]


def without_secrets(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with no secret value the process knows (credentials, tokens) anywhere in it."""
    return _cleaned(doc)[0]


def json_without_secrets(doc: dict[str, Any]) -> str:
    """:func:`without_secrets` as JSON text (made once: 10,000 sensors make a big text)."""
    return _cleaned(doc)[1]


def _cleaned(doc: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Secrets are looked for in the JSON text first (a few substring searches); only when one is there
    is the document scrubbed (:func:`gatewayd.logging.scrub`: the log redactor's rules, applied to every
    string of it, keys too and at any depth).

    Why the strings and not the text: a secret can also read as part of the JSON syntax around it. A
    secret of digits (a PIN, a numeric API key) is inside many a number (a timestamp, a count); replaced
    in the text, it broke the JSON (``/status`` answered 500, the page's stream died each tick), and one
    that spells a key or a word of the document garbled what the page reads. A number is left as it is:
    it is a reading, not a quoted secret.
    """
    secrets = known_values()
    text = json.dumps(doc, ensure_ascii=False, default=str)
    if not any(_in_json(s) in text for s in secrets):
        return doc, text
    clean: dict[str, Any] = scrub(doc)
    return clean, json.dumps(clean, ensure_ascii=False)
