"""``/api/v1/token`` and ``/api/v1/token/{type}`` as the real JetLinks controller answers them, and
X-Access-Token authentication (sliding expiry), with requests built by hand."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.emulator.loctube import (
    DETAIL,
    KEY,
    Env,
    assert_hsweb_error,
    assert_unauthorized,
    sign_body,
)

# --------------------------------------------------------------------------------------------------
# Asking for a token


async def test_empty_body_is_400(env: Env) -> None:
    reply = await env.signed_post("/api/v1/token", b"")
    assert_hsweb_error(reply, 400, 400, "illegal_argument")
    assert env.emulator.snapshot()["tokens_issued"]["x-access"] == 0


@pytest.mark.parametrize(
    ("expires", "lives_s"),
    [(7200, 7200), ("7200", 7200), (" 60 ", 60), (60.9, 60), ("-1", None), (None, None)],
)
async def test_expires_is_read_as_a_java_long(env: Env, expires: Any, lives_s: int | None) -> None:
    """A number, a string of digits or a float (truncated); null is 0; 0 or less never expires."""
    reply = await env.signed_post("/api/v1/token", json.dumps({"expires": expires}).encode())
    assert reply.status == 200, reply.body
    headers = {"X-Access-Token": reply.body["result"]}
    env.clock.now += (lives_s or 365 * 86400) - 1
    assert (await env.call("GET", DETAIL, headers=headers)).status == 200
    env.clock.now += (lives_s or 365 * 86400) + 1
    reply = await env.call("GET", DETAIL, headers=headers)
    if lives_s is None:
        assert reply.status == 200
    else:
        assert_unauthorized(reply)


async def test_body_without_expires_gives_7200_seconds(env: Env) -> None:
    token = await env.x_token()  # body {}
    env.clock.now += 7199
    assert (await env.call("GET", DETAIL, headers={"X-Access-Token": token})).status == 200
    env.clock.now += 7201
    assert_unauthorized(await env.call("GET", DETAIL, headers={"X-Access-Token": token}))


@pytest.mark.parametrize("body", [b'{"expires": "soon"}', b'{"expires": true}', b"[]", b"not json"])
async def test_unreadable_expires_is_400(env: Env, body: bytes) -> None:
    assert_hsweb_error(await env.signed_post("/api/v1/token", body), 400, 400, "illegal_argument")


async def test_official_sdk_token_mode(env: Env) -> None:
    """``POST /api/v1/token/default`` with ``{}``, as the official SDK's token mode asks."""
    reply = await env.signed_post("/api/v1/token/default", b"{}")
    assert reply.status == 200, reply.body
    assert reply.signed
    assert reply.body["status"] == 200 and reply.body["code"] == "success"
    result = reply.body["result"]
    assert set(result) == {"token", "expires"}
    # the answer names the type's own lifetime (30 min); the token lives as long as asked (7200 s)
    assert result["expires"] == 1800
    headers = {"X-Access-Token": result["token"]}
    env.clock.now += 7199
    assert (await env.call("GET", DETAIL, headers=headers)).status == 200


async def test_unknown_token_type_is_500(env: Env) -> None:
    reply = await env.signed_post("/api/v1/token/jwt", b"{}")
    assert_hsweb_error(reply, 500, 500, "unsupported")
    assert reply.body["message"] == "token type:jwt unsupported!"
    assert_hsweb_error(await env.signed_post("/api/v1/token/default", b""), 400, 400, "illegal_argument")


async def test_token_request_needs_an_authenticated_request(env: Env) -> None:
    assert_unauthorized(await env.call("POST", "/api/v1/token", json={"expires": 60}))
    # signed over other bytes than sent: the filter refuses it
    ts = env.ts()
    headers = {
        **env.sign_headers(sign_body(b'{"expires":60}', ts, KEY), ts),
        "Content-Type": "application/json",
    }
    reply = await env.call("POST", "/api/v1/token", data=b'{"expires": 60}', headers=headers)
    assert reply.status == 400
    # authenticated by a token (as the real server allows): a new token, in an unsigned answer
    token = await env.x_token()
    reply = await env.call("POST", "/api/v1/token", json={"expires": 60}, headers={"X-Access-Token": token})
    assert reply.status == 200 and not reply.signed
    assert reply.body["result"] != token


# --------------------------------------------------------------------------------------------------
# Using it


async def test_token_expiry_slides_with_each_use(env: Env) -> None:
    token = await env.x_token(expires=60)
    headers = {"X-Access-Token": token}
    assert (await env.call("GET", DETAIL, headers=headers)).status == 200
    for _ in range(3):  # 150 s in all, but never 60 s without a use
        env.clock.now += 50
        assert (await env.call("GET", DETAIL, headers=headers)).status == 200
    env.clock.now += 61
    assert_unauthorized(await env.call("GET", DETAIL, headers=headers))
    assert env.emulator.snapshot()["rejections"] == {"token_expired": 1}


async def test_unknown_token_is_401(env: Env) -> None:
    assert_unauthorized(await env.call("GET", DETAIL, headers={"X-Access-Token": "0" * 32}))
    assert env.emulator.snapshot()["rejections"] == {"token_unknown": 1}


async def test_expire_tokens_invalidates_access_tokens_now(env: Env) -> None:
    token = await env.x_token(expires=0)
    assert (await env.call("GET", DETAIL, headers={"X-Access-Token": token})).status == 200
    env.emulator.expire_tokens()
    assert_unauthorized(await env.call("GET", DETAIL, headers={"X-Access-Token": token}))
    fresh = await env.x_token()
    assert (await env.call("GET", DETAIL, headers={"X-Access-Token": fresh})).status == 200


async def test_answer_is_the_documented_envelope(env: Env) -> None:
    reply = await env.signed_post("/api/v1/token", json.dumps({"expires": 7200}).encode())
    assert reply.body == {"result": reply.body["result"], "status": 200, "code": "success"}
