"""The console's Thing+ sections: a page of gateways, a page of one gateway's sensors, the command targets.

Why pages computed here and not in the browser: a gateway may hold 10,000 sensors and a fleet 1,000
gateways; the page shows :data:`SENSORS_PAGE` rows at a time and asks for another page or a filter
through its stream's query. Per row the latest value is the last element of the sensor's history and the
counts are ``len()``: nothing walks the points.

Gateways are those registered over HTTPS and the MQTT gateways the portal knows. A gateway's status is
its latest status record (value and ``expireAt``, from which the page counts down and turns ``off`` when
it lapses, as the portal shows it); an MQTT gateway whose connection dropped is ``off``, one whose last
will fired ``err``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gatewayd.emulator.thingplus import ThingPlusEmulator
from gatewayd.emulator.thingplus.model import StatusRecord
from gatewayd.emulator.thingplus.owners import Record

GATEWAYS_PAGE = 50
SENSORS_PAGE = 100
#: The MQTT gateways offered as command targets (the connected ones, first so many).
TARGETS_MAX = 50


def paged(items: list[Any], page: int, size: int) -> tuple[list[Any], int, int]:
    """Rows of ``page`` (0-based, clamped into range), that page, and the number of pages."""
    pages = (len(items) + size - 1) // size
    page = min(max(page, 0), max(pages - 1, 0))
    return items[page * size : (page + 1) * size], page, pages


def _matches(text: str, *fields: Any) -> bool:
    """Whether lowercase ``text`` is in one of ``fields`` (any case): one join and one lower() a record,
    as a filter runs over every sensor of a gateway each tick."""
    return text in "\x00".join([field for field in fields if isinstance(field, str)]).lower()


def all_gateways(tp: ThingPlusEmulator) -> Iterator[tuple[str, Record, str]]:
    """(id, record, transport) of every gateway: HTTPS-registered first, then the MQTT ones."""
    for gateway_id, record in tp.gateways.items():
        yield gateway_id, record, "https"
    for gateway_id, record in tp.mqtt.gateways.records.items():
        if gateway_id not in tp.gateways:
            yield gateway_id, record, "mqtt"


def _latest(records: list[StatusRecord] | None) -> StatusRecord | None:
    return records[-1] if records else None


def gateway_status(tp: ThingPlusEmulator, gateway_id: str, transport: str) -> tuple[str | None, int | None]:
    """The gateway's status and its expireAt (ms; None: no status, or one that never expires)."""
    last = _latest(tp.gateway_statuses.get(gateway_id))
    status = last.value if last else None
    expire_at = last.expire_at if last and last.expire_at >= 0 else None
    link = tp.mqtt.links.get(gateway_id) if transport == "mqtt" else None
    if link is not None:
        if link.mqtt_status == "err":
            status = "err"
        elif not link.connected:
            status = "off"
        elif status is None and link.mqtt_status == "on":
            status = "on"
    return status, expire_at


def gateways_view(tp: ThingPlusEmulator, page: int = 0, text: str = "") -> dict[str, Any]:
    """A page of gateways matching ``text`` (in id or name), each with its status and counts."""
    text = text.lower()
    everything = list(all_gateways(tp))
    matched = [g for g in everything if not text or _matches(text, g[0], g[1].get("name"))]
    rows, page, pages = paged(matched, page, GATEWAYS_PAGE)
    out = []
    for gateway_id, record, transport in rows:
        status, expire_at = gateway_status(tp, gateway_id, transport)
        out.append(
            {
                "id": gateway_id,
                "name": record.get("name"),
                "transport": transport,
                "status": status,
                "expireAt": expire_at,
                "reportInterval": record.get("reportInterval"),
                "devices": tp.devices.count_of(gateway_id),
                "sensors": tp.sensors.count_of(gateway_id),
            }
        )
    return {"total": len(everything), "matched": len(matched), "page": page, "pages": pages, "rows": out}


def default_gateway(tp: ThingPlusEmulator) -> str | None:
    """The gateway the console shows when the page chose none: the first with sensors, else the first."""
    first = None
    for gateway_id, _, _ in all_gateways(tp):
        if tp.sensors.count_of(gateway_id):
            return gateway_id
        first = first or gateway_id
    return first


def sensor_row(tp: ThingPlusEmulator, sensor: Record) -> dict[str, Any]:
    """One sensor: what it is, its latest status (value, expireAt) and latest point (value, time)."""
    sensor_id = sensor["id"]
    history = tp.points.get(sensor_id)
    last_point = history[-1] if history else None
    status = _latest(tp.sensor_statuses.get(sensor_id))
    return {
        "id": sensor_id,
        "name": sensor.get("name"),
        "type": sensor.get("type"),
        "category": sensor.get("category", "sensor"),
        "device": sensor.get("deviceId"),
        "device_name": (tp.devices.get(sensor.get("deviceId") or "") or {}).get("name"),
        "status": status.value if status else None,
        "expireAt": status.expire_at if status and status.expire_at >= 0 else None,
        "value": last_point.value if last_point else None,
        "time": last_point.time if last_point else None,
        "points": len(history) if history else 0,
    }


def sensors_view(
    tp: ThingPlusEmulator, gateway_id: str | None, page: int = 0, text: str = ""
) -> dict[str, Any]:
    """A page of ``gateway_id``'s sensors matching ``text`` (in id, name, type or device)."""
    if gateway_id is None:
        return {
            "gateway": None,
            "name": None,
            "known": False,
            "total": 0,
            "matched": 0,
            "page": 0,
            "pages": 0,
            "rows": [],
        }
    text = text.lower()
    sensors = tp.sensors.of(gateway_id)
    matched = (
        [s for s in sensors if _matches(text, s["id"], s.get("name"), s.get("type"), s.get("deviceId"))]
        if text
        else sensors
    )
    rows, page, pages = paged(matched, page, SENSORS_PAGE)
    record = tp.gateways.get(gateway_id) or tp.mqtt.gateways.records.get(gateway_id)
    return {
        "gateway": gateway_id,
        "name": record.get("name") if record else None,
        "known": record is not None,
        "total": len(sensors),
        "matched": len(matched),
        "page": page,
        "pages": pages,
        "rows": [sensor_row(tp, sensor) for sensor in rows],
    }


class Actuators:
    """Each gateway's actuators (id, name, type), found once per change of its sensor count: a gateway
    of 10,000 sensors is not scanned every tick for the two it can switch."""

    def __init__(self) -> None:
        self._found: dict[str, tuple[int, list[dict[str, Any]]]] = {}

    def of(self, tp: ThingPlusEmulator, gateway_id: str) -> list[dict[str, Any]]:
        count = tp.sensors.count_of(gateway_id)
        cached = self._found.get(gateway_id)
        if cached is None or cached[0] != count:
            found = [
                {"id": s["id"], "name": s.get("name"), "type": s.get("type")}
                for s in tp.sensors.of(gateway_id)
                if s.get("category") == "actuator"
            ]
            cached = self._found[gateway_id] = (count, found)
        return cached[1]


def rpc_view(tp: ThingPlusEmulator, actuators: Actuators) -> dict[str, Any]:
    """The MQTT gateways a command can go to now (connected ones), each with its actuators."""
    if tp.mqtt.port is None:
        return {"served": False, "gateways": []}
    targets: list[dict[str, Any]] = []
    for gateway_id, link in tp.mqtt.links.items():
        if link.connected and len(targets) < TARGETS_MAX:
            targets.append({"id": gateway_id, "actuators": actuators.of(tp, gateway_id)})
    return {"served": True, "gateways": targets}
