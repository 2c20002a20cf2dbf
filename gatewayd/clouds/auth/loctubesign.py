"""loctube (a JetLinks-based tracker platform) request signing and answer verification, pure.

Why pure: the document's vectors pin it byte for byte, and a signer that reads no clock and touches no
socket can be checked against them directly. Signing is a plain digest (md5 or sha256), not an HMAC:

    GET/DELETE: digest(sorted ``k=v`` joined by ``&`` (repeated keys' values joined by ``,``) + ts + key)
    POST/PUT:   digest(the body bytes exactly as sent + ts + key)
    answers:    digest(body + X-Timestamp + key), compared with X-Sign ignoring case
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Union
from urllib.parse import unquote_plus

ALGORITHMS = ("md5", "sha256")

Query = Union[Sequence[tuple[str, str]], Mapping[str, Union[str, Sequence[str]]]]


def canonical_query(query: Query) -> str:
    """The string the document's Java signs for a GET/DELETE query.

    ``query`` is given as it goes on the wire (URL-encoded); keys and values are URL-decoded first, as
    the server sees them. Keys sorted as Java's ``TreeMap`` does, values of a repeated key joined by ``,``
    in the order given.
    """
    grouped: dict[str, list[str]] = {}
    items: Sequence[tuple[str, str | Sequence[str]]] = (
        list(query.items()) if isinstance(query, Mapping) else list(query)
    )
    for key, value in items:
        values = [value] if isinstance(value, str) else list(value)
        grouped.setdefault(unquote_plus(key), []).extend(unquote_plus(v) for v in values)
    # Java's String.compareTo orders by UTF-16 code unit; big-endian UTF-16 bytes sort the same way.
    keys = sorted(grouped, key=lambda k: k.encode("utf-16-be"))
    return "&".join(f"{k}={','.join(grouped[k])}" for k in keys)


def _digest(parts: Sequence[bytes], algorithm: str) -> str:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown signature algorithm {algorithm!r}: expected one of {ALGORITHMS}")
    h = hashlib.new(algorithm)
    for part in parts:
        h.update(part)
    return h.hexdigest()


def sign_query(query: Query, timestamp: str, secure_key: str, algorithm: str) -> str:
    """X-Sign of a GET/DELETE request: digest(canonical query + timestamp + secure key), lowercase hex."""
    return _digest(
        [canonical_query(query).encode("utf-8"), timestamp.encode("utf-8"), secure_key.encode("utf-8")],
        algorithm,
    )


def sign_body(body: bytes, timestamp: str, secure_key: str, algorithm: str) -> str:
    """X-Sign of a POST/PUT request: digest(the exact body bytes sent + timestamp + secure key)."""
    return _digest([body, timestamp.encode("utf-8"), secure_key.encode("utf-8")], algorithm)


def verify_response(body: bytes, timestamp: str, sign: str, secure_key: str, algorithm: str) -> bool:
    """Whether an answer's X-Sign covers its exact body bytes and X-Timestamp; case is ignored."""
    return sign_body(body, timestamp, secure_key, algorithm) == sign.strip().lower()


def split_query(query: str) -> list[tuple[str, str]]:
    """An encoded query string as (key, value) pairs, still encoded: what :func:`sign_query` expects."""
    pairs = []
    for part in query.split("&"):
        if part:
            key, _, value = part.partition("=")
            pairs.append((key, value))
    return pairs
