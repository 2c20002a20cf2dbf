"""The pages' query parameters: a number that is not one is a 400 naming the parameter, read before a
stream starts.

Why a 400 and not the default: a stream that answered ``page=abc`` with page 0 hid the mistake of
whoever built the URL (a page's script, a test, someone with ``curl``), and a stream's answer cannot
say anything once it has started: the view is read and checked before the response is prepared. A
number past the end (a page of rows that went away meanwhile) is no mistake: the sections clamp it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import overload

from aiohttp import web

#: Digits only (no sign, no spaces, no ``_``, no other script's digits), at most 15 of them.
_NATURAL = re.compile(r"[0-9]{1,15}")


@overload
def int_param(query: Mapping[str, str], name: str, default: int, *, lowest: int = 0) -> int: ...


@overload
def int_param(
    query: Mapping[str, str], name: str, default: None = None, *, lowest: int = 0
) -> int | None: ...


def int_param(
    query: Mapping[str, str], name: str, default: int | None = None, *, lowest: int = 0
) -> int | None:
    """The whole number ``name`` of ``query`` (``default`` when absent or empty); ValueError, naming
    it, when it is not one or is below ``lowest``."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not _NATURAL.fullmatch(raw) or int(raw) < lowest:
        raise ValueError(f"query parameter {name} must be a whole number from {lowest} on, not {raw[:40]!r}")
    return int(raw)


def bad_request(error: ValueError) -> web.HTTPBadRequest:
    """The 400 to raise for ``error`` (a bad query parameter): its message as JSON ``{"error": ...}``."""
    return web.HTTPBadRequest(text=json.dumps({"error": str(error)}), content_type="application/json")
