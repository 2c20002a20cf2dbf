"""What one cloud call is, and what an auth flow adds to it: plain values, no I/O.

Apart from the core and the auth flows so that both can use them without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple


class Request(NamedTuple):
    """One API call as its client describes it; the auth flow and the core make it a request on the wire.

    A named tuple: one is built per call, thousands a second on the upload path.
    """

    method: str
    path: str
    #: Name of the call in errors, logs and metrics (``series``, ``device_detail``, ...).
    operation: str
    #: The query string, already encoded: sent (and signed) exactly as given.
    query: str = ""
    #: Parameters a signing auth turns into the query it signs (RCMS); None for the others.
    params: Mapping[str, str | int] | None = None
    #: The body, serialised once: these bytes are signed and sent, on every attempt. Sent as JSON.
    body: bytes | None = None
    #: False: a 2xx answer is not parsed (heartbeats and series, which nobody reads the answer of).
    want_data: bool = True


class Grant(NamedTuple):
    """What an auth flow adds to one attempt of a request."""

    headers: Mapping[str, str]
    #: The query to send instead of the request's own (a signer that canonicalises it); None: unchanged.
    query: str | None = None
    #: The credential used (a token), handed back to :meth:`Auth.renew` when the cloud refuses it.
    credential: Any = None
