"""The loctube emulator against requests built by hand from the vendor's document (shared/specs/002_*.txt).

Signing here is the document's Java ``OpenApiUtils`` and sign-off transcribed with hashlib: no gatewayd
signer is used. Every response any test receives goes through :func:`Env.call`, which checks its X-Sign
over body + X-Timestamp + secure key, so the "every response is signed" rule is tested everywhere.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gatewayd.emulator.loctube import LoctubeEmulator
from gatewayd.inventory.config import LoctubeConfig
from tests.helpers.clocks import FakeClock

CLIENT_ID = "testId"
KEY = "testSecure"
DEVICES = ["dev0001", "dev0002", "dev0003", "tracker-9"]
NOW = 1_700_000_000.0
#: The document's GET example: query, timestamp, key testSecure, md5.
VECTOR_QUERY = "pageIndex=0&pageSize=20"
VECTOR_TS = "1574993804802"
VECTOR_SIGN = "837fe7fa29e7a5e4852d447578269523"

Client = TestClient[web.Request, web.Application]


def digest(algorithm: str, data: bytes) -> str:
    return hashlib.new(algorithm, data).hexdigest()


def sign_query(pairs: list[tuple[str, str]], timestamp: str, key: str, algorithm: str = "md5") -> str:
    """OpenApiUtils.signByQuery: TreeMap of key -> values, values joined by ',', entries by '&'."""
    grouped: dict[str, list[str]] = {}
    for k, v in pairs:
        grouped.setdefault(k, []).append(v)
    param = "&".join(k + "=" + ",".join(grouped[k]) for k in sorted(grouped))
    return digest(algorithm, param.encode() + timestamp.encode() + key.encode())


def sign_body(body: bytes, timestamp: str, key: str, algorithm: str = "md5") -> str:
    """OpenApiUtils.signByPost over the bytes that are sent."""
    return digest(algorithm, body + timestamp.encode() + key.encode())


@dataclass
class Reply:
    status: int
    body: Any
    raw: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Env:
    client: Client
    emulator: LoctubeEmulator
    clock: FakeClock
    key: str
    algorithm: str
    client_id: str

    def ts(self, offset_ms: int = 0) -> str:
        return str(int(self.clock.now * 1000) + offset_ms)

    async def call(self, method: str, url: str, **kwargs: Any) -> Reply:
        async with self.client.request(method, url, **kwargs) as response:
            raw = await response.read()
            stamp = response.headers.get("X-Timestamp")
            sign = response.headers.get("X-Sign")
            assert stamp is not None and sign is not None, f"unsigned response {response.status} {raw!r}"
            assert stamp == str(int(self.clock.now * 1000))
            expected = digest(self.algorithm, raw + stamp.encode() + self.key.encode())
            assert expected.lower() == sign.lower(), f"response X-Sign does not verify: {raw!r}"
            return Reply(response.status, json.loads(raw), raw, dict(response.headers))

    def sign_headers(self, sign: str, timestamp: str) -> dict[str, str]:
        return {"X-Client-Id": self.client_id, "X-Timestamp": timestamp, "X-Sign": sign}

    async def signed_get(self, path: str, pairs: list[tuple[str, str]] | None = None) -> Reply:
        pairs = pairs or []
        ts = self.ts()
        sign = sign_query(pairs, ts, self.key, self.algorithm)
        query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)
        url = f"{path}?{query}" if query else path
        return await self.call("GET", url, headers=self.sign_headers(sign, ts))

    async def signed_post(self, path: str, body: bytes) -> Reply:
        ts = self.ts()
        headers = self.sign_headers(sign_body(body, ts, self.key, self.algorithm), ts)
        headers["Content-Type"] = "application/json"
        return await self.call("POST", path, data=body, headers=headers)

    async def x_token(self, expires: int | None = None) -> str:
        body = b"" if expires is None else json.dumps({"expires": expires}).encode()
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

    async def client_credentials(self, *, form: bool = False) -> dict[str, Any]:
        reply = await self.oauth2(
            {"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self.key},
            form=form,
        )
        assert reply.status == 200, reply.body
        body: dict[str, Any] = reply.body
        return body


Start = Callable[..., Awaitable[Env]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    clients: list[Client] = []

    async def _start(
        *, sign: str = "md5", key: str = KEY, client_id: str = CLIENT_ID, now: float = NOW
    ) -> Env:
        clock = FakeClock(now)
        config = LoctubeConfig(
            endpoint="http://127.0.0.1:1", client_id=client_id, secure_key=key, sign=sign, devices=DEVICES
        )
        emulator = LoctubeEmulator(config, clock=clock)
        app = web.Application()
        app.add_routes(emulator.routes())
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return Env(client, emulator, clock, key, sign, client_id)

    yield _start
    for client in clients:
        await client.close()


@pytest.fixture
async def env(start: Start) -> Env:
    return await start()


def assert_spring_error(reply: Reply, status: int, path: str) -> None:
    assert reply.status == status, reply.body
    assert set(reply.body) >= {"status", "error", "message", "path", "timestamp"}
    assert reply.body["status"] == status
    assert reply.body["path"] == path


def assert_unauthorized(reply: Reply) -> None:
    assert reply.status == 401, reply.body
    assert reply.body["status"] == 401
    assert reply.body["code"] == "unauthorized"
    assert reply.body["result"] is None
    assert reply.body["message"]


DETAIL = "/api/v1/device/dev0001/_detail"


# --------------------------------------------------------------------------------------------------
# The document's vectors


def test_published_vectors_hold_for_the_test_signer() -> None:
    pairs = [("pageSize", "20"), ("pageIndex", "0")]  # unsorted on purpose, as in the document's prose
    assert sign_query(pairs, VECTOR_TS, KEY) == VECTOR_SIGN
    response_body = b'{"status":200,result:[]}'
    assert sign_body(response_body, "1574994269075", KEY) == "c23faa3c46784ada64423a8bba433f25"


async def test_published_get_vector_is_accepted(start: Start) -> None:
    env = await start(now=int(VECTOR_TS) / 1000 + 30)
    headers = {"X-Client-Id": "testId", "X-Timestamp": VECTOR_TS, "X-Sign": VECTOR_SIGN}
    reply = await env.call("GET", f"{DETAIL}?{VECTOR_QUERY}", headers=headers)
    assert reply.status == 200, reply.body
    assert reply.body["status"] == 200
    assert reply.body["result"]["id"] == "dev0001"


@pytest.mark.parametrize(
    ("query", "timestamp", "sign"),
    [
        (VECTOR_QUERY, VECTOR_TS, VECTOR_SIGN[:-1] + "4"),  # one char of the signature
        ("pageIndex=0&pageSize=21", VECTOR_TS, VECTOR_SIGN),  # one char of the query
        (VECTOR_QUERY, VECTOR_TS[:-1] + "3", VECTOR_SIGN),  # one char of the timestamp
    ],
)
async def test_published_get_vector_with_one_char_changed_is_refused(
    start: Start, query: str, timestamp: str, sign: str
) -> None:
    env = await start(now=int(VECTOR_TS) / 1000 + 30)
    headers = {"X-Client-Id": "testId", "X-Timestamp": timestamp, "X-Sign": sign}
    reply = await env.call("GET", f"{DETAIL}?{query}", headers=headers)
    assert_spring_error(reply, 403, DETAIL)


async def test_sign_comparison_ignores_case(start: Start) -> None:
    env = await start(now=int(VECTOR_TS) / 1000)
    headers = {"X-Client-Id": "testId", "X-Timestamp": VECTOR_TS, "X-Sign": VECTOR_SIGN.upper()}
    reply = await env.call("GET", f"{DETAIL}?{VECTOR_QUERY}", headers=headers)
    assert reply.status == 200


async def test_query_values_are_url_decoded_and_repeated_keys_joined(env: Env) -> None:
    pairs = [("tag", "b"), ("name", "a b/c"), ("tag", "a"), ("empty", "")]
    reply = await env.signed_get(DETAIL, pairs)
    assert reply.status == 200, reply.body
    # the same request signed over the still-encoded query fails
    ts = env.ts()
    encoded = "empty=&name=a%20b%2Fc&tag=b,a"
    bad = digest("md5", encoded.encode() + ts.encode() + KEY.encode())
    reply = await env.call(
        "GET", f"{DETAIL}?tag=b&name=a%20b%2Fc&tag=a&empty=", headers=env.sign_headers(bad, ts)
    )
    assert reply.status == 403


# --------------------------------------------------------------------------------------------------
# Signature filter


async def test_unknown_client_is_403(env: Env) -> None:
    ts = env.ts()
    headers = {"X-Client-Id": "intruder", "X-Timestamp": ts, "X-Sign": sign_query([], ts, KEY)}
    assert_spring_error(await env.call("GET", DETAIL, headers=headers), 403, DETAIL)


async def test_missing_sign_is_403(env: Env) -> None:
    headers = {"X-Client-Id": CLIENT_ID, "X-Timestamp": env.ts()}
    assert_spring_error(await env.call("GET", DETAIL, headers=headers), 403, DETAIL)


@pytest.mark.parametrize("offset_ms", [-6 * 60_000, 6 * 60_000, -86_400_000])
async def test_timestamp_out_of_range_is_400(env: Env, offset_ms: int) -> None:
    ts = env.ts(offset_ms)
    reply = await env.call("GET", DETAIL, headers=env.sign_headers(sign_query([], ts, KEY), ts))
    assert_spring_error(reply, 400, DETAIL)
    assert reply.body["error"] == "Bad Request"
    assert "timestamp" in reply.body["message"].lower()


@pytest.mark.parametrize("offset_ms", [-4 * 60_000, 4 * 60_000])
async def test_timestamp_within_five_minutes_is_accepted(env: Env, offset_ms: int) -> None:
    ts = env.ts(offset_ms)
    reply = await env.call("GET", DETAIL, headers=env.sign_headers(sign_query([], ts, KEY), ts))
    assert reply.status == 200


@pytest.mark.parametrize("timestamp", [None, "", "yesterday", "1700000000"])
async def test_missing_or_malformed_timestamp_is_400(env: Env, timestamp: str | None) -> None:
    headers = {"X-Client-Id": CLIENT_ID, "X-Sign": sign_query([], timestamp or "", KEY)}
    if timestamp is not None:
        headers["X-Timestamp"] = timestamp
    assert_spring_error(await env.call("GET", DETAIL, headers=headers), 400, DETAIL)


async def test_no_credentials_at_all_is_401(env: Env) -> None:
    assert_unauthorized(await env.call("GET", DETAIL))
    assert_unauthorized(await env.call("POST", "/api/v1/device/_query", json={}))


async def test_post_signs_the_raw_body_bytes(env: Env) -> None:
    query = {"pageIndex": 0, "pageSize": 10, "terms": [{"column": "id", "value": "dev0002"}]}
    compact = json.dumps(query, separators=(",", ":")).encode()
    reply = await env.signed_post("/api/v1/device/_query", compact)
    assert reply.status == 200, reply.body
    assert [d["id"] for d in reply.body["result"]["data"]] == ["dev0002"]

    # the same JSON re-serialised with other whitespace, sent under the compact body's signature: refused
    spaced = json.dumps(query).encode()
    assert spaced != compact and json.loads(spaced) == json.loads(compact)
    ts = env.ts()
    headers = env.sign_headers(sign_body(compact, ts, KEY), ts)
    headers["Content-Type"] = "application/json"
    reply = await env.call("POST", "/api/v1/device/_query", data=spaced, headers=headers)
    assert_spring_error(reply, 403, "/api/v1/device/_query")

    # ... and accepted when those exact bytes are the ones signed
    pretty = json.dumps(query, indent=4).encode()
    assert (await env.signed_post("/api/v1/device/_query", pretty)).status == 200


async def test_post_signature_is_not_the_query_signature(env: Env) -> None:
    """A POST signed like a GET (over its empty query) is refused."""
    body = b"{}"
    ts = env.ts()
    headers = env.sign_headers(sign_query([], ts, KEY), ts)
    reply = await env.call("POST", "/device/instance/_query", data=body, headers=headers)
    assert reply.status == 403


async def test_sha256_mode(start: Start) -> None:
    env = await start(sign="sha256", key="anotherSecureKey")
    reply = await env.signed_get(DETAIL, [("pageIndex", "0")])
    assert reply.status == 200, reply.body
    assert len(reply.headers["X-Sign"]) == 64
    reply = await env.signed_post("/api/v1/device/_query", b'{"pageSize":2}')
    assert reply.status == 200
    # an md5 signature is refused in sha256 mode
    ts = env.ts()
    md5_sign = sign_query([], ts, "anotherSecureKey", "md5")
    assert (await env.call("GET", DETAIL, headers=env.sign_headers(md5_sign, ts))).status == 403


async def test_md5_mode_refuses_sha256(env: Env) -> None:
    ts = env.ts()
    sha_sign = sign_query([], ts, KEY, "sha256")
    assert (await env.call("GET", DETAIL, headers=env.sign_headers(sha_sign, ts))).status == 403


# --------------------------------------------------------------------------------------------------
# /api/v1/token


async def test_token_expiry_slides_with_each_use(env: Env) -> None:
    token = await env.x_token(expires=60)
    headers = {"X-Access-Token": token}
    assert (await env.call("GET", DETAIL, headers=headers)).status == 200
    for _ in range(3):  # 150 s in all, but never 60 s without a use
        env.clock.now += 50
        assert (await env.call("GET", DETAIL, headers=headers)).status == 200
    env.clock.now += 61
    assert_unauthorized(await env.call("GET", DETAIL, headers=headers))
    assert "expired" in (await env.call("GET", DETAIL, headers=headers)).body["message"]


async def test_token_default_lifetime_is_7200_seconds(env: Env) -> None:
    token = await env.x_token()
    env.clock.now += 7199
    assert (await env.call("GET", DETAIL, headers={"X-Access-Token": token})).status == 200
    env.clock.now += 7201
    assert_unauthorized(await env.call("GET", DETAIL, headers={"X-Access-Token": token}))


@pytest.mark.parametrize("expires", [0, -1])
async def test_token_with_expires_zero_or_less_never_expires(env: Env, expires: int) -> None:
    token = await env.x_token(expires=expires)
    env.clock.now += 365 * 86400
    assert (await env.call("GET", DETAIL, headers={"X-Access-Token": token})).status == 200


async def test_token_request_must_be_signed(env: Env) -> None:
    token = await env.x_token()
    reply = await env.call("POST", "/api/v1/token", json={"expires": 60}, headers={"X-Access-Token": token})
    assert_spring_error(reply, 403, "/api/v1/token")
    ts = env.ts()
    reply = await env.call(
        "POST",
        "/api/v1/token",
        data=b'{"expires": 60}',
        headers=env.sign_headers(sign_body(b'{"expires":60}', ts, KEY), ts),
    )
    assert_spring_error(reply, 403, "/api/v1/token")


async def test_token_request_with_bad_expires_is_400(env: Env) -> None:
    reply = await env.signed_post("/api/v1/token", b'{"expires": "soon"}')
    assert reply.status == 400
    assert reply.body["status"] == 400


async def test_unknown_token_is_401(env: Env) -> None:
    assert_unauthorized(await env.call("GET", DETAIL, headers={"X-Access-Token": "0" * 32}))


async def test_expire_tokens_invalidates_access_tokens_now(env: Env) -> None:
    token = await env.x_token(expires=0)
    assert (await env.call("GET", DETAIL, headers={"X-Access-Token": token})).status == 200
    env.emulator.expire_tokens()
    assert_unauthorized(await env.call("GET", DETAIL, headers={"X-Access-Token": token}))
    # a new token works again
    fresh = await env.x_token()
    assert (await env.call("GET", DETAIL, headers={"X-Access-Token": fresh})).status == 200


# --------------------------------------------------------------------------------------------------
# OAuth2


@pytest.mark.parametrize("form", [False, True], ids=["json", "form"])
async def test_oauth2_client_credentials_then_bearer(env: Env, form: bool) -> None:
    tokens = await env.client_credentials(form=form)
    assert tokens["expires_in"] == 7200
    assert tokens["access_token"] and tokens["refresh_token"]
    for scheme in ("bearer", "Bearer", "BEARER"):
        headers = {"Authorization": f"{scheme} {tokens['access_token']}"}
        reply = await env.call("POST", "/device/instance/_query", json={}, headers=headers)
        assert reply.status == 200, reply.body
        assert reply.body["result"]["total"] == len(DEVICES)
    reply = await env.call("POST", f"/device/instance/_query?access_token={tokens['access_token']}", json={})
    assert reply.status == 200
    reply = await env.call("GET", f"{DETAIL}?access_token={tokens['access_token']}")
    assert reply.status == 200


async def test_oauth2_client_credentials_by_basic_auth(env: Env) -> None:
    basic = base64.b64encode(f"{CLIENT_ID}:{KEY}".encode()).decode()
    reply = await env.call(
        "POST",
        "/loctube/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert reply.status == 200, reply.body


@pytest.mark.parametrize("form", [False, True], ids=["json", "form"])
async def test_oauth2_refresh_token(env: Env, form: bool) -> None:
    tokens = await env.client_credentials()
    env.clock.now += 7300  # the access token is dead (no sliding for OAuth2)
    old = {"Authorization": f"bearer {tokens['access_token']}"}
    assert_unauthorized(await env.call("GET", DETAIL, headers=old))
    reply = await env.oauth2(
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": CLIENT_ID,
            "client_secret": KEY,
        },
        form=form,
    )
    assert reply.status == 200, reply.body
    assert reply.body["expires_in"] == 7200
    assert reply.body["access_token"] != tokens["access_token"]
    new = {"Authorization": f"bearer {reply.body['access_token']}"}
    assert (await env.call("GET", DETAIL, headers=new)).status == 200


async def test_oauth2_access_token_lives_7200_seconds_without_sliding(env: Env) -> None:
    tokens = await env.client_credentials()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    env.clock.now += 7000
    assert (await env.call("GET", DETAIL, headers=headers)).status == 200
    env.clock.now += 201
    assert_unauthorized(await env.call("GET", DETAIL, headers=headers))


async def test_expire_tokens_leaves_refresh_tokens_valid(env: Env) -> None:
    tokens = await env.client_credentials()
    env.emulator.expire_tokens()
    assert_unauthorized(
        await env.call("GET", DETAIL, headers={"Authorization": f"bearer {tokens['access_token']}"})
    )
    reply = await env.oauth2(
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": CLIENT_ID,
            "client_secret": KEY,
        }
    )
    assert reply.status == 200, reply.body


async def test_refresh_token_expires_after_30_days(env: Env) -> None:
    tokens = await env.client_credentials()
    env.clock.now += 30 * 86400 + 1
    reply = await env.oauth2(
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": CLIENT_ID,
            "client_secret": KEY,
        }
    )
    assert reply.status == 400
    assert reply.body["code"] == "invalid_grant"


async def test_oauth2_unsupported_grant_is_400(env: Env) -> None:
    reply = await env.oauth2({"grant_type": "password", "client_id": CLIENT_ID, "client_secret": KEY})
    assert reply.status == 400
    assert reply.body["code"] == "unsupported_grant_type"


@pytest.mark.parametrize(
    "params",
    [
        {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "wrong"},
        {"grant_type": "client_credentials", "client_id": "intruder", "client_secret": KEY},
        {"grant_type": "client_credentials", "client_id": CLIENT_ID},
    ],
)
async def test_oauth2_bad_client_is_401(env: Env, params: dict[str, str]) -> None:
    reply = await env.oauth2(params)
    assert reply.status == 401
    assert reply.body["code"] == "invalid_client"


async def test_tokens_are_not_interchangeable(env: Env) -> None:
    """An OAuth2 token is no X-Access-Token, and the reverse."""
    tokens = await env.client_credentials()
    x_token = await env.x_token()
    assert_unauthorized(await env.call("GET", DETAIL, headers={"X-Access-Token": tokens["access_token"]}))
    assert_unauthorized(await env.call("GET", DETAIL, headers={"Authorization": f"bearer {x_token}"}))
    assert_unauthorized(
        await env.call("GET", DETAIL, headers={"Authorization": f"bearer {tokens['refresh_token']}"})
    )


# --------------------------------------------------------------------------------------------------
# Devices


async def test_detail_has_the_documented_fields(env: Env) -> None:
    reply = await env.signed_get("/api/v1/device/dev0003/_detail")
    assert reply.status == 200
    assert reply.body["code"] == "success"
    detail = reply.body["result"]
    for key in (
        "id",
        "name",
        "protocol",
        "transport",
        "productId",
        "productName",
        "deviceType",
        "state",
        "onlineTime",
        "offlineTime",
        "createTime",
        "registerTime",
        "configuration",
        "tags",
        "properties",
    ):
        assert key in detail, key
    assert detail["id"] == "dev0003"
    assert detail["deviceType"] == {"text": "directly connected device", "value": "device"}
    assert detail["state"]["value"] in ("online", "offline")
    assert set(detail["properties"]) >= {"battery", "latitude", "longitude", "speed"}
    assert 0 <= detail["properties"]["battery"] <= 100


async def test_state_alternates_and_values_move(env: Env) -> None:
    token = await env.x_token(expires=0)
    states, latitudes = [], []
    for _ in range(12):  # 12 x 5 minutes: one hour, two online/offline cycles
        reply = await env.call("GET", DETAIL, headers={"X-Access-Token": token})
        detail = reply.body["result"]
        states.append(detail["state"]["value"])
        latitudes.append(detail["properties"]["latitude"])
        if detail["state"]["value"] == "online":
            assert detail["onlineTime"] <= env.clock.now * 1000
            assert detail["offlineTime"] < detail["onlineTime"]
        else:
            assert detail["onlineTime"] < detail["offlineTime"] <= env.clock.now * 1000
        env.clock.now += 300
    assert {"online", "offline"} <= set(states)
    assert len(set(latitudes)) > 3
    # deterministic: the same moment gives the same detail
    env.clock.now = NOW
    first = (await env.call("GET", DETAIL, headers={"X-Access-Token": token})).body["result"]
    second = (await env.call("GET", DETAIL, headers={"X-Access-Token": token})).body["result"]
    assert first == second


async def test_latest_properties(env: Env) -> None:
    reply = await env.signed_get("/api/v1/device/dev0002/properties/_latest")
    assert reply.status == 200
    names = {p["property"] for p in reply.body["result"]}
    assert names >= {"battery", "latitude", "longitude", "speed"}


@pytest.mark.parametrize(
    "path", ["/api/v1/device/nosuch/_detail", "/api/v1/device/nosuch/properties/_latest"]
)
async def test_unknown_device_is_404(env: Env, path: str) -> None:
    reply = await env.signed_get(path)
    assert reply.status == 404
    assert reply.body["status"] == 404
    assert reply.body["code"] == "not_found"
    assert "nosuch" in reply.body["message"]


@pytest.mark.parametrize("path", ["/api/v1/device/_query", "/device/instance/_query"])
async def test_query_pages_and_filters(env: Env, path: str) -> None:
    reply = await env.signed_post(path, b'{"pageIndex":0,"pageSize":3}')
    page0 = reply.body["result"]
    assert (page0["pageIndex"], page0["pageSize"], page0["total"]) == (0, 3, len(DEVICES))
    reply = await env.signed_post(path, b'{"pageIndex":1,"pageSize":3}')
    page1 = reply.body["result"]
    assert [d["id"] for d in page0["data"] + page1["data"]] == DEVICES

    body = json.dumps({"terms": [{"column": "name", "value": "Tracker dev0001"}]}).encode()
    assert [d["id"] for d in (await env.signed_post(path, body)).body["result"]["data"]] == ["dev0001"]

    body = json.dumps({"terms": [{"column": "id", "termType": "like", "value": "dev%"}]}).encode()
    assert (await env.signed_post(path, body)).body["result"]["total"] == 3

    online = json.dumps({"terms": [{"column": "state", "value": "online"}]}).encode()
    offline = json.dumps({"terms": [{"column": "state", "value": "offline"}]}).encode()
    on = (await env.signed_post(path, online)).body["result"]
    off = (await env.signed_post(path, offline)).body["result"]
    assert on["total"] + off["total"] == len(DEVICES)
    assert all(d["state"]["value"] == "online" for d in on["data"])
    assert all(d["state"]["value"] == "offline" for d in off["data"])


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"pageSize": 0}', b'{"pageIndex": -1}', b'{"terms": [{"column": "color"}]}'],
)
async def test_bad_query_body_is_400(env: Env, body: bytes) -> None:
    reply = await env.signed_post("/api/v1/device/_query", body)
    assert reply.status == 400
    assert reply.body["status"] == 400


# --------------------------------------------------------------------------------------------------
# Snapshot


async def test_snapshot_counts(env: Env) -> None:
    await env.x_token()
    await env.client_credentials()
    await env.signed_get(DETAIL)
    await env.signed_get("/api/v1/device/nosuch/_detail")
    ts = env.ts(-3600_000)
    await env.call("GET", DETAIL, headers=env.sign_headers(sign_query([], ts, KEY), ts))
    await env.call("GET", DETAIL, headers={"X-Access-Token": "bogus"})
    snap = env.emulator.snapshot()
    json.dumps(snap)  # JSON-able
    assert snap["cloud"] == "loctube"
    assert snap["requests"]["GET /api/v1/device/{id}/_detail"] == 4
    assert snap["ok"]["GET /api/v1/device/{id}/_detail"] == 1
    assert snap["tokens_issued"] == {"x-access": 1, "oauth2-access": 1, "oauth2-refresh": 1}
    assert snap["tokens_active"]["x-access"] == 1
    assert snap["rejections"] == {"not_found": 1, "stale_timestamp": 1, "token_unknown": 1}
    assert KEY not in json.dumps(snap)
