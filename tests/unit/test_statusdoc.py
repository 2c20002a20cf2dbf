"""The status document (/status and the status page's sections): health, ages, last values, no secret."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, cast

import pytest

from gatewayd import secret as secret_module
from gatewayd.inventory.config import parse_inventory
from gatewayd.ops.health import assess
from gatewayd.ops.statusdoc import (
    MAX_PAGE_ROWS,
    PAGE_ROWS,
    Moment,
    SensorView,
    json_without_secrets,
    oldest_age_s,
    page_sections,
    sensors_page,
    status_json,
    without_secrets,
)
from gatewayd.outbox import Outbox
from gatewayd.runtime.recordpoints import SensorSink
from gatewayd.runtime.sampler import SampleBuffer, Sampler, SensorRuntime
from gatewayd.runtime.schedule import DEFAULT_REPORT_INTERVAL_MS
from gatewayd.runtime.service import Daemon
from gatewayd.runtime.snapshots import DaemonSnapshot, SensorRow, WaitingSensor
from gatewayd.secret import Secret
from gatewayd.wallclock import provisional_stamp
from tests.conftest import VALID
from tests.helpers.inventories import LOCTUBE, RCMS, THINGPLUS, inventory_yaml, loctube, rcms

WALL = 1_800_000_000.0  # s
MONO = 5_000.0  # s
WINDOW_S = 3 * DEFAULT_REPORT_INTERVAL_MS / 1000


@pytest.fixture
async def snapshot(tmp_path: Path) -> DaemonSnapshot:
    """A daemon not started yet, detailed (made on a running loop, as tests/unit/test_snapshots.py's)."""
    return Daemon(parse_inventory(VALID, base_dir=tmp_path, env={})).snapshot(detail=True)


def moment(d: DaemonSnapshot, oldest_ms: int | None = None, **kw: Any) -> Moment:
    return Moment(d, kw.get("dead_letters", {}), oldest_ms, WALL, MONO)


def well(d: DaemonSnapshot, last_success: float | None) -> DaemonSnapshot:
    """``d`` writable and registered, its last upload cycle at ``last_success`` (monotonic)."""
    return dataclasses.replace(
        d,
        storage=dataclasses.replace(d.storage, problem=None, writable=True),
        registration=dataclasses.replace(d.registration, registered=True, gateway_id="0123456789ab"),
        reporting=dataclasses.replace(d.reporting, last_success=last_success),
    )


# ------------------------------------------------------------------------------------------------ health


@pytest.mark.parametrize(
    ("case", "ok", "reason"),
    [
        ("outbox not writable", False, "outbox not writable"),
        ("not registered", False, "not registered on Thing+ yet"),
        ("uploaded just now", True, "uploading"),
        ("uploaded within the window", True, "uploading"),
        ("no upload in the window", False, f"no successful upload cycle in the last {WINDOW_S:g}s"),
        ("never uploaded", False, f"no successful upload cycle in the last {WINDOW_S:g}s"),
    ],
)
def test_the_health_verdict_is_the_one_healthz_gives(
    snapshot: DaemonSnapshot, case: str, ok: bool, reason: str
) -> None:
    d = {
        "outbox not writable": snapshot,
        "not registered": dataclasses.replace(
            snapshot, storage=dataclasses.replace(snapshot.storage, problem=None)
        ),
        "uploaded just now": well(snapshot, MONO),
        "uploaded within the window": well(snapshot, MONO - WINDOW_S),
        "no upload in the window": well(snapshot, MONO - WINDOW_S - 0.001),
        "never uploaded": well(snapshot, None),
    }[case]
    verdict = assess(d, MONO)
    document = status_json(moment(d))["health"]
    assert document == {"ok": verdict.ok, **verdict.as_json()}
    assert document["ok"] is ok and document["reason"].startswith(reason)
    page = page_sections(moment(d), SensorView())["health"]
    assert page == {"ok": ok, "status": "ok" if ok else "unhealthy", "reason": verdict.reason}


# ------------------------------------------------------------------------------------------------ outbox


@pytest.mark.parametrize(
    ("oldest_ms", "age_s"),
    [
        (None, None),  # nothing pending
        (int(WALL * 1000), 0.0),
        (int(WALL * 1000) - 12_345, 12.345),
        (int(WALL * 1000) - 86_400_000, 86_400.0),
        (int(WALL * 1000) + 5_000, 0.0),  # stamped after now (a wall clock set back): not negative
        (provisional_stamp(MONO - 30), 30.0),  # before the wall clock was set: by the monotonic clock
        (provisional_stamp(MONO), 0.0),
    ],
)
def test_the_oldest_point_age(oldest_ms: int | None, age_s: float | None) -> None:
    assert oldest_age_s(oldest_ms, WALL, MONO) == (pytest.approx(age_s) if age_s is not None else None)


def test_the_outbox_keeps_its_keys_and_adds_the_oldest_point(snapshot: DaemonSnapshot) -> None:
    dead = {"400 INVALID_INPUT": 3, "404 NOT_FOUND": 1}
    oldest = int(WALL * 1000) - 60_000
    outbox = status_json(moment(snapshot, oldest, dead_letters=dead))["outbox"]
    assert outbox == {
        "pending": 0,
        "dead_letters": {"total": 4, "by_reason": dead},
        "oldest_age_s": 60.0,
        "oldest_time": oldest,
    }
    provisional = status_json(moment(snapshot, provisional_stamp(MONO - 2)))["outbox"]
    assert provisional["oldest_age_s"] == 2.0 and provisional["oldest_time"] is None


# ------------------------------------------------------------------------------------------------ sensors


def row(name: str, value: Any = None, time_ms: int | None = None, device: str = "Room") -> SensorRow:
    return SensorRow(device, name, f"id-{name}", "temperature", "on", 3, 0, None, value, time_ms)


@pytest.mark.parametrize(
    ("value", "time_ms", "shown_value", "shown_time"),
    [
        (None, None, None, None),  # not read yet
        ("21.5", 1_800_000_000_123, "21.5", 1_800_000_000_123),
        ({"lat": 37.5, "lng": 127.0}, 1_800_000_000_000, {"lat": 37.5, "lng": 127.0}, 1_800_000_000_000),
        ("7", provisional_stamp(MONO), "7", None),  # read before the wall clock was set: no wall time
    ],
)
def test_each_sensor_shows_its_last_value_and_time(
    snapshot: DaemonSnapshot, value: Any, time_ms: int | None, shown_value: Any, shown_time: int | None
) -> None:
    sensors = dataclasses.replace(
        snapshot.sensors,
        rows=(row("Temperature", value, time_ms),),
        waiting=(WaitingSensor("Room", "Humidity", "humidity"),),
    )
    rows = status_json(moment(dataclasses.replace(snapshot, sensors=sensors)))["sensors"]
    assert [(r["name"], r["last_value"], r["last_time"]) for r in rows] == [
        ("Temperature", shown_value, shown_time),
        ("Humidity", None, None),
    ]
    assert set(rows[0]) == {
        *("device", "name", "id", "type", "status", "reads", "failures", "last_error"),
        *("last_value", "last_time"),
    }
    assert rows[1]["status"] == "waiting" and rows[1]["id"] is None and "reason" in rows[1]


class _Reads:
    """A source that reads the values it is given, one per read, at once."""

    def __init__(self, *values: str) -> None:
        self.values = list(values)

    def read_now(self) -> str:
        return self.values.pop(0)

    async def read(self) -> str:
        return self.read_now()

    async def close(self) -> None:
        return None


async def test_the_sampler_keeps_the_last_sample_of_each_sensor() -> None:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    scheduler = AsyncIOScheduler()
    scheduler.start(paused=True)
    stamps = iter([1_000, 2_000])
    sampler = Sampler(scheduler, SampleBuffer(cast(Outbox, None)), stamp=lambda: next(stamps))
    sensor = SensorRuntime("Room", "Level", "number", "s1", 1.0, _Reads("1.5", "2.5"))  # type: ignore[arg-type]
    try:
        sampler.set_sensors([sensor])
        assert (sensor.last_value, sensor.last_time_ms) == (None, None)
        await sampler._tick(1.0)
        assert (sensor.last_value, sensor.last_time_ms) == ("1.5", 1_000)
        await sampler._tick(1.0)
        assert (sensor.last_value, sensor.last_time_ms) == ("2.5", 2_000)
    finally:
        scheduler.shutdown(wait=False)
    # Records (RCMS history) may come late: an older one does not replace the newest.
    sink = SensorSink(sampler, sensor)
    sink.point(3_000, 30)
    sink.point(2_500, 25)
    assert (sensor.last_value, sensor.last_time_ms, sensor.reads) == ("30", 3_000, 4)


@pytest.mark.parametrize(
    ("query", "view"),
    [
        ({}, SensorView(0, PAGE_ROWS, "")),
        ({"offset": "200", "limit": "50", "filter": "room"}, SensorView(200, 50, "room")),
        ({"offset": "", "limit": ""}, SensorView(0, PAGE_ROWS, "")),
        ({"limit": "100000"}, SensorView(0, MAX_PAGE_ROWS, "")),
    ],
)
def test_the_page_asks_for_a_bounded_page_of_sensors(query: dict[str, str], view: SensorView) -> None:
    assert SensorView.from_query(query) == view


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ({"offset": "-5"}, "offset"),
        ({"limit": "x"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"offset": " 5"}, "offset"),
        ({"offset": "9" * 16}, "offset"),
    ],
)
def test_a_bad_number_in_the_query_is_refused_by_name(query: dict[str, str], name: str) -> None:
    with pytest.raises(ValueError, match=f"query parameter {name} must be a whole number"):
        SensorView.from_query(query)


@pytest.mark.parametrize(
    ("view", "names", "matching", "offset"),
    [
        (SensorView(0, 2, ""), ["s0", "s1"], 5, 0),
        (SensorView(2, 2, ""), ["s2", "s3"], 5, 2),
        (SensorView(3, 2, ""), ["s2", "s3"], 5, 2),  # whole pages
        (SensorView(50, 2, ""), ["s4"], 5, 4),  # past the end: the last page
        (SensorView(0, 10, "CELLAR/S"), ["s3", "s4"], 2, 0),  # device/name, any case
        (SensorView(0, 10, "nothing"), [], 0, 0),
    ],
)
def test_a_page_of_sensors(
    snapshot: DaemonSnapshot, view: SensorView, names: list[str], matching: int, offset: int
) -> None:
    rows = tuple(row(f"s{i}", device="Room" if i < 3 else "Cellar") for i in range(4))
    sensors = dataclasses.replace(
        snapshot.sensors, rows=rows, waiting=(WaitingSensor("Cellar", "s4", "number"),)
    )
    page = sensors_page(dataclasses.replace(snapshot, sensors=sensors), view)
    assert [r["name"] for r in page["rows"]] == names
    assert (page["total"], page["matching"], page["offset"]) == (5, matching, offset)
    assert all(r["status"] == ("waiting" if r["name"] == "s4" else "on") for r in page["rows"])


def test_the_page_sections_are_all_there(snapshot: DaemonSnapshot) -> None:
    sections = page_sections(moment(snapshot), SensorView())
    assert set(sections) == {"health", "registration", "sensors", "outbox", "polled", "actuators"}
    assert sections["registration"] == {
        "registered": False,
        "gateway_id": None,
        "report_interval_ms": DEFAULT_REPORT_INTERVAL_MS,
        "transport": "https",
    }
    assert sections["polled"] == {"total": 0, "rows": []}


# ------------------------------------------------------------------------------------------------ secrets


def test_a_secret_quoted_anywhere_is_scrubbed() -> None:
    secret = Secret('tok"en-s3cr3t\\value')  # known to the process from now on
    doc = {
        "sensors": [{"last_error": f"GET http://x/?apikey={secret.reveal()} failed", "token": "abc"}],
        "deep": {"a": {"b": {"c": {"d": {"e": {"f": {"g": secret.reveal()}}}}}}},
    }
    text = json.dumps(without_secrets(doc))
    assert json.dumps(secret.reveal())[1:-1] not in text and secret.reveal() not in text
    assert "apikey=***" in text
    clean = {"sensors": [{"last_error": "timed out"}]}
    assert without_secrets(clean) is clean  # nothing to scrub: the same object, not a copy


def test_a_secret_of_digits_or_words_is_scrubbed_from_strings_and_leaves_the_json_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A PIN-like password sits inside a timestamp, and one spelling a key: replaced in the JSON text they
    # broke it (/status answered 500) or renamed what the page reads.
    monkeypatch.setattr(secret_module, "_KNOWN", {"4711", "status"})
    deep: Any = "pin 4711"
    for _ in range(9):
        deep = {"x": deep}
    doc = {
        "t": 1_714_711_000_123,
        "sensors": [{"name": "T", "status": "on", "last_value": "4711", "last_error": "GET /?pin=4711"}],
        "deep": deep,
        "4711 key": 4711,
    }
    text = json_without_secrets(doc)
    parsed = json.loads(text)
    assert parsed == without_secrets(doc)
    assert parsed["t"] == 1_714_711_000_123 and parsed["*** key"] == 4711  # numbers are readings
    sensor = parsed["sensors"][0]
    assert sensor["last_value"] == "***" and sensor["last_error"] == "GET /?pin=***"
    assert set(sensor) == {"name", "***", "last_value", "last_error"}
    assert "4711" not in json.dumps(parsed["deep"]) and "pin ***" in json.dumps(parsed["deep"])


async def test_no_inventory_secret_is_in_the_document(tmp_path: Path) -> None:
    text = inventory_yaml(
        "http://127.0.0.1:9",
        state_dir=tmp_path,
        sections=rcms("http://127.0.0.1:9", devices=["SN1"]) + loctube("http://127.0.0.1:9", devices=["d1"]),
        devices=(
            "  - name: Room\n    sensors:\n      - name: T\n        type: temperature\n        interval: 1s\n"
            "        simulate: {pattern: sine, min: 1, max: 2, period: 1m}\n"
        ),
    )
    d = Daemon(parse_inventory(text, base_dir=tmp_path, env={})).snapshot(detail=True)
    document = json.dumps([status_json(moment(d)), page_sections(moment(d), SensorView())])
    secrets = [
        THINGPLUS["client_secret"],
        THINGPLUS["password"],
        RCMS["client_secret"],
        LOCTUBE["secure_key"],
    ]
    assert all(s not in document for s in secrets)
