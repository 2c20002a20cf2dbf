"""The inventory's models: one per section, the devices and their sensors, and the whole inventory.

Strict pydantic v2 models (unknown keys are errors; a typo must not fall back to a default). The
schema is a contract with users: later versions add keys, never rename them. Loading and the located
problems live in :mod:`gatewayd.inventory.config`; the sources a sensor reads in
:mod:`gatewayd.inventory.sources`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, Field, ModelWrapValidatorHandler, ValidationError, model_validator

from gatewayd.inventory.actuators import ActuatorConfig, CommandsConfig
from gatewayd.inventory.fleet import FleetConfig
from gatewayd.inventory.mqtt import MqttConfig, transport_problems
from gatewayd.inventory.oneof import present_key, validate_one_of
from gatewayd.inventory.sources import (
    SOURCE_KEYS,
    CommandSource,
    FileSource,
    HttpSource,
    LoctubeBridge,
    ModbusSource,
    RcmsBridge,
    SimulateSource,
)
from gatewayd.inventory.types import Duration, Listen, Name, Strict, Url, at_most, check_md5
from gatewayd.secret import Secret


class GatewayConfig(Strict):
    name: Name
    model: Name = "52"
    #: Thing+ site id; absent means the account's first site.
    site: str | None = None


class HttpConfig(Strict):
    listen: Listen = "127.0.0.1:9108"


class CloudConfig(Strict):
    """What every cloud section has: where it is, how long a call may take, which CA to trust."""

    endpoint: Url
    #: PEM bundle to verify a private server's TLS certificate; the system store otherwise.
    ca_file: str | None = None
    timeout: Duration = 15.0


class ThingPlusConfig(CloudConfig):
    #: https: the Open API Gateway (OAuth2 password grant, a request per sensor); mqtt: the embedded-gateway
    #: protocol (REST discovery with an API key, then MQTT). Which keys each needs: gatewayd.inventory.mqtt.
    transport: Literal["https", "mqtt"] = "https"
    client_id: Optional[Name] = None  # noqa: UP045 - pydantic evaluates it on 3.9
    client_secret: Optional[Secret] = None  # noqa: UP045
    username: Optional[Name] = None  # noqa: UP045
    password: Secret | None = None
    password_md5: Annotated[Secret, AfterValidator(check_md5)] | None = None
    #: transport mqtt: the gateway's id in the portal (often its MAC address in lower-case hex) and its key.
    gateway_id: Optional[Name] = None  # noqa: UP045
    apikey: Optional[Secret] = None  # noqa: UP045
    mqtt: Optional[MqttConfig] = None  # noqa: UP045

    @model_validator(mode="wrap")
    @classmethod
    def _transport_keys(
        cls, data: Any, handler: ModelWrapValidatorHandler[ThingPlusConfig]
    ) -> ThingPlusConfig:
        """The keys ``transport`` requires, each reported at its place, with the section's other problems."""
        extra: list[Any] = transport_problems(data)
        try:
            config = handler(data)
        except ValidationError as exc:
            if not extra:
                raise
            errors: list[Any] = [*exc.errors(), *extra]
            raise ValidationError.from_exception_data(exc.title, errors) from None
        if extra:
            raise ValidationError.from_exception_data(cls.__name__, extra)
        return config

    #: Remote commands from the cloud (Thing+ over MQTT): gatewayd.inventory.actuators.CommandsConfig.
    commands: CommandsConfig = Field(default_factory=CommandsConfig)

    @model_validator(mode="after")
    def _one_password(self) -> ThingPlusConfig:
        if self.transport == "https" and (self.password is None) == (self.password_md5 is None):
            raise ValueError("give exactly one of 'password' and 'password_md5'")
        return self

    def oauth_client(self) -> tuple[str, Secret, str]:
        """client_id, client_secret and username: always given with ``transport: https`` (validated)."""
        if self.client_id is None or self.client_secret is None or self.username is None:
            raise ValueError("the OAuth2 keys are required with transport https")
        return self.client_id, self.client_secret, self.username

    def password_hash(self) -> Secret:
        """The md5 hex of the password: what the token request sends, never the password itself."""
        import hashlib

        if self.password_md5 is not None:
            return self.password_md5
        assert self.password is not None
        return Secret(hashlib.md5(self.password.reveal().encode("utf-8")).hexdigest())


class PolledCloudConfig(CloudConfig):
    poll_interval: Duration = 60.0
    devices: list[Name] = Field(default_factory=list)


#: The longest ``rcms.lookback``, and as far back as RCMS history is ever fetched (a day less than the
#: age at which Thing+ refuses a point: a day for the points to wait in the outbox).
MAX_RCMS_HISTORY_S = 4 * 86400.0
_WHY_LOOKBACK_LIMIT = "Thing+ refuses points about 5 days old, so older RCMS history is never fetched"
RcmsLookback = Annotated[Duration, AfterValidator(at_most(MAX_RCMS_HISTORY_S, "4d", _WHY_LOOKBACK_LIMIT))]


class RcmsConfig(PolledCloudConfig):
    client_id: Name
    client_secret: Secret
    #: How far back the first poll of a router looks (its history since then becomes points), so a
    #: fresh daemon shows a value at once; later polls go on from the newest record.
    lookback: RcmsLookback = 3600.0


class LoctubeConfig(PolledCloudConfig):
    client_id: Name
    secure_key: Secret
    sign: Literal["md5", "sha256"] = "md5"
    auth: Literal["signature", "token", "oauth2"] = "signature"
    #: Lifetime asked for an ``/api/v1/token`` token, in seconds (auth: token).
    token_expires: Annotated[int, Field(gt=0)] = 7200


class OutboxConfig(Strict):
    """Bounds of the durable outbox; past them the oldest points are dropped (and counted)."""

    max_points: Annotated[int, Field(gt=0)] = 5_000_000
    max_age: Duration = 30 * 86400.0
    #: Samples kept in memory while the outbox cannot be written (a full disk); None: sized from the
    #: sampling rate (gatewayd.runtime.diskguard.memory_points_for).
    memory_points: Optional[Annotated[int, Field(gt=0)]] = None  # noqa: UP045 - pydantic evaluates it on 3.9


class SensorConfig(Strict):
    name: Name
    #: A Thing+ sensor type (temperature, humidity, number, percent, ...), checked against the gateway model.
    type: Name
    interval: Duration = 60.0
    simulate: SimulateSource | None = None
    file: FileSource | None = None
    command: CommandSource | None = None
    http: HttpSource | None = None
    modbus: ModbusSource | None = None
    rcms: RcmsBridge | None = None
    loctube: LoctubeBridge | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _one_source(cls, data: Any, handler: ModelWrapValidatorHandler[SensorConfig]) -> SensorConfig:
        """Report a missing or doubled source together with the sensor's other problems, not instead."""
        return validate_one_of(data, handler, SOURCE_KEYS, "source")

    @property
    def source_kind(self) -> str:
        return present_key(self, SOURCE_KEYS)

    @property
    def source(self) -> Any:
        return getattr(self, self.source_kind)


class DeviceConfig(Strict):
    name: Name
    sensors: list[SensorConfig] = Field(default_factory=list)
    #: What the cloud can switch (Thing+ over MQTT only): gatewayd.inventory.actuators.
    actuators: list[ActuatorConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_sensor_names(self) -> DeviceConfig:
        require_unique([s.name for s in self.sensors], "sensors", "sensor name")
        require_unique([a.name for a in self.actuators], "actuators", "actuator name")
        return self


class Inventory(Strict):
    gateway: GatewayConfig
    state_dir: Path = Path("/var/lib/gatewayd")
    http: HttpConfig | None = None
    thingplus: ThingPlusConfig
    rcms: RcmsConfig | None = None
    loctube: LoctubeConfig | None = None
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    devices: list[DeviceConfig] = Field(default_factory=list)
    #: Many gateways from this one as a template (``gatewayd fleet``; ``gatewayd run`` refuses it).
    fleet: Optional[FleetConfig] = None  # noqa: UP045 - pydantic evaluates it on 3.9

    @model_validator(mode="after")
    def _unique_device_names(self) -> Inventory:
        require_unique([d.name for d in self.devices], "devices", "device name")
        return self

    def sensors(self) -> list[tuple[DeviceConfig, SensorConfig]]:
        """Every (device, sensor) pair in inventory order."""
        return [(d, s) for d in self.devices for s in d.sensors]

    def without_devices(self) -> Inventory:
        """Every section but ``devices``: what a running daemon keeps once its sensors run and are
        registered (the device and sensor models are most of an inventory's memory, no longer needed)."""
        return self.model_copy(update={"devices": []})

    def summary(self) -> dict[str, Any]:
        """What ``gatewayd check`` prints: counts and what is polled."""
        polled = [name for name in ("rcms", "loctube") if getattr(self, name) is not None]
        return {
            "gateway": self.gateway.name,
            "devices": len(self.devices),
            "sensors": sum(len(d.sensors) for d in self.devices),
            "sources": _count_by(s.source_kind for _, s in self.sensors()),
            "polled": polled,
            "thingplus": self.thingplus.endpoint,
            "state_dir": str(self.state_dir),
        }


class DuplicateName(ValueError):
    """Carries which list entry repeats a name, so the message can point at that line."""

    def __init__(self, field: str, index: int, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.index = index


def require_unique(names: list[str], field: str, what: str) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise DuplicateName(field, i, f"duplicate {what} {name!r}: names must be unique")
        seen[name] = i


def _count_by(items: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts
