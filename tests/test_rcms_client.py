"""RcmsClient against a scripted RCMS on loopback that checks every signature on its own (hmac, not our signer)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Union

import aiohttp
import pytest
from aiohttp import web

from gatewayd.clouds.http import RetryPolicy
from gatewayd.clouds.rcms import RcmsClient, RcmsError
from gatewayd.errors import DeferredError, PermanentError, RateLimitedError, TransientError
from gatewayd.inventory.config import RcmsConfig
from tests.conftest import loopback_server
from tests.helpers.clocks import FakeClock

CLIENT_ID = "rcmsClient7"
SECRET = "rcms-secret"
START = 1_700_000_000.0


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    signature_ok: bool


Handler = Callable[[Seen], Union[Awaitable[web.Response], web.Response]]


@dataclass
class FakeRcms:
    """Records each request, checks its signature from the document's rules, answers with ``handler``."""

    handler: Handler | None = None
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        raw_path, _, raw_query = request.raw_path.partition("?")
        pairs = [p.partition("=") for p in raw_query.split("&") if p]
        query = {k: v for k, _, v in pairs}
        canonical = "&".join(f"{k}={v}" for k, v in sorted(query.items()))
        to_sign = request.method + raw_path + canonical + SECRET
        expected = hmac.new((CLIENT_ID * 2).encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        public = ("apiVersion", "clientId", "signatureVersion", "timestamp", "uniqueCode")
        ok = (
            request.headers.get("signature") == expected
            and all(request.headers.get(k) == query.get(k) for k in public)
            and query.get("uniqueCode") == CLIENT_ID
        )
        seen = Seen(request.method, raw_path, query, dict(request.headers), await request.read(), ok)
        self.seen.append(seen)
        if not ok:
            return web.json_response({"code": 40002, "msg": "Invalid signature"})
        assert self.handler is not None
        answer = self.handler(seen)
        return await answer if isinstance(answer, Awaitable) else answer


def ok(data: Any) -> web.Response:
    return web.json_response({"code": 0, "msg": "Success", "data": data})


@pytest.fixture
async def cloud() -> AsyncIterator[FakeRcms]:
    fake = FakeRcms()
    async with loopback_server(fake.handle) as url:
        fake.url = url
        yield fake


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START, min_sleep=1.0)


@pytest.fixture
def client(cloud: FakeRcms, session: aiohttp.ClientSession, clock: FakeClock) -> RcmsClient:
    return make_client(cloud, session, clock)


def make_client(
    cloud: FakeRcms, session: aiohttp.ClientSession, clock: FakeClock, secret: str = SECRET
) -> RcmsClient:
    config = RcmsConfig(endpoint=cloud.url, client_id=CLIENT_ID, client_secret=secret, timeout=5)
    return RcmsClient(session, config, policy=RetryPolicy(attempts=3), clock=clock, sleep=clock.sleep)


# ---- success


async def test_device_total_is_signed_and_unwrapped(cloud: FakeRcms, client: RcmsClient) -> None:
    totals = {"deviceTotal": 14, "onlineTotal": 5, "offlineTotal": 9}
    cloud.handler = lambda seen: ok(totals)
    assert await client.device_total() == totals
    [seen] = cloud.seen
    assert seen.signature_ok
    assert (seen.method, seen.path) == ("GET", "/api/link/dashboard/deviceTotal")
    assert seen.query["timestamp"] == str(int(START * 1000))
    assert seen.headers["signatureVersion"] == "1.0" and seen.headers["apiVersion"] == "1.0"


async def test_status_data_follows_pages_until_a_short_one(cloud: FakeRcms, client: RcmsClient) -> None:
    pages = {1: [{"n": 1}, {"n": 2}], 2: [{"n": 3}, {"n": 4}], 3: [{"n": 5}]}
    cloud.handler = lambda seen: ok(pages[int(seen.query["pageNum"])])
    records = await client.status_data("SN-01", 1000, 2000, page_size=2)
    assert records == [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}, {"n": 5}]
    assert [s.query["pageNum"] for s in cloud.seen] == ["1", "2", "3"]
    for seen in cloud.seen:
        assert seen.signature_ok
        assert seen.path == "/api/link/device/devices/SN-01/statusData"
        assert (seen.query["pageSize"], seen.query["beginTime"], seen.query["endTime"]) == (
            "2",
            "1000",
            "2000",
        )


async def test_status_data_stops_on_an_empty_page(cloud: FakeRcms, client: RcmsClient) -> None:
    pages: dict[int, list[Any] | None] = {1: [{"n": 1}, {"n": 2}], 2: None}
    cloud.handler = lambda seen: ok(pages[int(seen.query["pageNum"])])
    assert await client.status_data("SN", 0, 1, page_size=2) == [{"n": 1}, {"n": 2}]
    assert len(cloud.seen) == 2


async def test_set_group_puts_json_body_unsigned(cloud: FakeRcms, client: RcmsClient) -> None:
    cloud.handler = lambda seen: ok(None)
    assert await client.set_group("SN7", "Demo") is None
    [seen] = cloud.seen
    assert seen.signature_ok  # the server's check signs method + path + query only
    assert (seen.method, seen.path) == ("PUT", "/api/link/devices/SN7/group")
    assert json.loads(seen.body) == {"groupName": "Demo"}
    assert seen.headers["Content-Type"] == "application/json"


# ---- errors


async def test_503_is_retried_with_a_fresh_signature(
    cloud: FakeRcms, client: RcmsClient, clock: FakeClock
) -> None:
    answers = [web.json_response({"code": 500, "msg": "busy"}, status=503), ok({"deviceTotal": 1})]
    cloud.handler = lambda seen: answers.pop(0)
    assert await client.device_total() == {"deviceTotal": 1}
    assert len(cloud.seen) == 2 and len(clock.waits) == 1
    assert all(s.signature_ok for s in cloud.seen)
    assert cloud.seen[0].query["timestamp"] != cloud.seen[1].query["timestamp"]
    assert cloud.seen[1].query["timestamp"] == str(int(clock.now * 1000))


async def test_429_honours_retry_after(cloud: FakeRcms, client: RcmsClient, clock: FakeClock) -> None:
    answers = [web.Response(status=429, headers={"Retry-After": "5"}), ok({"deviceTotal": 1})]
    cloud.handler = lambda seen: answers.pop(0)
    assert await client.device_total() == {"deviceTotal": 1}
    assert clock.waits == [5.0]


async def test_a_long_retry_after_defers_the_client_without_waiting(
    cloud: FakeRcms, client: RcmsClient, clock: FakeClock
) -> None:
    cloud.handler = lambda seen: web.Response(status=429, headers={"Retry-After": "7"})
    with pytest.raises(RateLimitedError) as first:
        await client.device_total()
    assert first.value.retry_after == 7.0
    with pytest.raises(DeferredError, match="deferred by Retry-After"):
        await client.device_total()
    assert len(cloud.seen) == 1 and clock.waits == []


async def test_retries_are_bounded(cloud: FakeRcms, client: RcmsClient, clock: FakeClock) -> None:
    cloud.handler = lambda seen: web.Response(status=429, headers={"Retry-After": "1"})
    with pytest.raises(RateLimitedError) as info:
        await client.device_total()
    assert info.value.status == 429 and info.value.retry_after == 1.0
    assert len(cloud.seen) == 3 and clock.waits == [1.0, 1.0]


async def test_400_is_permanent_and_not_retried(
    cloud: FakeRcms, client: RcmsClient, clock: FakeClock
) -> None:
    cloud.handler = lambda seen: web.json_response({"code": 40001, "msg": "Missing parameter"}, status=400)
    with pytest.raises(PermanentError) as info:
        await client.device_total()
    assert info.value.status == 400 and info.value.code == 40001 and info.value.message == "Missing parameter"
    assert len(cloud.seen) == 1 and clock.waits == []


async def test_business_code_under_http_200_is_a_typed_error(cloud: FakeRcms, client: RcmsClient) -> None:
    cloud.handler = lambda seen: web.json_response({"code": 40004, "msg": "Group not found", "data": None})
    with pytest.raises(RcmsError) as info:
        await client.set_group("SN7", "Nope")
    assert info.value.code == 40004 and info.value.message == "Group not found"
    assert info.value.status == 200 and info.value.cloud == "rcms" and info.value.operation == "set_group"
    assert len(cloud.seen) == 1


async def test_wrong_secret_gives_40002(
    cloud: FakeRcms, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    cloud.handler = lambda seen: ok({})
    client = make_client(cloud, session, clock, secret="not-the-secret")
    with pytest.raises(RcmsError) as info:
        await client.device_total()
    assert info.value.code == 40002 and "signature" in info.value.message
    assert len(cloud.seen) == 1 and not cloud.seen[0].signature_ok


async def test_non_json_200_is_permanent(cloud: FakeRcms, client: RcmsClient) -> None:
    cloud.handler = lambda seen: web.Response(text="<html>maintenance</html>", content_type="text/html")
    with pytest.raises(PermanentError, match="not JSON"):
        await client.device_total()


async def test_status_data_not_a_list_is_permanent(cloud: FakeRcms, client: RcmsClient) -> None:
    cloud.handler = lambda seen: ok({"unexpected": True})
    with pytest.raises(PermanentError, match="not a list"):
        await client.status_data("SN", 0, 1)


async def test_unreachable_cloud_is_transient(session: aiohttp.ClientSession, clock: FakeClock) -> None:
    config = RcmsConfig(endpoint="http://127.0.0.1:1", client_id=CLIENT_ID, client_secret=SECRET, timeout=2)
    client = RcmsClient(session, config, policy=RetryPolicy(attempts=2), clock=clock, sleep=clock.sleep)
    with pytest.raises(TransientError):
        await client.device_total()
    assert len(clock.waits) == 1
