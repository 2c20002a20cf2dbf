"""LoctubeClient against a fake loctube on loopback that checks signatures with hashlib, not with our signer."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web

from gatewayd.clouds.http import RetryPolicy
from gatewayd.clouds.loctube import LoctubeClient
from gatewayd.errors import AuthError, DeferredError, PermanentError, TamperedError, TransientError
from gatewayd.inventory.config import LoctubeConfig
from tests.conftest import loopback_server
from tests.helpers.clocks import FakeClock

CLIENT_ID = "locClient"
KEY = "locSecureKey"
START = 1_700_000_000.0
DEVICE = {"id": "dev1", "name": "tracker", "state": {"text": "online", "value": "online"}}


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    sign_ok: bool | None  # None: the request carried no X-Sign


def digest(algorithm: str, data: bytes) -> str:
    return hashlib.new(algorithm, data).hexdigest()


@dataclass
class FakeLoctube:
    """A small JetLinks: signature filter, /api/v1/token, OAuth2 token endpoint, device endpoints."""

    algorithm: str = "md5"
    #: How answers are signed: properly, with a wrong X-Sign, with an upper-case X-Sign, or not at all.
    response_sign: Literal["good", "bad", "upper", "none"] = "good"
    oauth2_encodings: tuple[str, ...] = ("json", "form")
    #: Answers to API calls once authorised; a test may replace it.
    api: Callable[[Seen], web.Response] = field(default=lambda seen: FakeLoctube.ok(DEVICE))
    seen: list[Seen] = field(default_factory=list)
    valid_tokens: set[str] = field(default_factory=set)
    refresh_tokens: set[str] = field(default_factory=set)
    issued: int = 0
    url: str = ""

    @staticmethod
    def ok(result: Any) -> web.Response:
        return web.json_response({"status": 200, "result": result, "code": "success"})

    def sign_answer(self, resp: web.Response) -> web.Response:
        if self.response_sign == "none":
            return resp
        ts = "1700000000999"
        body = resp.body or b""
        assert isinstance(body, bytes)
        sign = digest(self.algorithm, body + ts.encode() + KEY.encode())
        if self.response_sign == "upper":
            sign = sign.upper()
        elif self.response_sign == "bad":
            sign = digest(self.algorithm, b"something else")
        resp.headers["X-Timestamp"] = ts
        resp.headers["X-Sign"] = sign
        return resp

    def check_sign(self, request: web.Request, raw_query: str, body: bytes) -> bool | None:
        sign = request.headers.get("X-Sign")
        if sign is None:
            return None
        ts = request.headers.get("X-Timestamp", "")
        if request.method in ("POST", "PUT"):
            signed = body
        else:
            grouped: dict[str, list[str]] = {}
            for k, v in parse_qsl(raw_query, keep_blank_values=True):
                grouped.setdefault(k, []).append(v)
            signed = "&".join(f"{k}={','.join(grouped[k])}" for k in sorted(grouped)).encode()
        expected = digest(self.algorithm, signed + ts.encode() + KEY.encode())
        return request.headers.get("X-Client-Id") == CLIENT_ID and sign.lower() == expected

    def issue(self) -> str:
        self.issued += 1
        token = f"t{self.issued}"
        self.valid_tokens.add(token)
        return token

    def expire_tokens(self) -> None:
        self.valid_tokens.clear()

    async def handle(self, request: web.Request) -> web.Response:
        path, _, raw_query = request.raw_path.partition("?")
        body = await request.read()
        seen = Seen(request.method, path, raw_query, dict(request.headers), body, None)
        seen.sign_ok = self.check_sign(request, raw_query, body)
        self.seen.append(seen)
        if path == "/loctube/oauth2/token":
            return self.oauth2(request, body)
        if seen.sign_ok is False:
            return web.json_response({"status": 403, "error": "Forbidden", "message": "签名错误"}, status=403)
        if path == "/api/v1/token":
            if not seen.sign_ok:
                return web.json_response(
                    {"status": 401, "code": "unauthorized", "message": "no sign"}, status=401
                )
            seen_expires = json.loads(body)["expires"]
            assert isinstance(seen_expires, int)
            return self.sign_answer(self.ok(self.issue()))
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        token = request.headers.get("X-Access-Token") or bearer
        if not seen.sign_ok and token not in self.valid_tokens:
            return web.json_response(
                {"status": 401, "code": "unauthorized", "message": "token expired", "result": None},
                status=401,
            )
        return self.sign_answer(self.api(seen))

    def oauth2(self, request: web.Request, body: bytes) -> web.Response:
        ctype = request.content_type
        encoding = {"application/json": "json", "application/x-www-form-urlencoded": "form"}.get(ctype)
        if encoding not in self.oauth2_encodings:
            return web.json_response({"status": 415, "error": "Unsupported Media Type"}, status=415)
        fields = json.loads(body) if encoding == "json" else dict(parse_qsl(body.decode()))
        if fields.get("client_id") != CLIENT_ID or fields.get("client_secret") != KEY:
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = fields.get("grant_type")
        if grant == "refresh_token" and fields.get("refresh_token") not in self.refresh_tokens:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "refresh expired"}, status=400
            )
        if grant not in ("client_credentials", "refresh_token"):
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        access = self.issue()
        refresh = f"r{self.issued}"
        self.refresh_tokens.add(refresh)
        return web.json_response({"access_token": access, "refresh_token": refresh, "expires_in": 1000})

    def calls(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]


@pytest.fixture
async def cloud() -> AsyncIterator[FakeLoctube]:
    fake = FakeLoctube()
    async with loopback_server(fake.handle) as url:
        fake.url = url
        yield fake


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START, min_sleep=1.0)


@pytest.fixture
def make(
    cloud: FakeLoctube, session: aiohttp.ClientSession, clock: FakeClock
) -> Callable[..., LoctubeClient]:
    def make(**config: Any) -> LoctubeClient:
        settings = {"endpoint": cloud.url, "client_id": CLIENT_ID, "secure_key": KEY, "timeout": 5, **config}
        cloud.algorithm = settings.get("sign", "md5")
        return LoctubeClient(
            session,
            LoctubeConfig(**settings),
            policy=RetryPolicy(attempts=3),
            clock=clock,
            sleep=clock.sleep,
        )

    return make


DETAIL = "/api/v1/device/dev1/_detail"


# ---- signature mode


async def test_signed_get(cloud: FakeLoctube, make: Callable[..., LoctubeClient]) -> None:
    assert await make().device_detail("dev1") == DEVICE
    [seen] = cloud.seen
    assert (seen.method, seen.path, seen.query) == ("GET", DETAIL, "")
    ts = str(int(START * 1000))
    assert seen.headers["X-Client-Id"] == CLIENT_ID and seen.headers["X-Timestamp"] == ts
    assert seen.headers["X-Sign"] == hashlib.md5(f"{ts}{KEY}".encode()).hexdigest()
    assert seen.sign_ok is True
    assert "X-Access-Token" not in seen.headers and "Authorization" not in seen.headers


async def test_signed_post_covers_the_exact_body_bytes(
    cloud: FakeLoctube, make: Callable[..., LoctubeClient]
) -> None:
    page = {"pageIndex": 1, "pageSize": 10, "total": 11, "data": [DEVICE]}
    cloud.api = lambda seen: FakeLoctube.ok(page)
    terms = [{"column": "state", "value": "online"}]
    assert await make().query_devices(terms=terms, page_index=1, page_size=10) == page
    [seen] = cloud.seen
    assert (seen.method, seen.path) == ("POST", "/api/v1/device/_query")
    assert json.loads(seen.body) == {"pageIndex": 1, "pageSize": 10, "terms": terms}
    assert seen.headers["Content-Type"] == "application/json"
    ts = seen.headers["X-Timestamp"]
    assert seen.headers["X-Sign"] == hashlib.md5(seen.body + ts.encode() + KEY.encode()).hexdigest()


async def test_sha256(cloud: FakeLoctube, make: Callable[..., LoctubeClient]) -> None:
    client = make(sign="sha256")
    assert await client.device_detail("dev1") == DEVICE
    ts = cloud.seen[0].headers["X-Timestamp"]
    assert cloud.seen[0].headers["X-Sign"] == hashlib.sha256(f"{ts}{KEY}".encode()).hexdigest()


async def test_wrong_key_is_refused_by_the_server(
    cloud: FakeLoctube, make: Callable[..., LoctubeClient]
) -> None:
    with pytest.raises(AuthError) as info:
        await make(secure_key="wrong").device_detail("dev1")
    assert info.value.status == 403 and info.value.message == "签名错误"
    assert cloud.seen[0].sign_ok is False and len(cloud.seen) == 1


async def test_tampered_answer(
    cloud: FakeLoctube, make: Callable[..., LoctubeClient], clock: FakeClock
) -> None:
    cloud.response_sign = "bad"
    with pytest.raises(TamperedError):
        await make().device_detail("dev1")
    assert len(cloud.seen) == 1 and clock.waits == []


async def test_an_upper_case_answer_sign_is_accepted(
    cloud: FakeLoctube, make: Callable[..., LoctubeClient]
) -> None:
    cloud.response_sign = "upper"
    assert await make().device_detail("dev1") == DEVICE


@pytest.mark.parametrize("strip", [("X-Sign", "X-Timestamp"), ("X-Sign",), ("X-Timestamp",)])
async def test_a_success_without_its_signature_is_refused_in_signature_mode(
    cloud: FakeLoctube, make: Callable[..., LoctubeClient], clock: FakeClock, strip: tuple[str, ...]
) -> None:
    """What a man in the middle would send: the signature headers stripped and the body altered."""

    def forged(seen: Seen) -> web.Response:
        genuine = FakeLoctube.ok(DEVICE)
        assert isinstance(genuine.body, bytes)
        ts = "1700000000999"
        headers = {"X-Timestamp": ts, "X-Sign": digest("md5", genuine.body + ts.encode() + KEY.encode())}
        for header in strip:
            del headers[header]
        return web.json_response({"status": 200, "result": {**DEVICE, "state": "FORGED"}}, headers=headers)

    cloud.api = forged
    cloud.response_sign = "none"  # the fake adds no signature of its own: the forger's headers go out
    with pytest.raises(TamperedError) as info:
        await make().device_detail("dev1")
    assert info.value.status == 200 and info.value.kind == "tampered"
    assert "refused" in info.value.message
    assert len(cloud.seen) == 1 and clock.waits == []  # not retried


async def test_an_unsigned_error_answer_stays_the_error_it_is(
    cloud: FakeLoctube, make: Callable[..., LoctubeClient]
) -> None:
    cloud.response_sign = "none"
    cloud.api = lambda seen: web.json_response(
        {"status": 404, "code": "not_found", "message": "no such device", "result": None}, status=404
    )
    with pytest.raises(PermanentError) as info:
        await make().device_detail("dev1")
    assert (info.value.status, info.value.code) == (404, "not_found")


async def test_token_mode_takes_unsigned_answers_but_not_an_unsigned_token(
    cloud: FakeLoctube, make: Callable[..., LoctubeClient]
) -> None:
    """Only answers to signed requests are signed: the token request is one, a token-auth call is not."""
    client = make(auth="token")
    cloud.response_sign = "none"
    with pytest.raises(TamperedError):
        await client.device_detail("dev1")
    assert [s.path for s in cloud.seen] == ["/api/v1/token"]
    cloud.response_sign = "good"
    assert await client.device_detail("dev1") == DEVICE
    cloud.response_sign = "none"
    assert await client.device_detail("dev1") == DEVICE


# ---- errors


async def test_controller_400_is_permanent(
    cloud: FakeLoctube, make: Callable[..., LoctubeClient], clock: FakeClock
) -> None:
    """A controller's refusal comes in JetLinks' envelope (a Spring-style body is the signature filter's:
    see tests/test_loctube_auth.py)."""
    body = {"status": 400, "code": "illegal_argument", "message": "pageSize too big", "result": None}
    cloud.api = lambda seen: web.json_response(body, status=400)
    with pytest.raises(PermanentError) as info:
        await make().query_devices(page_size=100000)
    assert info.value.status == 400 and info.value.message == "pageSize too big"
    assert info.value.code == "illegal_argument"
    assert len(cloud.seen) == 1 and clock.waits == []


async def test_controller_error_code_is_kept(cloud: FakeLoctube, make: Callable[..., LoctubeClient]) -> None:
    body = {"status": 404, "code": "not_found", "message": "device not found", "result": None}
    cloud.api = lambda seen: web.json_response(body, status=404)
    with pytest.raises(PermanentError) as info:
        await make().device_detail("dev1")
    assert (info.value.status, info.value.code, info.value.message) == (404, "not_found", "device not found")


async def test_503_retried_then_success(
    cloud: FakeLoctube, make: Callable[..., LoctubeClient], clock: FakeClock
) -> None:
    answers = [web.json_response({"status": 503, "message": "busy"}, status=503), FakeLoctube.ok(DEVICE)]
    cloud.api = lambda seen: answers.pop(0)
    assert await make().device_detail("dev1") == DEVICE
    assert len(cloud.seen) == 2 and len(clock.waits) == 1
    assert cloud.seen[0].headers["X-Timestamp"] != cloud.seen[1].headers["X-Timestamp"]
    assert all(s.sign_ok for s in cloud.seen)


async def test_429_honours_retry_after(
    cloud: FakeLoctube, make: Callable[..., LoctubeClient], clock: FakeClock
) -> None:
    answers = [web.Response(status=429, headers={"Retry-After": "4"}), FakeLoctube.ok(DEVICE)]
    cloud.api = lambda seen: answers.pop(0)
    assert await make().device_detail("dev1") == DEVICE
    assert clock.waits == [4.0]


async def test_a_long_retry_after_defers_the_client_without_waiting(
    cloud: FakeLoctube, make: Callable[..., LoctubeClient], clock: FakeClock
) -> None:
    cloud.api = lambda seen: web.Response(status=503, headers={"Retry-After": "12"})
    client = make()
    with pytest.raises(TransientError) as first:
        await client.device_detail("dev1")
    assert (first.value.status, first.value.retry_after) == (503, 12.0)
    with pytest.raises(DeferredError, match="no request sent"):
        await client.query_devices()
    assert len(cloud.seen) == 1 and clock.waits == []


async def test_non_json_success_is_permanent(cloud: FakeLoctube, make: Callable[..., LoctubeClient]) -> None:
    cloud.api = lambda seen: web.Response(text="ok")
    with pytest.raises(PermanentError, match="not a JSON object"):
        await make().device_detail("dev1")


async def test_no_token_in_signature_mode(make: Callable[..., LoctubeClient]) -> None:
    with pytest.raises(PermanentError, match="signature"):
        await make().access_token()


# ---- token mode


async def test_token_is_fetched_with_signed_body_then_sent(
    cloud: FakeLoctube, make: Callable[..., LoctubeClient]
) -> None:
    client = make(auth="token", token_expires=600)
    assert await client.device_detail("dev1") == DEVICE
    assert await client.device_detail("dev1") == DEVICE
    [token_call] = cloud.calls("/api/v1/token")
    assert token_call.method == "POST" and json.loads(token_call.body) == {"expires": 600}
    ts = token_call.headers["X-Timestamp"]
    assert (
        token_call.headers["X-Sign"] == hashlib.md5(token_call.body + ts.encode() + KEY.encode()).hexdigest()
    )
    details = cloud.calls(DETAIL)
    assert [d.headers["X-Access-Token"] for d in details] == ["t1", "t1"]
    assert all("X-Sign" not in d.headers for d in details)
    assert await client.access_token() == "t1"


async def test_token_401_renews_once_and_retries(
    cloud: FakeLoctube, make: Callable[..., LoctubeClient]
) -> None:
    client = make(auth="token")
    assert await client.device_detail("dev1") == DEVICE
    cloud.expire_tokens()
    assert await client.device_detail("dev1") == DEVICE
    assert [s.path for s in cloud.seen] == ["/api/v1/token", DETAIL, DETAIL, "/api/v1/token", DETAIL]
    assert [s.headers.get("X-Access-Token") for s in cloud.calls(DETAIL)] == ["t1", "t1", "t2"]


async def test_token_refused_twice_is_an_auth_error(
    cloud: FakeLoctube, make: Callable[..., LoctubeClient]
) -> None:
    client = make(auth="token")
    cloud.api = lambda seen: web.json_response(
        {"status": 401, "code": "unauthorized", "message": "no"}, status=401
    )
    with pytest.raises(AuthError) as info:
        await client.device_detail("dev1")
    assert info.value.status == 401 and info.value.code == "unauthorized"
    assert [s.path for s in cloud.seen] == ["/api/v1/token", DETAIL, "/api/v1/token", DETAIL]


async def test_token_expiry_is_sliding(
    cloud: FakeLoctube, make: Callable[..., LoctubeClient], clock: FakeClock
) -> None:
    client = make(auth="token", token_expires=1000)
    await client.device_detail("dev1")
    for _ in range(3):  # 1800 s in all, but never more than 600 s idle: the token stays
        clock.now += 600
        await client.device_detail("dev1")
    assert len(cloud.calls("/api/v1/token")) == 1
    clock.now += 950  # idle for more than 90% of its lifetime: renewed before use
    await client.device_detail("dev1")
    assert len(cloud.calls("/api/v1/token")) == 2
    assert cloud.calls(DETAIL)[-1].headers["X-Access-Token"] == "t2"
    assert len(cloud.calls(DETAIL)) == 5  # no 401 was needed


# ---- oauth2 mode


def oauth2_fields(seen: Seen) -> dict[str, str]:
    if seen.headers["Content-Type"].startswith("application/json"):
        return dict(json.loads(seen.body))
    return dict(parse_qsl(seen.body.decode()))


async def test_oauth2_client_credentials_as_json(
    cloud: FakeLoctube, make: Callable[..., LoctubeClient]
) -> None:
    client = make(auth="oauth2")
    assert await client.device_detail("dev1") == DEVICE
    token_call, detail = cloud.seen
    assert token_call.headers["Content-Type"] == "application/json"
    assert json.loads(token_call.body) == {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": KEY,
    }
    assert detail.headers["Authorization"] == "Bearer t1" and "X-Sign" not in detail.headers
    assert await client.access_token() == "t1"


async def test_oauth2_falls_back_to_form_and_remembers(
    cloud: FakeLoctube, make: Callable[..., LoctubeClient], clock: FakeClock
) -> None:
    cloud.oauth2_encodings = ("form",)
    client = make(auth="oauth2")
    assert await client.device_detail("dev1") == DEVICE
    clock.now += 950  # expires_in is 1000: refreshed before use
    assert await client.device_detail("dev1") == DEVICE
    token_calls = cloud.calls("/loctube/oauth2/token")
    types = [s.headers["Content-Type"].split(";")[0] for s in token_calls]
    assert types == [
        "application/json",
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded",
    ]
    assert oauth2_fields(token_calls[1])["grant_type"] == "client_credentials"
    assert oauth2_fields(token_calls[2]) == {
        "grant_type": "refresh_token",
        "refresh_token": "r1",
        "client_id": CLIENT_ID,
        "client_secret": KEY,
    }
    assert [s.headers["Authorization"] for s in cloud.calls(DETAIL)] == ["Bearer t1", "Bearer t2"]


async def test_oauth2_failed_refresh_falls_back_to_client_credentials(
    cloud: FakeLoctube, make: Callable[..., LoctubeClient], clock: FakeClock
) -> None:
    client = make(auth="oauth2")
    await client.device_detail("dev1")
    cloud.refresh_tokens.clear()  # the refresh token lapsed
    clock.now += 2000
    assert await client.device_detail("dev1") == DEVICE
    grants = [oauth2_fields(s)["grant_type"] for s in cloud.calls("/loctube/oauth2/token")]
    assert grants == ["client_credentials", "refresh_token", "client_credentials"]
    assert cloud.calls(DETAIL)[-1].headers["Authorization"] == "Bearer t2"


async def test_oauth2_401_refreshes_and_retries(
    cloud: FakeLoctube, make: Callable[..., LoctubeClient]
) -> None:
    client = make(auth="oauth2")
    await client.device_detail("dev1")
    cloud.expire_tokens()
    assert await client.device_detail("dev1") == DEVICE
    grants = [oauth2_fields(s)["grant_type"] for s in cloud.calls("/loctube/oauth2/token")]
    assert grants == ["client_credentials", "refresh_token"]
    assert [s.headers["Authorization"] for s in cloud.calls(DETAIL)] == [
        "Bearer t1",
        "Bearer t1",
        "Bearer t2",
    ]


async def test_oauth2_bad_client_is_an_auth_error(
    cloud: FakeLoctube, make: Callable[..., LoctubeClient]
) -> None:
    with pytest.raises(AuthError) as info:
        await make(auth="oauth2", secure_key="wrong").access_token()
    assert info.value.code == "invalid_client"
    assert len(cloud.seen) == 1  # 401 is not a reason to try the other encoding
