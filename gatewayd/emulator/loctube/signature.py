"""The open-API signature filter of the emulated loctube server, and the signing of its answers.

Written from the vendor's document and what the real JetLinks filter does where they differ:

* A request is a signed request only if it carries a non-blank ``X-Client-Id``. Without one the filter
  lets it through and token authentication decides (a request with no token gets 401).
* Checks in the real filter's order: ``X-Sign`` missing -> 400, ``X-Timestamp`` missing -> 400, the
  timestamp more than 5 minutes old -> 400, the client unknown -> 404, the signature wrong -> 400.
* The timestamp check is one-sided: only "older than 5 minutes" is refused. A timestamp in the
  future, or one that is not a number, passes (it is still part of what is signed).
* GET/DELETE sign the URL-decoded query: keys sorted, ``k=v`` joined by ``&``. For a repeated key the
  document's Java joins the values with ``,`` while the real filter verifies the first value only;
  both are accepted. A form-encoded body (any other method) is signed the same way over its fields.
  Any other POST/PUT signs the raw body bytes as received.
* The digest is plain md5 or sha256 of what is signed + timestamp + secure key, hex, compared
  ignoring case.

This module shares no code with ``gatewayd.clouds``: a wrong client signer must fail here.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl

from gatewayd.emulator.loctube.bodies import filter_error

#: A signed request's timestamp may be at most this old, in milliseconds (never checked the other way).
MAX_AGE_MS = 5 * 60 * 1000
FORM = "application/x-www-form-urlencoded"

_JAVA_LONG = re.compile(r"[+-]?[0-9]+")


def timestamp_too_old(timestamp: str, now_ms: int) -> bool:
    """The real filter's test: refused only when it parses as a Java long and is 5 minutes old or more."""
    if not timestamp.isascii() or not _JAVA_LONG.fullmatch(timestamp):
        return False
    value = int(timestamp)
    if not -(2**63) <= value < 2**63:
        return False  # Long.parseLong fails, and a timestamp that does not parse passes
    return now_ms - value >= MAX_AGE_MS


def canonical_variants(pairs: Iterable[tuple[str, str]]) -> set[bytes]:
    """What a client may have signed for these decoded parameters: repeated keys joined by ``,``
    (the document) or only their first value (the real server)."""
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    keys = sorted(grouped)
    joined = "&".join(f"{k}={','.join(grouped[k])}" for k in keys)
    first = "&".join(f"{k}={grouped[k][0]}" for k in keys)
    return {joined.encode("utf-8"), first.encode("utf-8")}


def form_pairs(raw: bytes) -> list[tuple[str, str]]:
    """The fields of a form-encoded body, decoded, in order."""
    return parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True)


class SignatureFilter:
    """Verifies signed requests of the one configured client, and signs the answers to them."""

    def __init__(self, client_id: str, secure_key: str, algorithm: str) -> None:
        self.client_id = client_id
        self._key = secure_key.encode("utf-8")
        self.algorithm = algorithm

    def digest(self, data: bytes) -> str:
        """The configured digest (md5 or sha256) of ``data``, lowercase hex."""
        return hashlib.new(self.algorithm, data).hexdigest()

    def sign(self, signed: bytes, timestamp: str) -> str:
        return self.digest(signed + timestamp.encode("utf-8") + self._key)

    def verify(
        self,
        *,
        method: str,
        content_type: str,
        headers: Mapping[str, str],
        query: Iterable[tuple[str, str]],
        raw: bytes,
        now_ms: int,
    ) -> bool:
        """True for a valid signed request, False for one that is not signed; Rejected otherwise."""
        client_id: str | None = headers.get("X-Client-Id")
        if client_id is None or not client_id.strip():
            return False
        sign = headers.get("X-Sign", "")
        timestamp = headers.get("X-Timestamp", "")
        if not sign:
            raise filter_error(400, "missing_sign", "请求头X-Sign不能为空")
        if not timestamp:
            raise filter_error(400, "missing_timestamp", "请求头X-Timestamp不能为空")
        if timestamp_too_old(timestamp, now_ms):
            raise filter_error(400, "stale_timestamp", "请求头X-Timestamp错误")
        if not hmac.compare_digest(client_id.encode("utf-8"), self.client_id.encode("utf-8")):
            raise filter_error(404, "unknown_client", "Client不存在")
        if method in ("GET", "DELETE"):
            candidates = canonical_variants(query)
        elif content_type == FORM:
            candidates = canonical_variants(form_pairs(raw))
        else:
            candidates = {raw}
        given = sign.lower().encode("utf-8")
        if not any(hmac.compare_digest(self.sign(c, timestamp).encode("ascii"), given) for c in candidates):
            raise filter_error(400, "bad_sign", "签名错误")
        return True
