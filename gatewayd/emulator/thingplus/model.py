"""The Open API Gateway model (id 52) as the document shows it, and the records the emulator keeps."""

from __future__ import annotations

import functools
import hashlib
from typing import Any, NamedTuple

GATEWAY_MODEL_ID = "52"
DEVICE_MODEL_ID = "open-api-device-v1.0"
DRIVER_NAME = "openApiSensor"
NETWORK = "daliworks"
MAX_DEVICES = 99

#: Sensor types of the Open API device model: (type, model). The document lists temperature, humidity
#: and conductivity (and elides the rest); the others follow the same naming. Clients should read
#: the list from ``GET /v2/gatewayModels/52`` rather than assume it.
SENSOR_TYPES: tuple[tuple[str, str], ...] = (
    ("temperature", "openApiTemp"),
    ("humidity", "openApiHumi"),
    ("conductivity", "openApiConductivity"),
    ("number", "openApiNumber"),
    ("percent", "openApiPercent"),
    ("string", "openApiString"),
    ("onoff", "openApiOnoff"),
    ("voltage", "openApiVoltage"),
    ("current", "openApiCurrent"),
    ("power", "openApiPower"),
    ("pressure", "openApiPressure"),
    ("co2", "openApiCo2"),
    ("co", "openApiCo"),
    ("light", "openApiLight"),
    ("noise", "openApiNoise"),
    ("dust", "openApiDust"),
    ("battery", "openApiBattery"),
    ("count", "openApiCount"),
    ("weight", "openApiWeight"),
    ("location", "openApiLocation"),
)
SENSOR_MODELS: dict[str, str] = dict(SENSOR_TYPES)


class Point(NamedTuple):
    """One accepted series point: the sensor's ``time`` (unix ms), its value, and when it arrived (ms).

    A named tuple: a run keeps millions, and one is 64 bytes (a frozen dataclass with its ``__dict__``,
    ~350) and quick to make.
    """

    time: int
    value: str | dict[str, Any]
    received: int


class StatusRecord(NamedTuple):
    """One accepted status: when it arrived (unix ms), the value, validDuration (s) and expireAt (ms)."""

    received: int
    value: str
    valid_duration: int
    expire_at: int


def gateway_model(report_interval_ms: int, created_ms: int) -> dict[str, Any]:
    """The Open API Gateway model (id 52) as ``GET /v2/gatewayModels/52`` answers it."""
    created = str(created_ms)
    return {
        "reportInterval": str(report_interval_ms),
        "displayName": "Open API Gateway",
        "id": GATEWAY_MODEL_ID,
        "model": "open-api-gateway-v1.0",
        "deviceModels": [
            {
                "id": DEVICE_MODEL_ID,
                "displayName": "Open API Device",
                "idTemplate": "{gatewayId}-{deviceAddress}",
                "discoverable": "y",
                "sensors": [
                    {
                        "network": NETWORK,
                        "driverName": DRIVER_NAME,
                        "model": model,
                        "type": kind,
                        "category": "sensor",
                    }
                    for kind, model in SENSOR_TYPES
                ],
                "max": MAX_DEVICES,
            }
        ],
        "gatewayIdConfig": "n",
        "mtime": created,
        "idFormat": "uuid",
        "vendor": "OPEN API",
        "ctime": created,
        "deviceMgmt": {
            "reportInterval": {"show": "y", "change": "y"},
            "DM": {
                name: {"support": "n"} for name in ("poweroff", "reboot", "restart", "swUpdate", "swInfo")
            },
        },
    }


def status_view(records: list[StatusRecord] | None) -> dict[str, Any] | None:
    """The latest status of a history, as the emulator's state shows it."""
    if not records:
        return None
    last = records[-1]
    return {"value": last.value, "received": last.received, "expireAt": last.expire_at}


@functools.lru_cache(maxsize=65536)
def short(value: str) -> str:
    """Six hex digits naming an id's status or series object (cached: every status and series asks)."""
    return hashlib.sha1(value.encode("utf-8")).hexdigest()[:6]
