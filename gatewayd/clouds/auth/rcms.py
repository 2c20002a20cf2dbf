"""RCMS (Robustel router management) request signing: a pure signer, and the auth flow around it.

Why the signer is separate and pure: it is the part a vendor document pins down byte for byte, so it is
tested against hand-written strings with no clock, socket or randomness in the way. The flow signs each
attempt anew (a fresh timestamp per retry) and sends the query exactly as signed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gatewayd.clouds.auth import Signing
from gatewayd.clouds.request import Grant, Request
from gatewayd.secret import Secret

API_VERSION = "1.0"
SIGNATURE_VERSION = "1.0"

#: The parameters every request carries, in the query and (with ``signature``) as headers.
PUBLIC_PARAMS = ("apiVersion", "clientId", "signatureVersion", "timestamp", "uniqueCode")


@dataclass(frozen=True)
class SignedRequest:
    """What a signed request carries: the query string to send and the headers to add."""

    #: The canonical string, sent as the URL query exactly as signed (unencoded, as the document does).
    query: str
    #: The five public parameters plus ``signature``.
    headers: dict[str, str]
    signature: str


def canonical_query(query: Mapping[str, str | int], *, client_id: str, timestamp: str) -> str:
    """The five public parameters plus ``query``, sorted by key, ``k=v`` joined by ``&``, unencoded.

    A query key that repeats a public parameter is refused: the document would let it override the
    header value silently, and the server would then see two different timestamps.
    """
    clash = sorted(set(query) & set(PUBLIC_PARAMS))
    if clash:
        raise ValueError(f"query must not set the public parameters {clash}")
    params: dict[str, str | int] = {
        "apiVersion": API_VERSION,
        "clientId": client_id,
        "signatureVersion": SIGNATURE_VERSION,
        "timestamp": timestamp,
        "uniqueCode": client_id,
        **query,
    }
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()))


def sign_request(
    method: str,
    path: str,
    query: Mapping[str, str | int],
    *,
    client_id: str,
    client_secret: str,
    timestamp: str,
) -> SignedRequest:
    """Sign one request as the RCMS document does; the body of a PUT is not part of the signature.

    string to sign = METHOD + path + canonical query + client secret;
    signature = lowercase hex HMAC-SHA256 keyed with client id + uniqueCode (= client id twice).
    """
    canonical = canonical_query(query, client_id=client_id, timestamp=timestamp)
    to_sign = method.upper() + path + canonical + client_secret
    key = (client_id + client_id).encode("utf-8")
    signature = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest().lower()
    headers = {
        "apiVersion": API_VERSION,
        "signatureVersion": SIGNATURE_VERSION,
        "uniqueCode": client_id,
        "clientId": client_id,
        "timestamp": timestamp,
        "signature": signature,
    }
    return SignedRequest(query=canonical, headers=headers, signature=signature)


class RcmsSigning(Signing):
    """Each attempt signed with a fresh millisecond timestamp; its query replaced by the signed one."""

    def __init__(self, client_id: str, client_secret: Secret, clock: Callable[[], float]) -> None:
        self._client_id = client_id
        self._secret = client_secret
        self._clock = clock

    async def authorize(self, request: Request) -> Grant:
        signed = sign_request(
            request.method,
            request.path,
            request.params or {},
            client_id=self._client_id,
            client_secret=self._secret.reveal(),
            timestamp=str(int(self._clock() * 1000)),
        )
        return Grant(signed.headers, query=signed.query)
