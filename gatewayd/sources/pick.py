"""Picking a value out of text or a document, and scaling it: shared by the file, command, http and
bridge sources so each kind parses the same way.
"""

from __future__ import annotations

import math
import re
from typing import Any

from gatewayd.errors import SourceError

_MISSING = object()


def pick_path(document: Any, path: str | None) -> Any:
    """``data.items.0.temp`` into nested dicts and lists (a leading ``$.`` is allowed); None = the whole."""
    if path is None or path in ("", "$"):
        return document
    node = document
    walked: list[str] = []
    for part in path.removeprefix("$.").split("."):
        walked.append(part)
        if isinstance(node, dict):
            node = node.get(part, _MISSING)
        elif isinstance(node, list) and _is_index(part) and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            node = _MISSING
        if node is _MISSING:
            raise SourceError(f"no field {'.'.join(walked)!r} in the document")
    return node


def _is_index(part: str) -> bool:
    return part.lstrip("-").isdigit()


def pick_regex(text: str, pattern: str) -> str:
    """The first group of the first match (or the whole match when the pattern has no group)."""
    match = re.search(pattern, text)
    if match is None:
        raise SourceError(f"regex {pattern!r} does not match")
    return match.group(1) if match.groups() else match.group(0)


def pick_field(text: str, index: int) -> str:
    """The ``index``-th (0-based) whitespace-separated field."""
    fields = text.split()
    if index >= len(fields):
        raise SourceError(f"field {index} wanted, the text has {len(fields)}")
    return fields[index]


def to_number(value: Any) -> float | int:
    """A number from a JSON number or numeric text; booleans count as 1/0."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            raise SourceError(f"not a number: {text[:40]!r}") from None
    raise SourceError(f"not a number: {type(value).__name__}")


def scaled(value: float | int, scale: float, offset: float) -> float | int:
    """value x scale + offset, keeping integers integers when the maths allows."""
    if scale == 1 and offset == 0:
        return value
    result = value * scale + offset
    if (
        isinstance(result, float)
        and result.is_integer()
        and isinstance(value, int)
        and float(scale).is_integer()
    ):
        return int(result)
    return result


def number_or_text(raw: Any, scale: float, offset: float) -> float | int | str:
    """The picked ``raw`` as a scaled number; non-numeric text passes as is when there is no scale/offset.

    Shared by the file, command and http sources so a value means the same wherever it comes from.
    """
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            raise SourceError("the value is empty")
        try:
            number = to_number(text)
        except SourceError:
            if scale == 1 and offset == 0:
                return text  # a text sensor (a state, a version)
            raise SourceError(f"not a number: {text[:40]!r} (scale/offset need a number)") from None
    elif raw is None:
        raise SourceError("the value is null")
    elif isinstance(raw, (dict, list)):
        raise SourceError(f"the value is {'an object' if isinstance(raw, dict) else 'a list'}, not a number")
    else:
        number = to_number(raw)
    if isinstance(number, float) and not math.isfinite(number):
        raise SourceError(f"not a finite number: {number!r}")
    result = scaled(number, scale, offset)
    if isinstance(result, float) and not math.isfinite(result):
        raise SourceError(f"not a finite number after scale/offset: {result!r}")
    return result
