"""The loctube emulator against requests built by hand from the vendor's document (shared/specs/002_*.txt).

The document's vectors, the signing of answers ("sign-off"), the raw-body rule for POST, both digests,
the trackers and the snapshot. The signature filter's refusals, tokens and OAuth2 as the real server
answers them have files of their own.
"""

from __future__ import annotations

import json

import pytest

from tests.emulator.loctube import (
    DETAIL,
    DEVICES,
    KEY,
    NOW,
    VECTOR_QUERY,
    VECTOR_SIGN,
    VECTOR_TS,
    Env,
    assert_hsweb_error,
    assert_spring_error,
    digest,
    sign_body,
    sign_query,
)
from tests.emulator.loctube.conftest import Start

# --------------------------------------------------------------------------------------------------
# The document's vectors


def test_published_vectors_hold_for_the_test_signer() -> None:
    pairs = [("pageSize", "20"), ("pageIndex", "0")]  # unsorted on purpose, as in the document's prose
    assert sign_query(pairs, VECTOR_TS, KEY) == VECTOR_SIGN
    response_body = b'{"status":200,result:[]}'
    assert sign_body(response_body, "1574994269075", KEY) == "c23faa3c46784ada64423a8bba433f25"


async def test_published_get_vector_is_accepted_and_the_answer_signed(start: Start) -> None:
    env = await start(now=int(VECTOR_TS) / 1000 + 30)
    headers = {"X-Client-Id": "testId", "X-Timestamp": VECTOR_TS, "X-Sign": VECTOR_SIGN}
    reply = await env.call("GET", f"{DETAIL}?{VECTOR_QUERY}", headers=headers)
    assert reply.status == 200, reply.body
    assert reply.body["status"] == 200
    assert reply.body["result"]["id"] == "dev0001"
    # the sign-off: X-Sign = md5(body + X-Timestamp + key), checked by env.call
    assert reply.headers["X-Timestamp"] == env.ts()
    assert reply.headers["X-Sign"] == digest("md5", reply.raw + env.ts().encode() + KEY.encode())


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
    assert_spring_error(reply, 400, DETAIL, "签名错误")


async def test_sign_comparison_ignores_case(start: Start) -> None:
    env = await start(now=int(VECTOR_TS) / 1000)
    headers = {"X-Client-Id": "testId", "X-Timestamp": VECTOR_TS, "X-Sign": VECTOR_SIGN.upper()}
    reply = await env.call("GET", f"{DETAIL}?{VECTOR_QUERY}", headers=headers)
    assert reply.status == 200


# --------------------------------------------------------------------------------------------------
# POST bodies and digests


async def test_post_signs_the_raw_body_bytes(env: Env) -> None:
    query = {"pageIndex": 0, "pageSize": 10, "terms": [{"column": "id", "value": "dev0002"}]}
    compact = json.dumps(query, separators=(",", ":")).encode()
    reply = await env.signed_post("/api/v1/device/_query", compact)
    assert reply.status == 200, reply.body
    assert reply.signed
    assert [d["id"] for d in reply.body["result"]["data"]] == ["dev0002"]

    # the same JSON re-serialised with other whitespace, sent under the compact body's signature: refused
    spaced = json.dumps(query).encode()
    assert spaced != compact and json.loads(spaced) == json.loads(compact)
    ts = env.ts()
    headers = env.sign_headers(sign_body(compact, ts, KEY), ts)
    headers["Content-Type"] = "application/json"
    reply = await env.call("POST", "/api/v1/device/_query", data=spaced, headers=headers)
    assert_spring_error(reply, 400, "/api/v1/device/_query", "签名错误")

    # ... and accepted when those exact bytes are the ones signed
    pretty = json.dumps(query, indent=4).encode()
    assert (await env.signed_post("/api/v1/device/_query", pretty)).status == 200


async def test_post_signature_is_not_the_query_signature(env: Env) -> None:
    """A JSON POST signed like a GET (over its empty query) is refused."""
    ts = env.ts()
    headers = env.sign_headers(sign_query([], ts, KEY), ts)
    headers["Content-Type"] = "application/json"
    reply = await env.call("POST", "/device/instance/_query", data=b"{}", headers=headers)
    assert reply.status == 400


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
    assert (await env.call("GET", DETAIL, headers=env.sign_headers(md5_sign, ts))).status == 400


async def test_md5_mode_refuses_sha256(env: Env) -> None:
    ts = env.ts()
    sha_sign = sign_query([], ts, KEY, "sha256")
    assert (await env.call("GET", DETAIL, headers=env.sign_headers(sha_sign, ts))).status == 400


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
    assert_hsweb_error(reply, 404, 404, "not_found")
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
    assert_hsweb_error(reply, 400, 400, "illegal_argument")


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
