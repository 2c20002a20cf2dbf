"""Helpers for the loctube emulator tests: requests built by hand, signed as the document says.

Signing here is the document's Java ``OpenApiUtils`` and sign-off transcribed with hashlib (plus the
real server's first-value reading of a repeated key): no gatewayd signer is used. :meth:`Env.call`
verifies any X-Sign an answer carries; whether an answer must carry one is asserted by the tests.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import web
from aiohttp.test_utils import TestClient

from gatewayd.emulator.loctube import LoctubeEmulator
from tests.helpers.clocks import FakeClock

CLIENT_ID = "testId"
KEY = "testSecure"
DEVICES = ["dev0001", "dev0002", "dev0003", "tracker-9"]
NOW = 1_700_000_000.0
DETAIL = "/api/v1/device/dev0001/_detail"
#: The document's GET example: query, timestamp, key testSecure, md5.
VECTOR_QUERY = "pageIndex=0&pageSize=20"
VECTOR_TS = "1574993804802"
VECTOR_SIGN = "837fe7fa29e7a5e4852d447578269523"
FORM = "application/x-www-form-urlencoded"

Client = TestClient[web.Request, web.Application]


def digest(algorithm: str, data: bytes) -> str:
    return hashlib.new(algorithm, data).hexdigest()


def sign_query(
    pairs: list[tuple[str, str]],
    timestamp: str,
    key: str,
    algorithm: str = "md5",
    *,
    first_only: bool = False,
) -> str:
    """OpenApiUtils.signByQuery: a TreeMap of key -> values, values joined by ',', entries by '&'.

    ``first_only``: a repeated key's first value only, as the real server's filter reads it."""
    grouped: dict[str, list[str]] = {}
    for k, v in pairs:
        grouped.setdefault(k, []).append(v)
    param = "&".join(
        k + "=" + (grouped[k][0] if first_only else ",".join(grouped[k])) for k in sorted(grouped)
    )
    return digest(algorithm, param.encode() + timestamp.encode() + key.encode())


def sign_body(body: bytes, timestamp: str, key: str, algorithm: str = "md5") -> str:
    """OpenApiUtils.signByPost over the bytes that are sent."""
    return digest(algorithm, body + timestamp.encode() + key.encode())


def encode_query(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)


@dataclass
class Reply:
    status: int
    body: Any
    raw: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def signed(self) -> bool:
        return "X-Sign" in self.headers or "X-Timestamp" in self.headers


@dataclass
class Env:
    client: Client
    emulator: LoctubeEmulator
    clock: FakeClock
    key: str
    algorithm: str
    client_id: str
    #: What the emulator's ``oauth2_form_only`` reads.
    form_only: list[bool]

    def ts(self, offset_ms: int = 0) -> str:
        return str(int(self.clock.now * 1000) + offset_ms)

    async def call(self, method: str, url: str, **kwargs: Any) -> Reply:
        """Send; an answer carrying X-Sign must verify over body + X-Timestamp + secure key."""
        async with self.client.request(method, url, **kwargs) as response:
            raw = await response.read()
            headers = dict(response.headers)
            status = response.status
        sign = headers.get("X-Sign")
        if sign is not None:
            stamp = headers.get("X-Timestamp")
            assert stamp == str(int(self.clock.now * 1000))
            expected = digest(self.algorithm, raw + stamp.encode() + self.key.encode())
            assert expected == sign.lower(), f"response X-Sign does not verify: {raw!r}"
        return Reply(status, json.loads(raw), raw, headers)

    def sign_headers(self, sign: str, timestamp: str) -> dict[str, str]:
        return {"X-Client-Id": self.client_id, "X-Timestamp": timestamp, "X-Sign": sign}

    async def signed_get(
        self, path: str, pairs: list[tuple[str, str]] | None = None, *, first_only: bool = False
    ) -> Reply:
        pairs = pairs or []
        ts = self.ts()
        sign = sign_query(pairs, ts, self.key, self.algorithm, first_only=first_only)
        query = encode_query(pairs)
        url = f"{path}?{query}" if query else path
        return await self.call("GET", url, headers=self.sign_headers(sign, ts))

    async def signed_post(self, path: str, body: bytes) -> Reply:
        ts = self.ts()
        headers = self.sign_headers(sign_body(body, ts, self.key, self.algorithm), ts)
        headers["Content-Type"] = "application/json"
        return await self.call("POST", path, data=body, headers=headers)

    async def x_token(self, expires: Any = None) -> str:
        body = b"{}" if expires is None else json.dumps({"expires": expires}).encode()
        reply = await self.signed_post("/api/v1/token", body)
        assert reply.status == 200, reply.body
        assert reply.body["status"] == 200
        token = reply.body["result"]
        assert isinstance(token, str) and token
        return token

    async def oauth2(self, params: dict[str, str], *, form: bool = False) -> Reply:
        if form:
            return await self.call("POST", "/loctube/oauth2/token", data=params)
        return await self.call("POST", "/loctube/oauth2/token", json=params)

    def credentials(self, grant: str = "client_credentials", **extra: str) -> dict[str, str]:
        return {"grant_type": grant, "client_id": self.client_id, "client_secret": self.key, **extra}

    async def client_credentials(self, *, form: bool = False) -> dict[str, Any]:
        reply = await self.oauth2(self.credentials(), form=form)
        assert reply.status == 200, reply.body
        assert not reply.signed
        body: dict[str, Any] = reply.body
        return body


def assert_spring_error(reply: Reply, status: int, path: str, message: str | None = None) -> None:
    """The signature filter's error, as Spring Boot's error handler writes it; never signed."""
    assert reply.status == status, reply.body
    assert set(reply.body) == {"timestamp", "path", "status", "error", "message", "requestId"}
    assert reply.body["status"] == status
    assert reply.body["path"] == path
    assert isinstance(reply.body["timestamp"], int)
    if message is not None:
        assert reply.body["message"] == message
    assert not reply.signed


def assert_hsweb_error(reply: Reply, http_status: int, body_status: int, code: str) -> None:
    """A controller's error, as hsweb's ResponseMessage writes it; never signed."""
    assert reply.status == http_status, reply.body
    assert set(reply.body) - {"result"} == {"message", "status", "code", "timestamp"}
    assert (reply.body["status"], reply.body["code"]) == (body_status, code)
    assert reply.body["message"]
    assert not reply.signed


def assert_unauthorized(reply: Reply) -> None:
    assert_hsweb_error(reply, 401, 401, "unauthorized")
    assert reply.body["result"] == {"text": "用户未登录", "value": "expired"}
