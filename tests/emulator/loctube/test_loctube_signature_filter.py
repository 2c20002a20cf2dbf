"""The signature filter as the real JetLinks open-API filter answers, and which answers are signed.

Requests are built by hand; the expectations are the real filter's (JetLinks Pro 1.9 ``OpenApiFilter``):
its order of checks, its one-sided timestamp check, its first-value reading of a repeated query key
(the document's joined reading is accepted too), its sorted-fields check of a form-encoded POST, and
its signing of the answers to signed requests only.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from tests.emulator.loctube import (
    CLIENT_ID,
    DETAIL,
    FORM,
    KEY,
    Env,
    assert_hsweb_error,
    assert_spring_error,
    assert_unauthorized,
    digest,
    encode_query,
    sign_body,
    sign_query,
)

FIVE_MINUTES_MS = 5 * 60_000

# --------------------------------------------------------------------------------------------------
# Refusals, in the real filter's order


async def test_missing_sign_is_400(env: Env) -> None:
    headers = {"X-Client-Id": CLIENT_ID, "X-Timestamp": env.ts()}
    assert_spring_error(await env.call("GET", DETAIL, headers=headers), 400, DETAIL, "请求头X-Sign不能为空")


async def test_missing_timestamp_is_400(env: Env) -> None:
    headers = {"X-Client-Id": CLIENT_ID, "X-Sign": sign_query([], "", KEY)}
    reply = await env.call("GET", DETAIL, headers=headers)
    assert_spring_error(reply, 400, DETAIL, "请求头X-Timestamp不能为空")


async def test_sign_is_checked_before_timestamp_and_both_before_the_client(env: Env) -> None:
    reply = await env.call("GET", DETAIL, headers={"X-Client-Id": "intruder"})
    assert_spring_error(reply, 400, DETAIL, "请求头X-Sign不能为空")
    ts = env.ts(-FIVE_MINUTES_MS - 1)
    headers = {"X-Client-Id": "intruder", "X-Timestamp": ts, "X-Sign": sign_query([], ts, KEY)}
    assert_spring_error(await env.call("GET", DETAIL, headers=headers), 400, DETAIL, "请求头X-Timestamp错误")


async def test_unknown_client_is_404(env: Env) -> None:
    ts = env.ts()
    headers = {"X-Client-Id": "intruder", "X-Timestamp": ts, "X-Sign": sign_query([], ts, KEY)}
    assert_spring_error(await env.call("GET", DETAIL, headers=headers), 404, DETAIL, "Client不存在")


async def test_wrong_signature_is_400(env: Env) -> None:
    ts = env.ts()
    wrong = sign_query([], ts, "not-the-key")
    reply = await env.call("GET", DETAIL, headers=env.sign_headers(wrong, ts))
    assert_spring_error(reply, 400, DETAIL, "签名错误")
    assert env.emulator.snapshot()["rejections"] == {"bad_sign": 1}


@pytest.mark.parametrize("client_id", [None, "", "   "])
async def test_without_client_id_a_request_is_not_signed_and_needs_a_token(
    env: Env, client_id: str | None
) -> None:
    ts = env.ts()
    headers = {"X-Timestamp": ts, "X-Sign": "not even a signature"}
    if client_id is not None:
        headers["X-Client-Id"] = client_id
    assert_unauthorized(await env.call("GET", DETAIL, headers=headers))
    # ... and with a token the same headers pass: the filter never looked at them
    token = await env.x_token()
    reply = await env.call("GET", DETAIL, headers={**headers, "X-Access-Token": token})
    assert reply.status == 200, reply.body
    assert not reply.signed


# --------------------------------------------------------------------------------------------------
# The timestamp check is one-sided


@pytest.mark.parametrize("offset_ms", [-FIVE_MINUTES_MS, -FIVE_MINUTES_MS - 60_000, -86_400_000])
async def test_timestamp_five_minutes_old_or_older_is_400(env: Env, offset_ms: int) -> None:
    ts = env.ts(offset_ms)
    reply = await env.call("GET", DETAIL, headers=env.sign_headers(sign_query([], ts, KEY), ts))
    assert_spring_error(reply, 400, DETAIL, "请求头X-Timestamp错误")
    assert reply.body["error"] == "Bad Request"


@pytest.mark.parametrize("offset_ms", [-FIVE_MINUTES_MS + 1, 0, 6 * 60_000, 86_400_000])
async def test_timestamp_younger_than_five_minutes_or_in_the_future_is_accepted(
    env: Env, offset_ms: int
) -> None:
    ts = env.ts(offset_ms)
    reply = await env.call("GET", DETAIL, headers=env.sign_headers(sign_query([], ts, KEY), ts))
    assert reply.status == 200, reply.body


@pytest.mark.parametrize("timestamp", ["yesterday", "1.7e12", "99999999999999999999", "0x1F"])
async def test_timestamp_that_is_no_number_is_not_refused(env: Env, timestamp: str) -> None:
    """The real filter passes a timestamp Long.parseLong cannot read; it is still signed over."""
    reply = await env.call("GET", DETAIL, headers=env.sign_headers(sign_query([], timestamp, KEY), timestamp))
    assert reply.status == 200, reply.body
    other = sign_query([], timestamp + "0", KEY)
    reply = await env.call("GET", DETAIL, headers=env.sign_headers(other, timestamp))
    assert_spring_error(reply, 400, DETAIL, "签名错误")


async def test_numeric_timestamp_with_a_sign_is_read_as_java_reads_it(env: Env) -> None:
    ts = "+" + env.ts()
    assert (
        await env.call("GET", DETAIL, headers=env.sign_headers(sign_query([], ts, KEY), ts))
    ).status == 200
    ts = "-" + env.ts()
    reply = await env.call("GET", DETAIL, headers=env.sign_headers(sign_query([], ts, KEY), ts))
    assert_spring_error(reply, 400, DETAIL, "请求头X-Timestamp错误")


# --------------------------------------------------------------------------------------------------
# What is signed: repeated keys, decoded values, form-encoded POSTs


async def test_repeated_key_may_be_signed_joined_or_by_its_first_value(env: Env) -> None:
    pairs = [("tag", "b"), ("name", "a b/c"), ("tag", "a"), ("empty", "")]
    joined = await env.signed_get(DETAIL, pairs)  # the document: tag=b,a
    assert joined.status == 200, joined.body
    first = await env.signed_get(DETAIL, pairs, first_only=True)  # the real server: tag=b
    assert first.status == 200, first.body
    # neither the last value nor the values in another order is what anyone signs
    ts = env.ts()
    for pretend in ([("tag", "a"), ("name", "a b/c"), ("empty", "")], [("tag", "a"), ("tag", "b")]):
        wrong = sign_query(pretend, ts, KEY)
        reply = await env.call("GET", f"{DETAIL}?{encode_query(pairs)}", headers=env.sign_headers(wrong, ts))
        assert_spring_error(reply, 400, DETAIL, "签名错误")


async def test_query_values_are_signed_url_decoded(env: Env) -> None:
    ts = env.ts()
    encoded = "name=a%20b%2Fc"
    bad = digest("md5", encoded.encode() + ts.encode() + KEY.encode())
    reply = await env.call("GET", f"{DETAIL}?{encoded}", headers=env.sign_headers(bad, ts))
    assert reply.status == 400
    good = sign_query([("name", "a b/c")], ts, KEY)
    assert (await env.call("GET", f"{DETAIL}?{encoded}", headers=env.sign_headers(good, ts))).status == 200


async def test_form_encoded_post_is_verified_over_its_sorted_fields(env: Env) -> None:
    fields = [("grant_type", "client_credentials"), ("client_secret", KEY), ("client_id", CLIENT_ID)]
    body = urlencode(fields).encode()
    ts = env.ts()
    headers = {**env.sign_headers(sign_query(fields, ts, KEY), ts), "Content-Type": FORM}
    reply = await env.call("POST", "/loctube/oauth2/token", data=body, headers=headers)
    assert reply.status == 200, reply.body
    assert reply.signed  # a signed request: its answer is signed
    # the raw body's signature is not what the filter checks for a form
    headers = {**env.sign_headers(sign_body(body, ts, KEY), ts), "Content-Type": FORM}
    reply = await env.call("POST", "/loctube/oauth2/token", data=body, headers=headers)
    assert_spring_error(reply, 400, "/loctube/oauth2/token", "签名错误")


# --------------------------------------------------------------------------------------------------
# Which answers carry X-Sign


async def test_only_successful_answers_to_signed_requests_are_signed(env: Env) -> None:
    assert (await env.signed_get(DETAIL)).signed
    assert (await env.signed_post("/api/v1/device/_query", b"{}")).signed
    assert (await env.signed_post("/api/v1/token", b'{"expires":60}')).signed

    not_found = await env.signed_get("/api/v1/device/nosuch/_detail")
    assert_hsweb_error(not_found, 404, 404, "not_found")
    bad_body = await env.signed_post("/api/v1/device/_query", b"[]")
    assert_hsweb_error(bad_body, 400, 400, "illegal_argument")

    token = await env.x_token()
    by_token = await env.call("GET", DETAIL, headers={"X-Access-Token": token})
    assert by_token.status == 200 and not by_token.signed
    oauth2 = await env.client_credentials()
    bearer = {"Authorization": f"Bearer {oauth2['access_token']}"}
    by_oauth2 = await env.call("POST", "/device/instance/_query", json={}, headers=bearer)
    assert by_oauth2.status == 200 and not by_oauth2.signed
    assert not (await env.call("GET", DETAIL)).signed  # 401
