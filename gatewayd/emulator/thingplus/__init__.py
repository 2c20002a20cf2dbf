"""An emulated Thing+ REST v2 (HTTPS + OAuth2), written from the vendor's interworking guide and from
what the real platform answered where the guide is silent or stricter than the platform.

It checks what the document (and ``shared/specs/README.md``) says the real platform checks, and
records everything it accepts so tests can look. One job a module:

* :mod:`.wire`: the envelope ``{statusCode, message, data}``; failures carry ``errors: [{code,
  message}]`` with codes ``SCHEMA_VALIDATE`` (wrong type, missing or unknown key, bad reqId),
  ``INVALID_INPUT`` (well formed but wrong: a sensor triple not in the model, a device of another
  gateway, a stale or future point), ``NOT_FOUND`` and ``CONFLICT`` (a reqId that exists).
* :mod:`.tokens`: ``POST /v2/oauth2/token`` (password grant) and the bearer check of every other call.
* :mod:`.registration`: sites, the gateway model, gateways, devices and sensors.
* :mod:`.reporting`: gateway and sensor status, sensor series.
* :mod:`.checks`: the body checks; :mod:`.model`: the model and the records kept;
  :mod:`.state`: what is held and the knobs; :mod:`.cloud`: routes and the composed emulator.

Where the real platform is laxer than the document, the emulator follows the platform (README,
"The emulated Thing+"). Nothing here comes from gatewayd's own Thing+ client: the emulator must not
share its mistakes.
"""

from __future__ import annotations

from gatewayd.emulator.thingplus.cloud import ThingPlusEmulator
from gatewayd.emulator.thingplus.model import (
    DEVICE_MODEL_ID,
    DRIVER_NAME,
    GATEWAY_MODEL_ID,
    NETWORK,
    SENSOR_TYPES,
    Point,
    StatusRecord,
)
from gatewayd.emulator.thingplus.state import DEFAULT_SERIES_MAX_AGE_S, DEFAULT_SERIES_MAX_FUTURE_S
from gatewayd.emulator.thingplus.tokens import TOKEN_LIFETIME_S

__all__ = [
    "DEFAULT_SERIES_MAX_AGE_S",
    "DEFAULT_SERIES_MAX_FUTURE_S",
    "DEVICE_MODEL_ID",
    "DRIVER_NAME",
    "GATEWAY_MODEL_ID",
    "NETWORK",
    "SENSOR_TYPES",
    "TOKEN_LIFETIME_S",
    "Point",
    "StatusRecord",
    "ThingPlusEmulator",
]
