"""The MQTT gateways the emulated portal knows: their ids, API keys and models, and the checks on them.

A gateway of the embedded-gateway protocol is registered in the portal by its id, which hands out an API
key (README, "The emulated Thing+ over MQTT"). Known here are: the demo gateway (documented, like the
demo's HTTPS credentials), the gateway the inventory names (``thingplus.gateway_id`` / ``apikey`` when
the inventory has them), every gateway of a fleet inventory over MQTT (its ids and keys made from the
template, :meth:`MqttGateways.add_fleet`), and any added through ``POST /_emulator/thingplus/mqtt-gateways``. Adding one
also makes its gateway record, as the portal does. The records are kept here, apart from the HTTPS
path's ``gateways`` (which only ``registerGateway`` fills); their devices and sensors go where the HTTPS
path keeps them, so ``/_emulator/state`` lists those and their points alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, NamedTuple

import structlog

from gatewayd.emulator.thingplus.mqttmodel import MQTT_GATEWAY_MODEL_ID
from gatewayd.emulator.thingplus.state import ThingPlusState

log = structlog.get_logger(__name__)

#: The demo MQTT gateway every emulator knows (README, "The emulated Thing+ over MQTT").
DEMO_MQTT_GATEWAY_ID = "b827eb000001"
DEMO_MQTT_APIKEY = "demo-mqtt-apikey"
#: Gateway models the emulator serves to MQTT gateways.
MQTT_MODELS = (MQTT_GATEWAY_MODEL_ID,)

_GATEWAY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


class MqttGateway(NamedTuple):
    """A gateway the portal knows: id, API key, model, and whether its plan forbids creating objects."""

    id: str
    apikey: str
    model: str
    forbid_create: bool = False

    def view(self) -> dict[str, Any]:
        """As the state shows it: the API key is a test credential, shown so a tester can use it."""
        return {
            "id": self.id,
            "apikey": self.apikey,
            "model": self.model,
            "forbid_create": self.forbid_create,
        }


class MqttGateways:
    """The known MQTT gateways of one emulated Thing+ (``state``), keyed by id."""

    def __init__(self, state: ThingPlusState) -> None:
        self.state = state
        self.known: dict[str, MqttGateway] = {}
        #: The gateway records, as ``GET /gateways/{gw}`` answers them.
        self.records: dict[str, dict[str, Any]] = {}

    def add(
        self, gateway_id: Any, apikey: Any, model: Any = MQTT_GATEWAY_MODEL_ID, *, forbid_create: bool = False
    ) -> MqttGateway:
        """Know ``gateway_id`` with ``apikey`` (again: replaces its key, model and plan) and register its
        gateway record (kept if it has one of that model). Raises ValueError for a bad id, key or model."""
        gateway = self._add(gateway_id, apikey, model, forbid_create)
        log.info("emulator.thingplus.mqtt_gateway_added", gateway=gateway_id, model=model)
        return gateway

    def add_fleet(self, credentials: Iterable[tuple[str, str]]) -> int:
        """Know every gateway of a fleet inventory (its ids and API keys, gatewayd.inventory.fleetmqtt),
        logged once for them all; how many."""
        added = [
            self._add(gateway_id, apikey, MQTT_GATEWAY_MODEL_ID, False) for gateway_id, apikey in credentials
        ]
        if added:
            log.info(
                "emulator.thingplus.mqtt_fleet_added",
                gateways=len(added),
                first=added[0].id,
                last=added[-1].id,
            )
        return len(added)

    def _add(self, gateway_id: Any, apikey: Any, model: Any, forbid_create: bool) -> MqttGateway:
        if not isinstance(gateway_id, str) or not _GATEWAY_ID.match(gateway_id):
            raise ValueError(f"id must be a gateway id (letters, digits, . _ : -), not {gateway_id!r}")
        if not isinstance(apikey, str) or not apikey:
            raise ValueError("apikey must be a non-empty string")
        if model not in MQTT_MODELS:
            raise ValueError(f"model must be one of {list(MQTT_MODELS)} (MQTT gateway models), not {model!r}")
        gateway = MqttGateway(gateway_id, apikey, model, bool(forbid_create))
        self.known[gateway_id] = gateway
        record = self.records.get(gateway_id)
        if record is None or record.get("model") != model:
            now = self.state.now_ms()
            self.records[gateway_id] = {
                "name": f"MQTT gateway {gateway_id}",
                "model": model,
                "_site": self.state.site_id,
                "_service": "1",
                "reportInterval": str(self.state.report_interval_ms),
                "autoCreateDiscoverable": "y",
                "mtime": now,
                "ctime": now,
                "id": gateway_id,
            }
        return gateway

    def check(self, gateway_id: Any, apikey: Any) -> MqttGateway | None:
        """The gateway if ``apikey`` is its key, else None."""
        gateway = self.known.get(gateway_id) if isinstance(gateway_id, str) else None
        if gateway is None or not isinstance(apikey, str) or apikey != gateway.apikey:
            return None
        return gateway

    def snapshot(self) -> list[dict[str, Any]]:
        return [{**g.view(), "record": self.records[g.id]} for g in self.known.values()]
