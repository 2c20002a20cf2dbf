"""A hash of a config value's whole content: how a reload tells a changed sensor from an unchanged one."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from gatewayd.secret import Secret


def fingerprint(value: Any) -> int:
    """A hash of a config value's whole content, secrets included (their repr and JSON say ``***``).

    Equal configs have equal fingerprints; a reload compares a sensor's new config with the
    fingerprint of the one it runs with, so the daemon need not keep every sensor's config model.
    """
    if isinstance(value, BaseModel):
        # Plain values go into the hash as they are (one call per model, not per field, and no
        # isinstance on pydantic's ABC metaclass): 1,000 sensors take a few milliseconds at start-up.
        return hash(
            (type(value), *[v if type(v) in _PLAIN else fingerprint(v) for v in value.__dict__.values()])
        )
    if isinstance(value, (list, tuple)):
        return hash((type(value), *[fingerprint(v) for v in value]))
    if isinstance(value, dict):
        return hash(frozenset((k, fingerprint(v)) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        return hash(frozenset(fingerprint(v) for v in value))
    return hash(value)


#: Leaf types hashed as they are (a Secret hashes its value).
_PLAIN = frozenset({str, int, float, bool, type(None), Secret})
