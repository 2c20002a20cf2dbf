"""Requests per cloud and their results, and the last refused ones with their error codes, for the console.

Why a middleware of its own, placed outermost (before the faults middleware): what the console shows is
what a client got, injected outages and failures included, so it must see every answer after the faults
had their say. It counts by the cloud a path belongs to (:func:`gatewayd.emulator.faults.cloud_of`: the
same prefixes the faults use); the emulator's own paths, the pages and their assets are not counted.

A refusal is an answer outside 2xx, or an RCMS answer whose envelope carries a code other than 0 (RCMS
answers its errors with HTTP 200). Its error code and message come from the small JSON body each cloud
writes (Thing+'s ``errors: [{code, message}]``, an OAuth2 ``{error, error_description}``, loctube's
``{code, message}``, RCMS's ``{code, msg}``), or the first line of a plain-text one (a fault's 503).
Only refusals are parsed, so the accepting path costs two counter bumps.
"""

from __future__ import annotations

import json
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from aiohttp import web

from gatewayd.emulator.faults import CLOUDS, cloud_of

#: How many refused requests the console keeps (the newest).
REFUSALS_KEPT = 100
#: A refusal's message is cut to this many characters (the console shows a line, not a document).
MESSAGE_CHARS = 200
#: An RCMS success starts so (``json_response`` writes it); an error envelope is small, a success may not be.
_RCMS_OK = b'{"code": 0,'
_RCMS_ERROR_MAX_BYTES = 4096

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Refusal(NamedTuple):
    """One refused request: when (unix s), to which cloud, what was asked and what came back."""

    t: float
    cloud: str
    method: str
    path: str
    status: int
    code: str | None
    message: str | None

    def view(self) -> dict[str, Any]:
        return self._asdict()


class CloudRequests:
    """The requests one cloud answered: how many, how many refused, and how many of each HTTP status."""

    def __init__(self) -> None:
        self.total = 0
        self.refused = 0
        self.by_status: Counter[int] = Counter()

    def view(self) -> dict[str, Any]:
        return {
            "requests": self.total,
            "refused": self.refused,
            "by_status": {str(status): n for status, n in sorted(self.by_status.items())},
        }


class RequestLog:
    """Counts per cloud and the newest refusals; :attr:`middleware` feeds it. ``clock``: unix seconds."""

    def __init__(self, *, clock: Callable[[], float] = time.time, kept: int = REFUSALS_KEPT) -> None:
        self.clock = clock
        self.clouds: dict[str, CloudRequests] = {cloud: CloudRequests() for cloud in CLOUDS}
        self.refusals: deque[Refusal] = deque(maxlen=kept)

    def record(self, cloud: str, method: str, path: str, status: int, body: bytes | None) -> None:
        """One answer of ``cloud``; ``body`` is read only when the answer may be a refusal."""
        counts = self.clouds[cloud]
        counts.total += 1
        counts.by_status[status] += 1
        if 200 <= status < 300:
            if cloud != "rcms" or body is None:
                return
            code, message = rcms_refusal(body)
            if code is None:
                return
        else:
            code, message = error_of(body)
        counts.refused += 1
        self.refusals.append(Refusal(self.clock(), cloud, method, path, status, code, message))

    @property
    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        """The aiohttp middleware counting every cloud's answers (put it first: outside the faults)."""

        @web.middleware
        async def requests_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            cloud = cloud_of(request.path)
            if cloud not in self.clouds:
                return await handler(request)
            assert cloud is not None
            try:
                response = await handler(request)
            except web.HTTPException as exc:  # raised by aiohttp itself: no route, wrong method
                self.record(cloud, request.method, request.path, exc.status, _text(exc))
                raise
            except Exception:
                self.record(cloud, request.method, request.path, 500, None)
                raise
            status = response.status
            body = _body(response) if cloud == "rcms" or not 200 <= status < 300 else None
            self.record(cloud, request.method, request.path, status, body)
            return response

        return requests_middleware

    def view(self) -> list[dict[str, Any]]:
        """The refusals kept, newest first."""
        return [refusal.view() for refusal in reversed(self.refusals)]


def _body(response: web.StreamResponse) -> bytes | None:
    body = response.body if isinstance(response, web.Response) else None
    return body if isinstance(body, bytes) else None


def _text(exc: web.HTTPException) -> bytes | None:
    return exc.text.encode("utf-8") if exc.text else None


def rcms_refusal(body: bytes) -> tuple[str | None, str | None]:
    """The code and message of an RCMS error envelope (HTTP 200, ``code`` not 0); (None, None) otherwise."""
    if body.startswith(_RCMS_OK) or len(body) > _RCMS_ERROR_MAX_BYTES:
        return None, None
    parsed = _json(body)
    if not isinstance(parsed, dict) or parsed.get("code") in (None, 0):
        return None, None
    return _short(parsed.get("code")), _short(parsed.get("msg"))


def error_of(body: bytes | None) -> tuple[str | None, str | None]:
    """The error code and message a refusal's body carries, whichever cloud wrote it (see the module)."""
    if not body:
        return None, None
    parsed = _json(body)
    if not isinstance(parsed, dict):
        line = body.decode("utf-8", "replace").strip().splitlines()
        return None, _short(line[0]) if line else None
    errors = parsed.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return _short(errors[0].get("code")), _short(errors[0].get("message"))
    if "error_description" in parsed:
        return _short(parsed.get("error")), _short(parsed.get("error_description"))
    if "code" in parsed:
        return _short(parsed["code"]), _short(parsed.get("message", parsed.get("msg")))
    if "name" in parsed:
        return _short(parsed["name"]), _short(parsed.get("message"))
    return _short(parsed.get("error")), _short(parsed.get("message"))


def _json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def _short(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "\u2026"
