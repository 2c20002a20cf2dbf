"""The ``fleet:`` section, and the template it makes many gateways from.

A fleet inventory is a normal inventory plus ``fleet:``; its gateway, device and sensor names and its
simulation parameters, and ``thingplus.gateway_id`` / ``apikey`` (a fleet over MQTT:
gatewayd.inventory.fleetmqtt), may hold ``{index}`` (any format spec: ``{index:04d}``) and ``{shard}``. Gateway
*i* (0-based) is the template with the placeholders filled in and, when the fleet has a ``seed``, each
simulated sensor seeded from that seed, the gateway's index and the sensor's name: reproducible from
one run to the next, different from one gateway to the next.

Why the placeholders are filled in the raw data, before validation: a parameter such as
``max: "{index}"`` is a number only once it is filled, and a problem found then is still located at the
template's line. ``gatewayd check`` validates gateway 0 of shard 0.
"""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Annotated, Any, Optional

from pydantic import Field

from gatewayd.inventory.types import Duration, Name, Strict

#: ``{index}``, ``{index:04d}``, ``{shard}``: the fields a template may hold (other braces stay as they are).
PLACEHOLDER = re.compile(r"\{(index|shard)(?::([^{}]*))?\}")


class FleetRamp(Strict):
    """How fast the gateways come up (each registers and connects as it does)."""

    per_second: Annotated[float, Field(gt=0)] = 10.0


class FleetChurn(Strict):
    """Every ``every``, a ``fraction`` of the gateways goes offline for ``offline`` (their points wait in
    the outbox and drain when they are back), and a ``sensor_failures`` fraction of the sensors of the
    fleet fails to read for as long."""

    fraction: Annotated[float, Field(ge=0, le=1)] = 0.1
    offline: Duration = 300.0
    every: Duration = 1800.0
    sensor_failures: Annotated[float, Field(ge=0, le=1)] = 0.0


class FleetConfig(Strict):
    #: Names the fleet; the gateways' ids derive from it and their index. Default: the gateway name template.
    name: Optional[Name] = None  # noqa: UP045 - pydantic evaluates it on 3.9
    gateways: Annotated[int, Field(gt=0, le=1_000_000)]
    seed: int = 0
    ramp: FleetRamp = Field(default_factory=FleetRamp)
    churn: Optional[FleetChurn] = None  # noqa: UP045 - pydantic evaluates it on 3.9


def fill(text: str, index: int, shard: int) -> str:
    """``text`` with its ``{index...}`` and ``{shard...}`` fields filled in (ValueError: a bad spec)."""

    def one(match: re.Match[str]) -> str:
        value = index if match.group(1) == "index" else shard
        return format(value, match.group(2) or "")

    return PLACEHOLDER.sub(one, text)


def sensor_seed(fleet_seed: int, index: int, device: str, sensor: str, own: int) -> int:
    """A simulated sensor's seed in gateway ``index``: from the fleet's seed, the index, the sensor's
    name and its own seed in the template (stable across runs and Python versions: not ``hash``)."""
    text = f"{fleet_seed}/{index}/{device}/{sensor}/{own}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def expand(data: dict[str, Any], index: int, shard: int, seed: Optional[int]) -> dict[str, Any]:  # noqa: UP045
    """Gateway ``index``'s inventory data from the template ``data`` (a copy; ``data`` is unchanged).

    ``seed`` None leaves the simulations' seeds alone. Placeholders with a bad format spec are left
    as they are: validation then reports the value where it stands.
    """
    out = copy.deepcopy(data)

    def filled(value: Any) -> Any:
        if not isinstance(value, str) or "{" not in value:
            return value
        try:
            return fill(value, index, shard)
        except ValueError:
            return value

    gateway = out.get("gateway")
    if isinstance(gateway, dict):
        gateway["name"] = filled(gateway.get("name"))
    thingplus = out.get("thingplus")
    if isinstance(thingplus, dict):  # over MQTT each gateway has its own id and API key
        for key in ("gateway_id", "apikey"):
            if key in thingplus:
                thingplus[key] = filled(thingplus[key])
    devices = out.get("devices")
    for device in devices if isinstance(devices, list) else ():
        if not isinstance(device, dict):
            continue
        device["name"] = filled(device.get("name"))
        sensors = device.get("sensors")
        for sensor in sensors if isinstance(sensors, list) else ():
            if not isinstance(sensor, dict):
                continue
            sensor["name"] = filled(sensor.get("name"))
            simulate = sensor.get("simulate")
            if isinstance(simulate, dict):
                for key, value in simulate.items():
                    simulate[key] = [filled(v) for v in value] if isinstance(value, list) else filled(value)
                if seed is not None:
                    own = simulate.get("seed")
                    simulate["seed"] = sensor_seed(
                        seed,
                        index,
                        str(device["name"]),
                        str(sensor["name"]),
                        own if isinstance(own, int) else 0,
                    )
    return out


def template_seed(data: dict[str, Any]) -> Optional[int]:  # noqa: UP045
    """The ``fleet.seed`` of raw inventory data (0 when absent), or None when there is no fleet."""
    fleet = data.get("fleet")
    if not isinstance(fleet, dict):
        return None
    seed = fleet.get("seed", 0)
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else 0
