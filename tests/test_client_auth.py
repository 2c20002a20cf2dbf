"""Every auth flow through the client core, against hand-built answers on loopback.

One table for the rule they all share ("401 → renew once, then AuthError"; a token kept and reused;
signatures made anew per attempt), then loctube's answers as the real JetLinks/hsweb servers write them
(issue 17 item 10): requests and answers built here by hand, not by the emulator.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gatewayd.clouds.loctube import LoctubeClient
from gatewayd.clouds.rcms import RcmsClient
from gatewayd.clouds.retry import RetryPolicy
from gatewayd.clouds.thingplus import ThingPlusClient
from gatewayd.errors import AuthError, PermanentError, TransientError
from gatewayd.inventory.config import LoctubeConfig, RcmsConfig, ThingPlusConfig
from tests.conftest import loopback_server
from tests.helpers.clocks import Clocks
from tests.helpers.inventories import LOCTUBE, RCMS, THINGPLUS

KEY = LOCTUBE["secure_key"]
START = 1_700_000_000.0
TOKEN_PATHS = ("/v2/oauth2/token", "/api/v1/token", "/loctube/oauth2/token")
API = {
    "thingplus": "/v2/sites",
    "rcms": "/api/link/dashboard/deviceTotal",
    "loctube": "/api/v1/device/d1/_detail",
}
#: What each flow adds to a request: the headers that carry its credentials.
CREDENTIAL_HEADERS = {
    "thingplus": ("Authorization",),
    "loctube-token": ("X-Access-Token",),
    "loctube-oauth2": ("Authorization",),
    "loctube-signature": ("X-Client-Id", "X-Timestamp", "X-Sign"),
    "rcms": ("clientId", "timestamp", "signature"),
}


def signed(body: dict[str, Any], status: int = 200) -> web.Response:
    """A JetLinks answer signed as the real server signs answers to signed requests."""
    raw = json.dumps(body).encode()
    ts = "1700000000999"
    sign = hashlib.md5(raw + ts.encode() + KEY.encode()).hexdigest()
    return web.Response(
        body=raw, status=status, content_type="application/json", headers={"X-Timestamp": ts, "X-Sign": sign}
    )


@dataclass
class Cloud:
    """A fake of any of the three clouds: token endpoints issue t1, t2, ...; the API answers from ``script``."""

    flow: str
    url: str = ""
    #: Answers to API requests, in order ("ok" once the script runs out).
    script: list[Callable[[web.Request], web.Response]] = field(default_factory=list)
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    issued: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.seen.append((request.path, dict(request.headers)))
        if request.path in TOKEN_PATHS:
            self.issued += 1
            token = f"t{self.issued}"
            if request.path == "/api/v1/token":
                return signed({"status": 200, "result": token})
            return web.json_response(
                {
                    "access_token": token,
                    "token_type": "Bearer",
                    "refresh_token": f"r{self.issued}",
                    "expires_in": 7200,
                }
            )
        return self.script.pop(0)(request) if self.script else self.ok(request)

    def ok(self, request: web.Request) -> web.Response:
        if self.flow == "thingplus":
            return web.json_response({"statusCode": 200, "message": "OK", "data": []})
        if self.flow == "rcms":
            return web.json_response({"code": 0, "msg": "ok", "data": {"deviceTotal": 1}})
        answer = {"status": 200, "result": {"id": "d1"}, "code": "success"}
        return signed(answer) if "X-Sign" in request.headers else web.json_response(answer)

    def refuse(self, request: web.Request) -> web.Response:
        if self.flow == "rcms":
            return web.json_response({"code": 401, "msg": "unauthorized"}, status=401)
        return web.json_response(
            {"status": 401, "code": "unauthorized", "message": "token expired"}, status=401
        )

    def api_requests(self) -> list[dict[str, str]]:
        return [headers for path, headers in self.seen if path not in TOKEN_PATHS]

    def token_requests(self) -> int:
        return sum(1 for path, _ in self.seen if path in TOKEN_PATHS)


def make_call(
    flow: str, url: str, session: aiohttp.ClientSession, clocks: Clocks
) -> Callable[[], Awaitable[Any]]:
    """One API call of the flow's client, with a fake clock and no real waiting."""

    async def sleep(seconds: float) -> None:
        clocks.advance(max(seconds, 1.0))

    common: dict[str, Any] = {"policy": RetryPolicy(attempts=3), "clock": clocks.wall, "sleep": sleep}
    if flow == "thingplus":
        tp = ThingPlusConfig(endpoint=url, **THINGPLUS, timeout=5)
        return ThingPlusClient(session, tp, **common).sites
    if flow == "rcms":
        return RcmsClient(session, RcmsConfig(endpoint=url, **RCMS, timeout=5), **common).device_total
    auth = flow.split("-")[1]
    config = LoctubeConfig(endpoint=url, **LOCTUBE, auth=auth, timeout=5)
    client = LoctubeClient(session, config, **common)
    return lambda: client.device_detail("d1")


@pytest.fixture
def clocks() -> Clocks:
    return Clocks(wall=START)


async def run(
    flow: str, script: list[str], calls: int, session: aiohttp.ClientSession, clocks: Clocks
) -> tuple[Cloud, list[Any]]:
    cloud = Cloud(flow)
    async with loopback_server(cloud.handle) as url:
        cloud.url = url
        cloud.script = [getattr(cloud, step) for step in script]
        call = make_call(flow, url, session, clocks)
        outcomes: list[Any] = []
        for _ in range(calls):
            try:
                outcomes.append(await call())
            except AuthError as exc:
                outcomes.append(exc)
            clocks.advance(1)
    return cloud, outcomes


TOKEN_FLOWS = ("thingplus", "loctube-token", "loctube-oauth2")
SIGNING_FLOWS = ("loctube-signature", "rcms")


@pytest.mark.parametrize("flow", TOKEN_FLOWS + SIGNING_FLOWS)
@pytest.mark.parametrize(
    ("script", "calls", "ok", "api", "tokens", "signing_api"),
    [
        # script of API answers, calls made, calls that succeed, API requests, token requests (token
        # flows); API requests for signing flows, which have nothing to renew
        ([], 2, 2, 2, 1, 2),  # the token is kept and reused
        (["refuse"], 1, 1, 2, 2, 1),  # 401 → one new token, one more try
        (["refuse", "refuse"], 1, 0, 2, 2, 1),  # a second 401 is the AuthError
        (["refuse"] * 4, 2, 0, 4, 3, 2),  # each call renews once, never more
    ],
    ids=["reused", "renewed-once", "second-401-fails", "once-per-call"],
)
async def test_401_renews_once_the_same_way_in_every_flow(
    session: aiohttp.ClientSession,
    clocks: Clocks,
    flow: str,
    script: list[str],
    calls: int,
    ok: int,
    api: int,
    tokens: int,
    signing_api: int,
) -> None:
    cloud, outcomes = await run(flow, script, calls, session, clocks)
    failures = [o for o in outcomes if isinstance(o, AuthError)]
    assert all(f.status == 401 for f in failures)
    if flow in TOKEN_FLOWS:
        assert (calls - len(failures), len(cloud.api_requests()), cloud.token_requests()) == (ok, api, tokens)
    else:  # a signature is made anew per attempt: there is nothing to renew, and no token endpoint
        assert len(cloud.api_requests()) == signing_api and cloud.token_requests() == 0
        assert len(failures) == min(calls, len(script))
    for headers in cloud.api_requests():
        assert all(name in headers for name in CREDENTIAL_HEADERS[flow])


@pytest.mark.parametrize("flow", SIGNING_FLOWS)
async def test_each_attempt_is_signed_anew(session: aiohttp.ClientSession, clocks: Clocks, flow: str) -> None:
    """A retry after a 503 carries a fresh timestamp and signature, not the first attempt's."""
    cloud = Cloud(flow)
    async with loopback_server(cloud.handle) as url:
        cloud.script = [lambda request: web.json_response({"message": "busy"}, status=503)]
        await make_call(flow, url, session, clocks)()
    first, second = cloud.api_requests()
    stamp, sign = CREDENTIAL_HEADERS[flow][1:]
    assert first[stamp] != second[stamp] and first[sign] != second[sign]


# ---- loctube as the real servers answer (issue 17 item 10)


async def loctube_call(
    session: aiohttp.ClientSession, clocks: Clocks, auth: str, answer: Callable[[web.Request], web.Response]
) -> tuple[list[str], Any]:
    """One device_detail in ``auth`` mode against ``answer`` (tokens issued as above); the paths requested
    and the result or the error."""
    cloud = Cloud(f"loctube-{auth}")
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.path)
        if request.path in TOKEN_PATHS:
            return await cloud.handle(request)
        return answer(request)

    async with loopback_server(handle) as url:
        try:
            result: Any = await make_call(f"loctube-{auth}", url, session, clocks)()
        except Exception as exc:
            result = exc
    return seen, result


def spring(status: int, message: str) -> Callable[[web.Request], web.Response]:
    """What the JetLinks signature filter answers: a Spring error body, unsigned (written before any
    controller runs, so not JetLinks' envelope)."""
    error = {400: "Bad Request", 404: "Not Found"}[status]
    body = {
        "timestamp": "2026-01-01T00:00:00.000+00:00",
        "status": status,
        "error": error,
        "message": message,
        "path": "/api/v1/device/d1/_detail",
    }
    return lambda request: web.json_response(body, status=status)


@pytest.mark.parametrize(
    ("status", "said", "hint"),
    [
        (400, "签名错误", "check the clock"),
        (400, "X-Timestamp已过期", "loctube.secure_key"),
        (404, "client不存在", "loctube.client_id"),
    ],
)
async def test_a_signature_filter_refusal_names_the_likely_cause(
    session: aiohttp.ClientSession,
    clocks: Clocks,
    status: int,
    said: str,
    hint: str,
) -> None:
    seen, error = await loctube_call(session, clocks, "signature", spring(status, said))
    assert isinstance(error, AuthError) and error.status == status
    assert error.message.startswith(f"{said}: the signature filter") and hint in error.message
    assert len(seen) == 1  # not retried, and there is no token to renew


async def test_a_controller_404_stays_what_it_is(session: aiohttp.ClientSession, clocks: Clocks) -> None:
    body = {"status": 404, "code": "not_found", "message": "device not found", "result": None}
    _, error = await loctube_call(
        session, clocks, "signature", lambda request: web.json_response(body, status=404)
    )
    assert isinstance(error, PermanentError) and not isinstance(error, AuthError)
    assert (error.status, error.code, error.message) == (404, "not_found", "device not found")


async def test_an_unsigned_server_error_to_a_signed_request_is_retried_not_tampered(
    session: aiohttp.ClientSession, clocks: Clocks
) -> None:
    seen, error = await loctube_call(
        session,
        clocks,
        "signature",
        lambda request: web.json_response({"status": 500, "message": "boom"}, status=500),
    )
    assert isinstance(error, TransientError) and len(seen) == 3


@pytest.mark.parametrize("auth", ["token", "oauth2"])
async def test_token_authenticated_answers_are_not_checked_for_a_signature(
    session: aiohttp.ClientSession, clocks: Clocks, auth: str
) -> None:
    """The real server signs no token-authenticated answer; one that carries an X-Sign is not verified."""
    answer = {"status": 200, "result": {"id": "d1"}}
    bogus = {"X-Timestamp": "1", "X-Sign": "0" * 32}
    _, result = await loctube_call(
        session, clocks, auth, lambda request: web.json_response(answer, headers=bogus)
    )
    assert result == {"id": "d1"}


def hsweb(status_in_body: int, code: str, message: str) -> web.Response:
    """hsweb's OAuth2 endpoint refusing: HTTP 500, its own status code in the body."""
    return web.json_response(
        {"status": status_in_body, "code": code, "message": message, "timestamp": 1}, status=500
    )


@pytest.mark.parametrize(
    ("body_status", "code", "message"),
    [
        (401, "illegal_client_secret", "密钥错误"),
        (404, "illegal_client_id", "client不存在"),
        (500, "unsupported_grant_type", "不支持的授权类型"),
    ],
)
async def test_an_hsweb_oauth2_500_is_an_auth_failure_said_clearly(
    session: aiohttp.ClientSession, clocks: Clocks, body_status: int, code: str, message: str
) -> None:
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.path)
        return hsweb(body_status, code, message)

    async with loopback_server(handle) as url:
        with pytest.raises(AuthError) as info:
            await make_call("loctube-oauth2", url, session, clocks)()
    assert (info.value.status, info.value.code) == (500, code)
    assert message in info.value.message and "OAuth2 token request refused" in info.value.message
    assert "loctube.secure_key" in info.value.message
    assert seen == ["/loctube/oauth2/token"]  # neither retried nor sent again in the other encoding


async def test_an_expired_refresh_token_falls_back_to_client_credentials(
    session: aiohttp.ClientSession, clocks: Clocks
) -> None:
    grants: list[str] = []
    cloud = Cloud("loctube-oauth2")

    async def handle(request: web.Request) -> web.Response:
        if request.path == "/loctube/oauth2/token":
            grant = json.loads(await request.read())["grant_type"]
            grants.append(grant)
            if grant == "refresh_token":
                return hsweb(401, "expired_refresh_token", "refresh_token已过期")
        return await cloud.handle(request)

    async with loopback_server(handle) as url:
        call = make_call("loctube-oauth2", url, session, clocks)
        await call()
        clocks.advance(7200)  # past the access token's life: refreshed before use
        assert await call() == {"id": "d1"}
    assert grants == ["client_credentials", "refresh_token", "client_credentials"]


async def test_an_oauth2_500_without_an_hsweb_body_is_a_server_error(
    session: aiohttp.ClientSession, clocks: Clocks
) -> None:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(
            status=502 if request.path.endswith("token") else 200, text="<html>bad gateway</html>"
        )

    async with loopback_server(handle) as url:
        with pytest.raises(TransientError):
            await make_call("loctube-oauth2", url, session, clocks)()
