"""A fleet over Thing+ MQTT: each gateway's id and API key from the template, and the check on them.

Over MQTT every gateway logs in with its own id (clientId = username) and API key, so a fleet template
writes ``thingplus.gateway_id`` (and, when the keys differ, ``thingplus.apikey``) with the placeholders
of gatewayd.inventory.fleet: ``gateway_id: "0090c2{index:06x}"``. Two gateways with one id would throw
each other off the broker and mix their devices, so the id must hold ``{index}`` (``{shard}`` alone
repeats across a shard's gateways).

Why on the raw data: ``${ENV}`` / ``${file:...}`` references were expanded when the YAML was read, and the
placeholders are filled after that; the check looks at the template as written (then expanded), before
gateway *i* is made from it. The emulator (``gatewayd emulator --config FLEET.yaml``) makes the same
ids and keys from the same template, with :func:`fleet_credentials`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from gatewayd.inventory.fleet import PLACEHOLDER, fill
from gatewayd.inventory.yamlsource import DataPath, load_yaml

GATEWAY_ID: DataPath = ("thingplus", "gateway_id")


def _mqtt_fleet(data: Any) -> Optional[dict[str, Any]]:  # noqa: UP045
    """The ``thingplus`` mapping of raw inventory data that is a fleet over MQTT, else None."""
    if not isinstance(data, dict) or not isinstance(data.get("fleet"), dict):
        return None
    thingplus = data.get("thingplus")
    if not isinstance(thingplus, dict) or thingplus.get("transport") != "mqtt":
        return None
    return thingplus


def holds_index(text: str) -> bool:
    """Whether ``text`` has an ``{index}`` placeholder (any format spec)."""
    return any(match.group(1) == "index" for match in PLACEHOLDER.finditer(text))


def template_problems(data: Any) -> list[tuple[DataPath, str]]:
    """What is wrong with the MQTT keys of a fleet template (raw data, ``${...}`` expanded): located
    by their path. A missing ``gateway_id`` is the model's problem, reported there."""
    thingplus = _mqtt_fleet(data)
    if thingplus is None:
        return []
    problems: list[tuple[DataPath, str]] = []
    for key in ("gateway_id", "apikey"):
        value = thingplus.get(key)
        if not isinstance(value, str):
            continue
        try:
            fill(value, 0, 0)
        except ValueError as exc:
            shown = repr(value) if key == "gateway_id" else "the API key"
            problems.append((("thingplus", key), f"{shown} has a placeholder with a bad format spec: {exc}"))
        else:
            if key == "gateway_id" and not holds_index(value):
                problems.append(
                    (
                        GATEWAY_ID,
                        f"a fleet over mqtt needs one gateway id per gateway: {value!r} has no {{index}} "
                        'placeholder (e.g. gateway_id: "0090c2{index:06x}")',
                    )
                )
    return problems


def fleet_credentials(data: Any, shards: int = 1) -> list[tuple[str, str]]:
    """(gateway id, API key) of every gateway of a fleet over MQTT, from its raw data (``${...}``
    expanded), in index order; ``shards`` fills ``{shard}`` as gateway *i* of ``shards`` shards has it
    (i mod shards). Empty when the data is not a fleet over MQTT or lacks the keys."""
    thingplus = _mqtt_fleet(data)
    if thingplus is None:
        return []
    gateway_id, apikey = thingplus.get("gateway_id"), thingplus.get("apikey")
    gateways = data["fleet"].get("gateways")
    if not isinstance(gateway_id, str) or apikey is None or not isinstance(gateways, int):
        return []
    key = str(apikey)
    return [
        (fill(gateway_id, index, index % shards), fill(key, index, index % shards))
        for index in range(gateways)
    ]


def load_fleet_credentials(
    path: str | Path,
    env: Optional[Mapping[str, str]] = None,  # noqa: UP045
    shards: int = 1,
) -> list[tuple[str, str]]:
    """:func:`fleet_credentials` of the inventory file at ``path`` (already checked by load_inventory)."""
    located = load_yaml(Path(path).read_text(encoding="utf-8"), str(path), env, positions=False)
    return fleet_credentials(located.data, shards)
