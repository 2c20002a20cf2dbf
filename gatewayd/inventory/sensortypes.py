"""Which Thing+ sensor types carry numbers, and whether a value suits its sensor's type.

Why the daemon judges this itself: Thing+ takes a series value only if it is "proper to the sensor
type", numbers sent as strings (the vendor document); a text on a numeric type is refused with a 400
``INVALID_INPUT`` (``shared/specs/README.md``). Sent anyway, such a value costs a refused batch and a
search for the point at fault, then sits in the dead letters. Known before it is sent, it is better
refused where it comes from: by ``gatewayd check`` for a simulation or constant that can only produce it,
and at run time as a failed read (the sensor reports ``err``), never as a point.

Which types are numeric: the ones that measure a quantity, the document's own (``temperature``,
``humidity``, ``conductivity``) and the other measured types of the Open API device model. Every other
type (``string``, ``onoff``, ``location``, and any type the platform adds) is not judged here: a value
the daemon cannot judge is sent, and the cloud's answer decides (a refusal costs that point alone).
This list is the daemon's own, written from the documents; the emulator keeps its own.
"""

from __future__ import annotations

import math
from typing import Any

from gatewayd.inventory.sources import ChoicePattern, ConstantPattern, StepPattern

#: Sensor types whose values are numbers (sent as strings such as ``"36.5"``).
NUMERIC_TYPES = frozenset(
    {
        "temperature",
        "humidity",
        "conductivity",
        "number",
        "percent",
        "voltage",
        "current",
        "power",
        "pressure",
        "co2",
        "co",
        "light",
        "noise",
        "dust",
        "battery",
        "count",
        "weight",
    }
)


def numeric_type(sensor_type: str) -> bool:
    """True when a sensor of this type can send only numbers."""
    return sensor_type in NUMERIC_TYPES


def is_number_text(text: str) -> bool:
    """``text`` reads as a finite decimal number, as the platform (JavaScript's ``Number``) reads one.

    ``float`` first (a number is the common case and it is the cheapest test), then what it takes that
    a JavaScript server would not: ``nan``/``inf``, digit separators ``1_000``, non-ASCII digits.
    """
    try:
        number = float(text)
    except ValueError:
        return False
    return math.isfinite(number) and text.isascii() and "_" not in text


def value_problem(sensor_type: str, value: Any) -> str | None:
    """Why ``value`` (as a source or simulation gives it) cannot be sent for a sensor of ``sensor_type``;
    None when it can, or when the type is not one this module judges. Booleans go as ``"1"``/``"0"``."""
    if sensor_type not in NUMERIC_TYPES or isinstance(value, (bool, int, float)):
        return None
    if isinstance(value, str):
        if is_number_text(value):
            return None
        return f"a {sensor_type} sensor sends numbers, and {value!r} is not one (Thing+ would refuse it)"
    kind = "an object" if isinstance(value, dict) else type(value).__name__
    return f"a {sensor_type} sensor sends numbers, not {kind} (Thing+ would refuse it)"


def simulated_values(pattern: Any) -> list[tuple[tuple[str | int, ...], Any]]:
    """The values a simulation pattern can only ever produce, each with its path under ``simulate``
    (a constant's ``value``, each of a step's or choice's ``values``); none for computed patterns."""
    if isinstance(pattern, ConstantPattern):
        return [(("value",), pattern.value)]
    if isinstance(pattern, (StepPattern, ChoicePattern)):
        return [(("values", i), value) for i, value in enumerate(pattern.values)]
    return []
