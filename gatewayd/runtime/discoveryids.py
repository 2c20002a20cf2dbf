"""Thing+ ids of devices, sensors and actuators, built from the cloud's id templates: pure functions.

Why templates: in the embedded-gateway protocol the portal decides what an id looks like (a device model's
``idTemplate``, typically ``{gatewayId}-{deviceAddress}``; a sensor driver's, typically
``{gatewayId}-{deviceAddress}-{type}-{sequence}``). gatewayd fills them in: ``deviceAddress`` is the
device's inventory name, ``type`` the sensor's (or actuator's) type, and ``sequence`` its 0-based place
among the device's sensors and actuators of that type, in inventory order; when the device has one of
that type the sequence is left out together with the separator before it. An id, once made, is kept in
the registry: renaming or reordering sensors later never changes a registered id, and a new sensor whose
id is taken gets the next free sequence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

#: The placeholders gatewayd knows; any other in a template is refused (an id we cannot make right).
PLACEHOLDERS = ("gatewayId", "deviceAddress", "type", "sequence")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
#: ``{sequence}`` with the one separator character before it, left out together when there is no sequence.
_OPTIONAL_SEQUENCE = re.compile(r"[-_.:]?\{sequence\}")
#: What an id must not hold: MQTT topic wildcards and level separators, control characters, and the comma
#: (the gateway status message is ``sid,status,valid,...``: an id with a comma would break it).
_FORBIDDEN = re.compile(r"[/+#,\x00-\x1f]")


class TemplateError(ValueError):
    """A template gatewayd cannot fill in, or an id that cannot go into a topic."""


def fill(
    template: str,
    *,
    gateway_id: str,
    device_address: str,
    type: str | None = None,
    sequence: int | None = None,
) -> str:
    """``template`` with its placeholders replaced; TemplateError for an unknown one or a bad result."""
    unknown = sorted({name for name in _PLACEHOLDER.findall(template) if name not in PLACEHOLDERS})
    if unknown:
        raise TemplateError(f"id template {template!r} has unknown placeholders {unknown}")
    if sequence is None:
        template = _OPTIONAL_SEQUENCE.sub("", template)
    if "{type}" in template and type is None:
        raise TemplateError(f"id template {template!r} needs a type")
    values = {
        "gatewayId": gateway_id,
        "deviceAddress": device_address,
        "type": type or "",
        "sequence": "" if sequence is None else str(sequence),
    }
    made = _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
    if not made or _FORBIDDEN.search(made):
        raise TemplateError(
            f"id {made!r} (from template {template!r}) is empty or holds / + # , or a control"
        )
    return made


def sequences(types: Sequence[str]) -> list[int | None]:
    """The sequence of each of a device's sensors (and actuators), by their types in inventory order:
    None for a type the device has once, else 0, 1, ... per type."""
    totals: dict[str, int] = {}
    for t in types:
        totals[t] = totals.get(t, 0) + 1
    seen: dict[str, int] = {}
    result: list[int | None] = []
    for t in types:
        if totals[t] == 1:
            result.append(None)
        else:
            result.append(seen.get(t, 0))
        seen[t] = seen.get(t, 0) + 1
    return result


def free_id(
    template: str,
    *,
    gateway_id: str,
    device_address: str,
    type: str,
    sequence: int | None,
    taken: Iterable[str],
) -> str:
    """:func:`fill`, with the next sequence when the id is already another object's."""
    used = set(taken)
    made = fill(template, gateway_id=gateway_id, device_address=device_address, type=type, sequence=sequence)
    next_sequence = 0 if sequence is None else sequence + 1
    while made in used:
        made = fill(
            template, gateway_id=gateway_id, device_address=device_address, type=type, sequence=next_sequence
        )
        next_sequence += 1
    return made
