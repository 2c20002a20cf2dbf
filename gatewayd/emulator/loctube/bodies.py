"""The loctube emulator's refusals, with bodies shaped as the real JetLinks server writes them.

Two shapes, because two layers of the real server answer:

* The open-API signature filter runs before any controller, so its errors reach Spring Boot's error
  handler: ``{"timestamp", "path", "status", "error", "message", "requestId"}`` (JetLinks writes
  dates as epoch milliseconds and sets ``server.error.include-message: always``). A 415 for a token
  request in the wrong encoding is answered by the same handler.
* Controllers' errors go through hsweb's error advice: a ``ResponseMessage``
  ``{"message", "result"?, "status", "code", "timestamp"}`` (``result`` left out when null). OAuth2
  failures are hsweb ``BusinessException``\\ s: HTTP 500, the body's ``status`` the OAuth2 error's own
  number (1003, 4013, ...) and ``code`` its name.

The messages are the real server's own words (JetLinks Pro 1.9 / hsweb 4.0.x), Chinese included.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

_PHRASES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
}

#: hsweb's TokenState.expired: what a request without a valid token is told, whatever the cause.
NOT_LOGGED_IN = "用户未登录"


class Rejected(Exception):
    """A refusal: the HTTP status, the reason counted in the snapshot, and how to write its body."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        *,
        code: str | None = None,
        body_status: int | None = None,
        result: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        #: None: a Spring error-handler body; otherwise an hsweb ResponseMessage with this ``code``.
        self.code = code
        self.body_status = status if body_status is None else body_status
        self.result = result

    def body(self, path: str, now_ms: int) -> dict[str, Any]:
        if self.code is None:
            return {
                "timestamp": now_ms,
                "path": path,
                "status": self.status,
                "error": _PHRASES.get(self.status, "Error"),
                "message": self.message,
                "requestId": secrets.token_hex(4),
            }
        body: dict[str, Any] = {"message": self.message}
        if self.result is not None:
            body["result"] = self.result
        body.update(status=self.body_status, code=self.code, timestamp=now_ms)
        return body


def filter_error(status: int, reason: str, message: str) -> Rejected:
    """An error of the signature filter (Spring body)."""
    return Rejected(status, reason, message)


def unsupported_media_type(content_type: str) -> Rejected:
    """415 for a body the endpoint does not consume, as Spring WebFlux answers it."""
    shown = content_type or "application/octet-stream"
    return Rejected(415, "unsupported_media_type", f"Content type '{shown}' not supported")


def unauthorized(reason: str) -> Rejected:
    """401 as hsweb answers a missing, unknown or expired token: one message for all three."""
    return Rejected(
        401,
        reason,
        NOT_LOGGED_IN,
        code="unauthorized",
        result={"text": NOT_LOGGED_IN, "value": "expired"},
    )


def illegal_argument(message: str) -> Rejected:
    """400 for a body or parameter the controller cannot read."""
    return Rejected(400, "bad_request", message, code="illegal_argument")


def not_found(message: str) -> Rejected:
    return Rejected(404, "not_found", message, code="not_found")


def json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_object(raw: bytes, *, required: bool) -> dict[str, Any]:
    """The request body as a JSON object; an empty body is ``{}`` unless ``required`` (then 400)."""
    if not raw.strip():
        if required:
            raise illegal_argument("Request body is missing")
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise illegal_argument("body is not JSON") from None
    if not isinstance(body, dict):
        raise illegal_argument("body must be a JSON object")
    return body
