"""Token requests in JSON or as a form: the documents show JSON, some servers take only the form.

Why negotiate: Thing+'s document sends its token request as JSON while its OAuth2 page says form-encoded,
and stock JetLinks takes only the form (415 for JSON) while the loctube document shows JSON. So: send
the encoding that worked last (JSON at first), and when the answer says the body was not understood,
the other one; whichever works is the only one tried from then on: once a server has taken an encoding,
a 400 is about the request (an expired refresh token), not about its encoding.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Literal, TypeVar
from urllib.parse import urlencode

import structlog

from gatewayd.clouds.jsonbody import dumps
from gatewayd.errors import CloudError

log = structlog.get_logger(__name__)

T = TypeVar("T")

Encoding = Literal["json", "form"]
OTHER: dict[Encoding, Encoding] = {"json": "form", "form": "json"}
CONTENT_TYPE: dict[Encoding, str] = {
    "json": "application/json",
    "form": "application/x-www-form-urlencoded",
}


def encode(fields: Mapping[str, str], encoding: Encoding) -> bytes:
    """The token request body in ``encoding``."""
    return dumps(dict(fields)) if encoding == "json" else urlencode(list(fields.items())).encode("ascii")


class BodyEncodings:
    """Which encoding a token endpoint takes, learnt from its answers."""

    def __init__(self, cloud: str, refused: frozenset[int], current: Encoding = "json") -> None:
        self.cloud = cloud
        #: Statuses that mean "I did not understand that body" (a 2xx without a token always does).
        self.refused = refused
        self.current: Encoding = current
        #: True once the server took ``current`` (in this process: a remembered one is tried first only).
        self.settled = False

    async def post(self, attempt: Callable[[Encoding], Awaitable[T]]) -> T:
        """``attempt`` in the current encoding, then in the other if the first was refused."""
        errors: list[CloudError] = []
        for encoding in (self.current,) if self.settled else (self.current, OTHER[self.current]):
            try:
                result = await attempt(encoding)
            except CloudError as exc:
                if exc.status is None or not (exc.status in self.refused or 200 <= exc.status < 300):
                    raise
                log.info(
                    "cloud.token_encoding_refused",
                    cloud=self.cloud,
                    encoding=encoding,
                    status=exc.status,
                    code=exc.code,
                    message=exc.message,
                )
                errors.append(exc)
                continue
            if encoding != self.current:
                log.info("cloud.token_encoding_changed", cloud=self.cloud, encoding=encoding)
                self.current = encoding
            self.settled = True
            return result
        raise most_telling(errors)


def most_telling(errors: list[CloudError]) -> CloudError:
    """Of the errors from both encodings, the one that says most about why: not 'unsupported type'."""
    for error in reversed(errors):
        if error.status is not None and error.status != 415 and not 200 <= error.status < 300:
            return error
    return errors[-1]
