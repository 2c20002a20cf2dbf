"""A string that never shows itself: repr, str and serialisation all give ``'***'``.

Why a type and not discipline: a password ends up in a log line through a ``repr`` of some config object
sooner or later. With this type that line says ``***``; code that truly needs the value calls
:meth:`Secret.reveal`, which is easy to grep for.
"""

from __future__ import annotations

from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

MASK = "***"

#: Every secret value this process knows, so the log redactor can scrub it from any text (an exception
#: message quoting a URL with a token, say). Values shorter than 4 characters are not scrubbed.
_KNOWN: set[str] = set()


def remember(value: str) -> str:
    """Mark ``value`` (a token obtained at run time, say) as secret for log redaction; returns it."""
    if value and len(value) >= 4:
        _KNOWN.add(value)
    return value


def known_values() -> frozenset[str]:
    return frozenset(_KNOWN)


class Secret:
    """An opaque secret value. Compare with ``==``; read with :meth:`reveal`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = remember(value)

    def reveal(self) -> str:
        """The secret itself: only for the bytes that go to the cloud or a 0600 file."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("Secret values are not picklable")

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> Any:
        def validate(value: Any) -> Secret:
            if isinstance(value, Secret):
                return value
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str):
                raise ValueError("must be a string")
            if not value:
                raise ValueError("must not be empty")
            return cls(value)

        return core_schema.no_info_plain_validator_function(
            validate,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda v: MASK),
        )
