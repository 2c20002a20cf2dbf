"""Exactly one of several keys: a sensor's source, an actuator's target.

Why a wrap validator: a missing or doubled key is reported together with the entry's other problems,
not instead of them, so one ``gatewayd check`` lists everything wrong with the entry at once.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import ModelWrapValidatorHandler, ValidationError

M = TypeVar("M")


def one_of_problem(data: dict[str, Any], keys: tuple[str, ...], what: str) -> str | None:
    """What is wrong when ``data`` gives none or several of ``keys`` (``what``: "source", "target")."""
    present = [k for k in keys if data.get(k) is not None]
    if not present:
        return f"has no {what}: give exactly one of {', '.join(keys)}"
    if len(present) > 1:
        return f"has several {what}s ({', '.join(present)}): give exactly one"
    return None


def validate_one_of(data: Any, handler: ModelWrapValidatorHandler[M], keys: tuple[str, ...], what: str) -> M:
    """Validate ``data`` with ``handler``, adding the none-or-several problem to its other errors."""
    problem = one_of_problem(data, keys, what) if isinstance(data, dict) else None
    try:
        model = handler(data)
    except ValidationError as exc:
        if problem is None:
            raise
        errors: list[Any] = [*exc.errors(), _value_error(problem, data)]
        raise ValidationError.from_exception_data(exc.title, errors) from None
    if problem is not None:
        raise ValueError(problem)
    return model


def present_key(model: Any, keys: tuple[str, ...]) -> str:
    """The one of ``keys`` a validated model gives."""
    return next(k for k in keys if getattr(model, k) is not None)


def _value_error(message: str, data: Any) -> Any:
    return {"type": "value_error", "loc": (), "input": data, "ctx": {"error": ValueError(message)}}
