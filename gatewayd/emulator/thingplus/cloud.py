"""The emulated Thing+ cloud as the composed app sees it: its routes, state and token knobs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from gatewayd.emulator.thingplus.discovery import Discovery
from gatewayd.emulator.thingplus.model import gateway_model
from gatewayd.emulator.thingplus.mqttgateways import DEMO_MQTT_APIKEY, DEMO_MQTT_GATEWAY_ID
from gatewayd.emulator.thingplus.mqttside import MqttSide
from gatewayd.emulator.thingplus.registration import Registration
from gatewayd.emulator.thingplus.reporting import Reporting
from gatewayd.emulator.thingplus.state import ThingPlusState
from gatewayd.emulator.thingplus.wire import Reject
from gatewayd.inventory.config import ThingPlusConfig

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ThingPlusEmulator(ThingPlusState):
    """The emulated Thing+ cloud: its routes, its state, and what tests need to look at.

    Inspect after requests: :attr:`gateways`, :attr:`devices`, :attr:`sensors` (records as the API
    answers them), :attr:`points` (sensor id -> accepted points, in arrival order, duplicates kept),
    :attr:`gateway_statuses` / :attr:`sensor_statuses` (id -> accepted statuses), :attr:`requests`
    (count of requests by kind) and :attr:`rejections` (``"kind:CODE"`` -> count). Set
    :attr:`series_max_age_s` / :attr:`series_max_future_s` (or :meth:`set_series_limits`) to move the
    stale and future limits of series points.
    """

    cloud = "thingplus"

    def __init__(self, config: ThingPlusConfig, **options: Any) -> None:
        super().__init__(config, **options)
        #: The MQTT side: known MQTT gateways, their links, counters and commands (:mod:`.mqttside`).
        self.mqtt = MqttSide(self)
        self.mqtt.gateways.add(DEMO_MQTT_GATEWAY_ID, DEMO_MQTT_APIKEY)
        # The MQTT gateway the inventory names, when it has the keys of the MQTT mode (read by name: the
        # emulator shares no code with the daemon's Thing+ client).
        gateway_id, apikey = getattr(config, "gateway_id", None), getattr(config, "apikey", None)
        if isinstance(gateway_id, str) and apikey is not None:
            reveal = getattr(apikey, "reveal", None)
            self.mqtt.gateways.add(gateway_id, reveal() if callable(reveal) else str(apikey))

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(), "mqtt": self.mqtt.snapshot()}

    def routes(self) -> list[web.RouteDef]:
        r = self._route
        registration, reporting = Registration(self), Reporting(self)
        discovery = Discovery(self, self.mqtt.gateways).routes()
        # The reporting calls come first: aiohttp tries the resources under ``/v2/gateways`` in the order
        # they were added (no path matches two of them, so the order changes nothing else).
        return [
            web.put("/v2/gateways/{owner}/sensors/{id}/series", r("series", reporting.series)),
            web.put("/v2/gateways/{owner}/sensors/{id}/status", r("sensor_status", reporting.sensor_status)),
            web.put("/v2/gateways/{id}/status", r("gateway_status", reporting.gateway_status)),
            web.post("/v2/oauth2/token", r("token", self.tokens.endpoint, auth=False)),
            web.get("/v2/sites", r("sites", registration.sites)),
            web.get("/v2/gatewayModels/{id}", r("gateway_model", registration.gateway_model)),
            web.post("/v2/registerGateway", r("register_gateway", registration.register_gateway)),
            web.get("/v2/gateways", r("list_gateways", registration.list_gateways)),
            web.get("/v2/gateways/{id}", r("get_gateway", registration.get_gateway)),
            web.post("/v2/gateways/{owner}/devices", r("register_device", registration.register_device)),
            web.get("/v2/gateways/{owner}/devices", r("list_devices", registration.list_devices)),
            web.get("/v2/gateways/{owner}/devices/{id}", r("get_device", registration.get_device)),
            web.post("/v2/gateways/{owner}/sensors", r("register_sensor", registration.register_sensor)),
            web.get("/v2/gateways/{owner}/sensors", r("list_sensors", registration.list_sensors)),
            web.get("/v2/gateways/{owner}/sensors/{id}", r("get_sensor", registration.get_sensor)),
            *discovery,
        ]

    def gateway_model(self) -> dict[str, Any]:
        """The Open API Gateway model (id ``52``) as ``GET /v2/gatewayModels/52`` answers it."""
        return gateway_model(self.report_interval_ms, self.created_ms)

    # -- tokens -----------------------------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Invalidate every token issued so far: the next call with one gets 401 ``jwt expired``."""
        log.info("emulator.thingplus.tokens_expired", count=self.tokens.expire_all())

    def issue_token(self) -> str:
        """A fresh valid token, as if the token endpoint had been called."""
        return self.tokens.issue()

    @property
    def tokens_issued(self) -> int:
        return self.tokens.issued

    @property
    def token_lifetime_s(self) -> float:
        return self.tokens.lifetime_s

    @token_lifetime_s.setter
    def token_lifetime_s(self, seconds: float) -> None:
        self.tokens.lifetime_s = seconds

    @property
    def token_encodings(self) -> frozenset[str]:
        """Token request encodings accepted: "json" and/or "form" (the guide shows JSON, its OAuth2 page
        form)."""
        return self.tokens.encodings

    @token_encodings.setter
    def token_encodings(self, encodings: frozenset[str]) -> None:
        self.tokens.encodings = frozenset(encodings)

    # -- plumbing ---------------------------------------------------------------------------------

    def _route(self, kind: str, fn: Handler, *, auth: bool = True) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            self.requests[kind] += 1
            try:
                if auth:
                    self.tokens.authorize(request)
                return await fn(request)
            except Reject as exc:
                self.rejections[f"{kind}:{exc.code}"] += 1
                log.info(
                    "emulator.thingplus.rejected",
                    kind=kind,
                    method=request.method,
                    path=request.path,
                    **exc.log_fields(),
                )
                return exc.response()

        return handler
