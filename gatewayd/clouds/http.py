"""The one boundary between aiohttp and gatewayd, plus the retry policy all three clients share.

Why here: aiohttp raises a dozen exception types; callers should only ever see ``gatewayd.errors``.
Every attempt goes through :meth:`HttpTransport.send`, which maps aiohttp's exceptions (``raise ... from``)
and sends exactly the bytes and query string it is given, so a signature covers what goes on the wire.
The backoff maths is pure (:meth:`RetryPolicy.delay`) and takes its randomness as an argument.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import aiohttp
import structlog
from yarl import URL

from gatewayd.clouds.deferral import DEFERRING_STATUSES, Deferral
from gatewayd.clouds.retry import IN_CALL_RETRY_AFTER_S, RetryPolicy, parse_retry_after, with_retries
from gatewayd.errors import (
    AuthError,
    CloudError,
    PermanentError,
    RateLimitedError,
    TransientError,
)
from gatewayd.httpbody import read_capped
from gatewayd.regularfile import load_ca_bundle

__all__ = [
    "HttpTransport",
    "RequestObserver",
    "Response",
    "RetryPolicy",
    "error_for_status",
    "parse_retry_after",
    "with_retries",
]

if TYPE_CHECKING:
    from gatewayd.inventory.config import CloudConfig

log = structlog.get_logger(__name__)

T = TypeVar("T")

#: Seen by the clouds as our User-Agent.
USER_AGENT = "gatewayd"
#: Largest cloud answer read (every answer gatewayd expects is a few KB; an RCMS page maybe 1 MB).
MAX_ANSWER_BYTES = 8 * 1024 * 1024
#: Sent with every request (aiohttp copies what it is given: this dict is never changed).
_BASE_HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json"}


class RequestObserver(Protocol):
    """Told of every attempt a transport makes (metrics): which cloud and operation, the HTTP status
    (None when no answer came) and the seconds it took. Called on the event loop: keep it quick."""

    def on_response(self, cloud: str, operation: str, status: int | None, seconds: float) -> None: ...


@dataclass(frozen=True)
class Response:
    """A whole HTTP response, read: status, headers and the exact body bytes (for signature checks)."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON, or None when it is empty or not JSON (clouds sometimes answer plain text)."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass
class HttpTransport:
    """Sends single attempts to one cloud's base URL over the daemon's shared ``ClientSession``."""

    session: aiohttp.ClientSession
    base_url: str
    cloud: str
    timeout: float = 15.0
    ca_file: str | None = None
    #: Largest answer body read; past it the call fails (see :meth:`_too_large`).
    max_body: int = MAX_ANSWER_BYTES
    #: A Retry-After up to this is waited in the call (the client's ``RetryPolicy.max_retry_after``);
    #: a longer one defers this cloud's next requests (:attr:`deferral`).
    retry_after_in_call: float = IN_CALL_RETRY_AFTER_S
    #: Wall clock, for HTTP-date Retry-After values and the deferral's log lines.
    clock: Callable[[], float] = time.time
    #: Told of every attempt (the daemon's request metrics); None: nobody listens.
    observer: RequestObserver | None = None
    deferral: Deferral = field(init=False, repr=False)
    _ssl: ssl.SSLContext | bool = field(init=False, repr=False, default=True)
    _timeout: aiohttp.ClientTimeout = field(init=False, repr=False, default=aiohttp.ClientTimeout())

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=self.timeout)
        self.deferral = Deferral(self.cloud, in_call_s=self.retry_after_in_call, clock=self.clock)
        if self.ca_file:
            try:
                self._ssl = load_ca_bundle(self.ca_file)
            except ValueError as exc:
                raise PermanentError(
                    f"CA bundle {self.ca_file} {exc}", cloud=self.cloud, operation="tls"
                ) from exc

    @classmethod
    def for_cloud(
        cls,
        session: aiohttp.ClientSession,
        config: CloudConfig,
        cloud: str,
        policy: RetryPolicy,
        clock: Callable[[], float] = time.time,
        observer: RequestObserver | None = None,
    ) -> HttpTransport:
        """The transport of one client: its section's endpoint, timeout and CA, its policy's
        Retry-After bound, its clock, and who is told of each attempt."""
        return cls(
            session,
            config.endpoint,
            cloud=cloud,
            timeout=config.timeout,
            ca_file=config.ca_file,
            retry_after_in_call=policy.max_retry_after,
            clock=clock,
            observer=observer,
        )

    def _too_large(self, operation: str, status: int) -> Callable[[str], CloudError]:
        """The error for an answer over :attr:`max_body`: transient, because its size says nothing
        about our request (a proxy, a captive portal, a server gone wrong answers so) and a permanent
        error would dead-letter points the cloud may well take later."""

        def refuse(why: str) -> CloudError:
            return TransientError(why, cloud=self.cloud, operation=operation, status=status)

        return refuse

    def url(self, path: str, query: str = "") -> URL:
        """The URL for ``path`` with ``query`` sent exactly as given (already encoded by the caller)."""
        raw = self.base_url + path
        if query:
            raw += "?" + query
        return URL(raw, encoded=True)

    async def send(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        query: str = "",
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> Response:
        """One attempt. Returns any HTTP answer; raises TransientError when no answer came, and
        DeferredError, sending nothing, while the cloud's Retry-After runs."""
        self.deferral.check(operation)
        all_headers = {**_BASE_HEADERS, **headers} if headers else _BASE_HEADERS
        started = time.monotonic()
        status: int | None = None
        try:
            async with self.session.request(
                method,
                self.url(path, query),
                headers=all_headers,
                data=body,
                timeout=self._timeout,
                ssl=self._ssl,
                allow_redirects=False,
            ) as resp:
                status = resp.status
                data = await read_capped(resp, self.max_body, self._too_large(operation, resp.status))
                result = Response(status=resp.status, headers=resp.headers, body=data)
        except asyncio.TimeoutError as exc:
            raise TransientError(
                f"no answer within {self.timeout:g}s", cloud=self.cloud, operation=operation
            ) from exc
        except aiohttp.ClientSSLError as exc:
            raise PermanentError(f"TLS failure: {exc}", cloud=self.cloud, operation=operation) from exc
        except aiohttp.InvalidURL as exc:
            raise PermanentError(f"invalid URL: {exc}", cloud=self.cloud, operation=operation) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise TransientError(
                f"{type(exc).__name__}: {exc}", cloud=self.cloud, operation=operation
            ) from exc
        finally:
            if self.observer is not None:
                self.observer.on_response(self.cloud, operation, status, time.monotonic() - started)
        if result.status in DEFERRING_STATUSES:
            self.deferral.observe(result.status, result.headers, operation)
        return result


def error_for_status(
    status: int,
    message: str,
    *,
    cloud: str,
    operation: str,
    code: str | int | None = None,
    retry_after: float | None = None,
) -> CloudError:
    """The error class an HTTP failure status belongs to (the caller raises it)."""
    kw: dict[str, Any] = {"cloud": cloud, "operation": operation, "status": status, "code": code}
    if status == 429:
        return RateLimitedError(message, retry_after=retry_after, **kw)
    if status in (401, 403):
        return AuthError(message, **kw)
    if status in (408, 425) or status >= 500:
        return TransientError(message, retry_after=retry_after if status == 503 else None, **kw)
    return PermanentError(message, **kw)
