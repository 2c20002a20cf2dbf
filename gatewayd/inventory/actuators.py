"""Inventory models of actuators (``devices[].actuators``) and of the cloud's remote commands
(``thingplus.commands``).

An actuator is something the cloud switches with ``controlActuator`` (Thing+ over MQTT only): a name, a
Thing+ actuator type (``powerSwitch``, ``led``, or another type string the gateway model offers) and exactly
one target that does the switching: ``modbus`` (a coil or a holding register), ``command`` (an argv per
command), ``http`` (a request per command) or ``simulate`` (keeps its state, for demos and tests). The keys
are a contract: more may be added, none renamed. The runtime is gatewayd.actuators.

Placeholders: an argv item, a URL, a header value or a body may contain ``{{cmd}}`` (on, off, blink),
``{{device}}``, ``{{actuator}}``, ``{{interval_ms}}`` and ``{{duration_ms}}`` (blink's options; empty when
not given); they are replaced when the command runs. ``{{...}}`` because ``${...}`` is the inventory's
environment expansion and single braces are JSON's.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BeforeValidator, Field, ModelWrapValidatorHandler, model_validator

from gatewayd.inventory.oneof import present_key, validate_one_of
from gatewayd.inventory.sources import ModbusConnection
from gatewayd.inventory.types import Duration, Name, Strict

#: The target keys an actuator may carry; exactly one per actuator.
TARGET_KEYS: tuple[str, ...] = ("modbus", "command", "http", "simulate")

#: What ``{{...}}`` may name in a target's argv, URL, headers or body.
PLACEHOLDERS: tuple[str, ...] = ("cmd", "device", "actuator", "interval_ms", "duration_ms")
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]+)\s*\}\}")


def _check_placeholders(value: str) -> str:
    for name in PLACEHOLDER.findall(value):
        if name not in PLACEHOLDERS:
            raise ValueError(f"unknown placeholder {{{{{name}}}}}: use one of {', '.join(PLACEHOLDERS)}")
    return value


#: A text whose ``{{...}}`` placeholders are checked when the inventory is loaded.
Template = Annotated[str, AfterValidator(_check_placeholders)]
Argv = Annotated[list[Annotated[Template, Field(min_length=1)]], Field(min_length=1)]


def _check_http_template_url(value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(PLACEHOLDER.sub("x", value))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL with a host (got {value!r})")
    return value


#: YAML 1.1 reads a bare ``on:``/``off:`` key as true/false (the inventory loader then makes the key a
#: string): the commands they name.
_YAML_BOOL_KEYS: dict[Any, str] = {True: "on", False: "off", "True": "on", "False": "off"}


def _on_off_keys(data: Any) -> Any:
    if isinstance(data, dict) and any(k in _YAML_BOOL_KEYS for k in data):
        return {_YAML_BOOL_KEYS.get(k, k): v for k, v in data.items()}
    return data


def _on_off_value(value: Any) -> Any:
    """``initial: on`` is true in YAML 1.1: the state it names."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return value


class ModbusTarget(ModbusConnection):
    """Write a ``coil`` or a holding ``register`` (0-based address) of a Modbus TCP or RTU device.

    ``on_value``/``off_value`` are what is written: 1/0 by default; a coil takes only 0 and 1.
    """

    coil: Optional[Annotated[int, Field(ge=0, le=65535)]] = None  # noqa: UP045 - pydantic evaluates it on 3.9
    #: The inventory key is ``register`` (a field of that name would shadow pydantic's ``register``).
    holding_register: Optional[Annotated[int, Field(ge=0, le=65535)]] = Field(  # noqa: UP045
        default=None, alias="register"
    )
    on_value: Annotated[int, Field(ge=0, le=65535)] = 1
    off_value: Annotated[int, Field(ge=0, le=65535)] = 0

    @model_validator(mode="after")
    def _one_address(self) -> ModbusTarget:
        if (self.coil is None) == (self.holding_register is None):
            raise ValueError("give exactly one of 'coil' and 'register' (the address written)")
        if self.coil is not None and not {self.on_value, self.off_value} <= {0, 1}:
            raise ValueError("a coil is written 0 or 1: on_value and off_value must be 0 or 1")
        if self.on_value == self.off_value:
            raise ValueError(f"on_value and off_value must differ (both are {self.on_value})")
        return self

    @property
    def address(self) -> int:
        address = self.coil if self.coil is not None else self.holding_register
        assert address is not None  # the validator guarantees one of them
        return address


class CommandTarget(Strict):
    """A program run per command (argv, no shell); a non-zero exit or a timeout fails the command.

    Without ``blink``, a blink runs ``on`` and ``off`` in turn at its interval; with it, ``blink`` runs once
    (the device blinks by itself, ``{{interval_ms}}`` tells it how fast) and ``off`` ends a blink that has
    a duration.
    """

    on: Argv
    off: Argv
    blink: Optional[Argv] = None  # noqa: UP045 - pydantic evaluates it on 3.9
    timeout: Duration = 10.0

    _yaml_keys = model_validator(mode="before")(_on_off_keys)


class HttpRequestSpec(Strict):
    """One request; a status other than 2xx fails the command."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: Annotated[Template, AfterValidator(_check_http_template_url)]
    headers: dict[str, Template] = Field(default_factory=dict)
    #: Sent as it is after the placeholders are replaced (say the Content-Type in ``headers``).
    body: Optional[Template] = None  # noqa: UP045 - pydantic evaluates it on 3.9


class HttpTarget(Strict):
    """A request per command, sent through the daemon's HTTP session; ``blink`` as for CommandTarget."""

    on: HttpRequestSpec
    off: HttpRequestSpec
    blink: Optional[HttpRequestSpec] = None  # noqa: UP045 - pydantic evaluates it on 3.9
    timeout: Duration = 10.0

    _yaml_keys = model_validator(mode="before")(_on_off_keys)


class SimulateTarget(Strict):
    """Keeps its state and switches nothing: demos and tests (``simulate: {}``)."""

    initial: Annotated[Literal["on", "off"], BeforeValidator(_on_off_value)] = "off"


class ActuatorConfig(Strict):
    name: Name
    #: A Thing+ actuator type: ``powerSwitch``, ``led``, or another type the gateway model offers.
    type: Name
    modbus: Optional[ModbusTarget] = None  # noqa: UP045 - pydantic evaluates it on 3.9
    command: Optional[CommandTarget] = None  # noqa: UP045
    http: Optional[HttpTarget] = None  # noqa: UP045
    simulate: Optional[SimulateTarget] = None  # noqa: UP045

    @model_validator(mode="wrap")
    @classmethod
    def _one_target(cls, data: Any, handler: ModelWrapValidatorHandler[ActuatorConfig]) -> ActuatorConfig:
        return validate_one_of(data, handler, TARGET_KEYS, "target")

    @property
    def target_kind(self) -> str:
        return present_key(self, TARGET_KEYS)

    @property
    def target(self) -> Any:
        return getattr(self, self.target_kind)


#: The commands that act on the whole box; refused unless listed in ``thingplus.commands.allow``.
GuardedCommand = Literal["poweroff", "reboot", "swUpdate"]


class CommandsConfig(Strict):
    """What the cloud's remote commands may do (``thingplus.commands``)."""

    #: Which of poweroff, reboot and swUpdate are carried out; the others get a JSON-RPC error.
    allow: list[GuardedCommand] = Field(default_factory=list)
    #: A ``timeSync`` whose time is further than this from the box's clock logs a warning.
    time_sync_warn: Duration = 5.0
    poweroff: Argv = Field(default_factory=lambda: ["systemctl", "poweroff"])
    reboot: Argv = Field(default_factory=lambda: ["systemctl", "reboot"])
    #: No default: an allowed swUpdate needs the program that updates this box.
    swUpdate: Optional[Argv] = None  # noqa: UP045 - named as the Thing+ method; pydantic evaluates it on 3.9
    #: How long one of these programs may run.
    timeout: Duration = 60.0

    @model_validator(mode="after")
    def _runnable(self) -> CommandsConfig:
        if "swUpdate" in self.allow and self.swUpdate is None:
            raise ValueError("allows swUpdate but gives no 'swUpdate' argv to run: add one or disallow it")
        return self

    def argv(self, method: str) -> list[str] | None:
        """The argv of an allowed guarded method, or None when it is refused."""
        if method not in self.allow:
            return None
        argv: list[str] | None = getattr(self, method)
        return argv
