"""What the emulated Thing+ writes on the wire: the answer envelope and its refusals.

Successes are ``{statusCode, message, data}``; refusals ``{statusCode, message, errors: [{code,
message}]}``, except the two the real platform answers outside the envelope: a bad or expired bearer
token (401) and the OAuth2 token endpoint's own errors.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
}


class Reject(Exception):
    """A refusal in the envelope: ``{statusCode, message, errors: [{code, message}]}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> web.Response:
        return web.json_response(
            {
                "statusCode": self.status,
                "message": REASONS.get(self.status, "Error"),
                "errors": [{"code": self.code, "message": self.message}],
            },
            status=self.status,
        )

    def log_fields(self) -> dict[str, Any]:
        """What a log line about this refusal carries."""
        return {"status": self.status, "code": self.code, "reason": self.message}


class Denied(Reject):
    """A 401 for the bearer token; the real platform answers these outside the envelope."""

    def __init__(self, expired: bool, message: str) -> None:
        super().__init__(401, "TOKEN_EXPIRED" if expired else "ACCESS_DENIED", message)
        self.expired = expired

    def response(self) -> web.Response:
        if self.expired:
            return web.json_response({"name": "TokenExpiredError", "message": "jwt expired"}, status=401)
        return web.Response(status=401, text="Access denied")


class OAuthError(Reject):
    """A token-endpoint refusal, OAuth2 style: ``{error, error_description}``."""

    def response(self) -> web.Response:
        return web.json_response({"error": self.code, "error_description": self.message}, status=self.status)


def schema(message: str) -> Reject:
    """400 SCHEMA_VALIDATE: a wrong type, a missing or unknown key, a malformed reqId."""
    return Reject(400, "SCHEMA_VALIDATE", message)


def invalid(message: str) -> Reject:
    """400 INVALID_INPUT: well formed but wrong (a type not in the model, a stale point, ...)."""
    return Reject(400, "INVALID_INPUT", message)


def not_found(message: str) -> Reject:
    return Reject(404, "NOT_FOUND", message)


def conflict(message: str) -> Reject:
    return Reject(409, "CONFLICT", message)


#: ``json.dumps`` without its per-call argument checks and cycle check (answers are trees): the same text.
_dumps = json.JSONEncoder(check_circular=False).encode


def ok(data: Any, status: int = 200) -> web.Response:
    """The envelope ``{statusCode, message, data}``, as ``json_response`` would write it.

    Only ``data`` is encoded per call: the head of the envelope is the same for every answer of a status.
    """
    text = f'{{"statusCode": {status}, "message": "{REASONS[status]}", "data": {_dumps(data)}}}'
    return web.Response(text=text, status=status, content_type="application/json")


async def read_json(request: web.Request) -> Any:
    """The request body as JSON; anything else is 400 SCHEMA_VALIDATE."""
    raw = await request.read()
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise schema("body is not valid JSON") from None
