"""The Thing+ MQTT transport's keys: ``thingplus.transport: mqtt`` with ``gateway_id``, ``apikey`` and ``mqtt``.

Why a module of its own: the MQTT mode (Thing+'s embedded-gateway protocol, /shared/specs/thingplus-mqtt.md)
needs other credentials than the HTTPS + OAuth2 mode, and which keys are required depends on
``transport``; :func:`transport_problems` says which are missing or misplaced as pydantic errors located at
the key itself, so the inventory's problems name ``thingplus.apikey`` and its line, not the whole section.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

from pydantic import Field

from gatewayd.inventory.types import Duration, Name, Strict

#: The keys only the HTTPS (OAuth2) transport needs, and the ones only the MQTT transport takes.
HTTPS_KEYS = ("client_id", "client_secret", "username")
MQTT_KEYS = ("gateway_id", "apikey", "mqtt")

#: The MQTT ports the spec names: TLS and plain.
TLS_PORT = 8883
PLAIN_PORT = 1883


class MqttConfig(Strict):
    """Where the Thing+ MQTT broker is and how to talk to it."""

    host: Name
    #: Default: 8883 with TLS, 1883 without (see :attr:`effective_port`).
    port: Optional[Annotated[int, Field(ge=1, le=65535)]] = None  # noqa: UP045 - pydantic evaluates it on 3.9
    tls: bool = True
    #: PEM bundle to verify the broker's certificate; the system store otherwise.
    ca_file: Optional[str] = None  # noqa: UP045
    #: MQTT keepalive; default 2 x the report interval (what the spec recommends).
    keepalive: Optional[Duration] = None  # noqa: UP045
    #: How often statuses and points are sent until the cloud sets another (``setProperty``); the real
    #: platform's minimum is one minute.
    report_interval: Duration = 60.0

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return TLS_PORT if self.tls else PLAIN_PORT


def transport_problems(data: Any) -> list[dict[str, Any]]:
    """pydantic error details for the keys ``transport`` requires or refuses, located at each key.

    https: client_id, client_secret, username (and one password, checked by the model) as ever, and no
    MQTT keys (they would be silently unused). mqtt: gateway_id, apikey and mqtt; the HTTPS keys are
    allowed (not used: switching back needs no edit) but not required.
    """
    if not isinstance(data, dict):
        return []
    transport = data.get("transport", "https")
    errors: list[dict[str, Any]] = []
    if transport == "https":
        for key in HTTPS_KEYS:
            if data.get(key) is None:
                errors.append({"type": "missing", "loc": (key,), "input": data})
        for key in MQTT_KEYS:
            if data.get(key) is not None:
                errors.append(_value_error((key,), "is used only with 'transport: mqtt'", data[key]))
    elif transport == "mqtt":
        for key in MQTT_KEYS:
            if data.get(key) is None:
                errors.append({"type": "missing", "loc": (key,), "input": data})
    return errors


def _value_error(loc: tuple[str, ...], message: str, value: Any) -> dict[str, Any]:
    return {"type": "value_error", "loc": loc, "input": value, "ctx": {"error": ValueError(message)}}
