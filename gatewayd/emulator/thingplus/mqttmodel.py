"""The embedded-gateway (MQTT) gateway model the emulator serves, its device model and sensor drivers.

What discovery reads (``GET /gatewayModels/{model}``, ``GET /sensorDrivers/?filter[id]=...``): one gateway
model whose device model takes the Open API sensor types plus two actuators (``powerSwitch``, ``led``),
each type served by a driver whose ``idTemplate`` builds the sensor id. Every remote command is offered
(``deviceMgmt.DM.*.support: y``): the gateway decides what it allows.
"""

from __future__ import annotations

from typing import Any

from gatewayd.emulator.thingplus.model import SENSOR_TYPES

MQTT_GATEWAY_MODEL_ID = "53"
MQTT_DEVICE_MODEL_ID = "embedded-device-v1.0"
MQTT_NETWORK = "daliworks"
SENSOR_DRIVER = "embeddedSensor"
ACTUATOR_DRIVER = "embeddedActuator"
DEVICE_ID_TEMPLATE = "{gatewayId}-{deviceAddress}"
SENSOR_ID_TEMPLATE = "{gatewayId}-{deviceAddress}-{type}-{sequence}"
MAX_DEVICES = 99

#: Actuator types of the device model: (type, model). powerSwitch and led take on/off/blink.
ACTUATOR_TYPES: tuple[tuple[str, str], ...] = (
    ("powerSwitch", "embeddedPowerSwitch"),
    ("led", "embeddedLed"),
)
DM_COMMANDS = ("poweroff", "reboot", "restart", "swUpdate", "swInfo")


def _entries() -> list[dict[str, str]]:
    sensors = [
        {
            "network": MQTT_NETWORK,
            "driverName": SENSOR_DRIVER,
            "model": model,
            "type": kind,
            "category": "sensor",
        }
        for kind, model in SENSOR_TYPES
    ]
    actuators = [
        {
            "network": MQTT_NETWORK,
            "driverName": ACTUATOR_DRIVER,
            "model": model,
            "type": kind,
            "category": "actuator",
        }
        for kind, model in ACTUATOR_TYPES
    ]
    return sensors + actuators


#: (type, model, driverName) -> category: what a sensor or actuator registration must match.
CATALOGUE: dict[tuple[str, str, str], str] = {
    (e["type"], e["model"], e["driverName"]): e["category"] for e in _entries()
}
DRIVERS = (SENSOR_DRIVER, ACTUATOR_DRIVER)


def mqtt_gateway_model(report_interval_ms: int, created_ms: int) -> dict[str, Any]:
    """The gateway model as ``GET /gatewayModels/53`` answers it."""
    created = str(created_ms)
    return {
        "id": MQTT_GATEWAY_MODEL_ID,
        "model": "embedded-gateway-v1.0",
        "displayName": "Embedded Gateway (MQTT)",
        "vendor": "gatewayd emulator",
        "reportInterval": str(report_interval_ms),
        "deviceModels": [
            {
                "id": MQTT_DEVICE_MODEL_ID,
                "displayName": "Embedded Device",
                "idTemplate": DEVICE_ID_TEMPLATE,
                "discoverable": "y",
                "sensors": _entries(),
                "max": MAX_DEVICES,
            }
        ],
        "ctime": created,
        "mtime": created,
        "deviceMgmt": {
            "reportInterval": {"show": "y", "change": "y"},
            "DM": {name: {"support": "y"} for name in DM_COMMANDS},
        },
    }


def sensor_driver(driver_id: str) -> dict[str, Any] | None:
    """The driver ``driver_id`` as ``GET /sensorDrivers/?filter[id]=...`` lists it, or None."""
    if driver_id not in DRIVERS:
        return None
    entries = [e for e in _entries() if e["driverName"] == driver_id]
    return {
        "id": driver_id,
        "displayName": "Embedded actuator" if driver_id == ACTUATOR_DRIVER else "Embedded sensor",
        "idTemplate": SENSOR_ID_TEMPLATE,
        "discoverable": "y",
        "category": entries[0]["category"],
        "models": [e["model"] for e in entries],
        "supportedNetworks": [MQTT_NETWORK],
    }
