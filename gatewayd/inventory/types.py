"""Scalar types shared by every inventory model: durations, URLs, names, and the strict base model."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, model_validator

from gatewayd.secret import Secret

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self is 3.11+

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Seconds from a number (seconds) or a string like ``500ms``, ``10s``, ``5m``, ``1h``, ``2d``."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 10, '500ms', '10s', '5m' or '1h', not a boolean")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(
                f"cannot parse duration {value!r}: use a number of seconds or '500ms', '10s', '5m', '1h', '1d'"
            )
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError("must be a duration such as 10, '500ms', '10s', '5m' or '1h'")
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise ValueError("must be a finite duration")
    if seconds <= 0:
        raise ValueError(f"must be greater than zero (got {value!r})")
    return seconds


#: Seconds, written as a number or with a unit; always > 0.
Duration = Annotated[float, BeforeValidator(parse_duration)]


def at_most(limit_s: float, limit: str, why: str) -> Callable[[float], float]:
    """A validator for a Duration that must not exceed ``limit_s`` (written ``limit``, e.g. ``4d``);
    ``why`` ends the message."""

    def check(value: float) -> float:
        if value > limit_s:
            raise ValueError(f"must be at most {limit} (got {value:g}s): {why}")
        return value

    return check


def _check_url(value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL with a host (got {value!r})")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"has an invalid port: {value!r}") from exc
    if parts.query or parts.fragment:
        raise ValueError(f"must not carry a query or fragment (got {value!r})")
    return value.rstrip("/")


Url = Annotated[str, AfterValidator(_check_url)]


def _check_listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"must be HOST:PORT with a port from 1 to 65535 (got {value!r})")
    return value


Listen = Annotated[str, AfterValidator(_check_listen)]


def _check_nonblank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


Name = Annotated[str, AfterValidator(_check_nonblank)]


def check_md5(value: Secret) -> Secret:
    if not re.fullmatch(r"[0-9a-fA-F]{32}", value.reveal()):
        raise ValueError("must be the 32 hex digits of an md5 digest")
    return Secret(value.reveal().lower())


class Strict(BaseModel):
    """Base of every inventory model: unknown keys are errors, values are not silently coerced to str."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, defer_build=True)

    @model_validator(mode="after")
    def _share_fields_set(self) -> Self:
        """Point the model's set of explicitly given field names at one shared set per distinct set.

        Why: pydantic keeps that set per instance (200-700 bytes); a 10,000-sensor inventory has two
        models per sensor with the same few names: megabytes of identical sets at the daemon's peak. Sharing
        is safe because these models are frozen: pydantic only ever adds to the set on assignment (refused
        here) and copies it before :meth:`model_copy` updates it.
        """
        if not type(self).model_config.get("frozen"):  # a mutable model adds to its set: keep its own
            return self
        names = self.__pydantic_fields_set__
        shared = _SHARED_FIELDS_SETS.setdefault(frozenset(names), names)
        if shared is not names:
            object.__setattr__(self, "__pydantic_fields_set__", shared)
        return self


#: One set per distinct combination of explicitly given field names (see Strict._share_fields_set).
_SHARED_FIELDS_SETS: dict[frozenset[str], set[str]] = {}
