"""``/loctube/oauth2/token`` as hsweb 4.0.x's OAuth2 endpoint answers it, and OAuth2 bearer
authentication, with requests built by hand."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gatewayd.emulator import build_app
from tests.emulator import ALL_CLOUDS, inventory
from tests.emulator.loctube import (
    CLIENT_ID,
    DETAIL,
    DEVICES,
    KEY,
    Client,
    Env,
    assert_hsweb_error,
    assert_spring_error,
    assert_unauthorized,
)
from tests.helpers.inventories import LOCTUBE

TOKEN = "/loctube/oauth2/token"

# --------------------------------------------------------------------------------------------------
# Getting tokens


@pytest.mark.parametrize("form", [False, True], ids=["json", "form"])
async def test_client_credentials_then_bearer(env: Env, form: bool) -> None:
    tokens = await env.client_credentials(form=form)
    assert set(tokens) == {"access_token", "refresh_token", "expires_in"}
    assert tokens["expires_in"] == 7200
    for scheme in ("bearer", "Bearer", "BEARER"):
        headers = {"Authorization": f"{scheme} {tokens['access_token']}"}
        reply = await env.call("POST", "/device/instance/_query", json={}, headers=headers)
        assert reply.status == 200, reply.body
        assert reply.body["result"]["total"] == len(DEVICES)
    reply = await env.call("POST", f"/device/instance/_query?access_token={tokens['access_token']}", json={})
    assert reply.status == 200
    reply = await env.call("GET", f"{DETAIL}?access_token={tokens['access_token']}")
    assert reply.status == 200
    # hsweb takes a header without a scheme whole, as the token
    assert (await env.call("GET", DETAIL, headers={"Authorization": tokens["access_token"]})).status == 200


async def test_client_credentials_gives_the_same_token_while_it_lives(env: Env) -> None:
    first = await env.client_credentials()
    env.clock.now += 1000
    again = await env.client_credentials(form=True)
    assert (again["access_token"], again["refresh_token"]) == (first["access_token"], first["refresh_token"])
    assert again["expires_in"] == 6200  # what is left of it
    env.clock.now += 6200
    fresh = await env.client_credentials()
    assert fresh["access_token"] != first["access_token"] and fresh["expires_in"] == 7200
    assert env.emulator.snapshot()["tokens_issued"]["oauth2-access"] == 2


async def test_token_by_get(env: Env) -> None:
    query = f"grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={KEY}"
    reply = await env.call("GET", f"{TOKEN}?{query}")
    assert reply.status == 200, reply.body
    assert not reply.signed
    assert reply.body == await env.client_credentials()  # the same singleton token
    headers = {"Authorization": f"Bearer {reply.body['access_token']}"}
    assert (await env.call("GET", DETAIL, headers=headers)).status == 200


@pytest.mark.parametrize("query", [f"client_id={CLIENT_ID}&client_secret={KEY}", "grant_type=password"])
async def test_token_by_get_without_a_known_grant_type_is_400(env: Env, query: str) -> None:
    assert_hsweb_error(await env.call("GET", f"{TOKEN}?{query}"), 400, 400, "illegal_argument")


@pytest.mark.parametrize("form", [False, True], ids=["json", "form"])
async def test_refresh_token(env: Env, form: bool) -> None:
    tokens = await env.client_credentials()
    env.clock.now += 7300  # the access token is dead (no sliding for OAuth2)
    old = {"Authorization": f"bearer {tokens['access_token']}"}
    assert_unauthorized(await env.call("GET", DETAIL, headers=old))
    reply = await env.oauth2(
        env.credentials("refresh_token", refresh_token=tokens["refresh_token"]), form=form
    )
    assert reply.status == 200, reply.body
    assert reply.body["expires_in"] == 7200
    assert reply.body["access_token"] != tokens["access_token"]
    assert reply.body["refresh_token"] == tokens["refresh_token"]  # kept, its 30 days started again
    new = {"Authorization": f"bearer {reply.body['access_token']}"}
    assert (await env.call("GET", DETAIL, headers=new)).status == 200
    # client_credentials now hands out the refreshed token
    assert (await env.client_credentials())["access_token"] == reply.body["access_token"]


async def test_refreshing_leaves_the_old_access_token_to_its_own_expiry(env: Env) -> None:
    tokens = await env.client_credentials()
    reply = await env.oauth2(env.credentials("refresh_token", refresh_token=tokens["refresh_token"]))
    assert reply.status == 200
    old = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await env.call("GET", DETAIL, headers=old)).status == 200
    env.clock.now += 7200
    assert_unauthorized(await env.call("GET", DETAIL, headers=old))


async def test_refresh_token_lives_30_days_from_its_last_use(env: Env) -> None:
    tokens = await env.client_credentials()
    refresh = env.credentials("refresh_token", refresh_token=tokens["refresh_token"])
    env.clock.now += 20 * 86400
    assert (await env.oauth2(refresh)).status == 200
    env.clock.now += 20 * 86400  # 40 days after issue, 20 after the last refresh
    assert (await env.oauth2(refresh)).status == 200
    env.clock.now += 30 * 86400
    reply = await env.oauth2(refresh)
    assert_hsweb_error(reply, 500, 4020, "EXPIRED_REFRESH_TOKEN")
    assert reply.body["message"] == "expired_refresh_token"


async def test_access_token_lives_7200_seconds_without_sliding(env: Env) -> None:
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
    reply = await env.oauth2(env.credentials("refresh_token", refresh_token=tokens["refresh_token"]))
    assert reply.status == 200, reply.body


# --------------------------------------------------------------------------------------------------
# Failures: HTTP 500, each with its own status in the hsweb body


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        (
            {"grant_type": "client_credentials", "client_id": "intruder", "client_secret": KEY},
            1003,
            "ILLEGAL_CLIENT_ID",
        ),
        ({"grant_type": "client_credentials", "client_secret": KEY}, 1003, "ILLEGAL_CLIENT_ID"),
        (
            {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "wrong"},
            1004,
            "ILLEGAL_CLIENT_SECRET",
        ),
        ({"grant_type": "client_credentials", "client_id": CLIENT_ID}, 1004, "ILLEGAL_CLIENT_SECRET"),
        (
            {"grant_type": "password", "client_id": CLIENT_ID, "client_secret": KEY},
            4013,
            "UNSUPPORTED_GRANT_TYPE",
        ),
        ({"client_id": CLIENT_ID, "client_secret": KEY}, 4013, "UNSUPPORTED_GRANT_TYPE"),
        # the grant type is checked first, before the client
        ({"grant_type": "password", "client_id": "intruder"}, 4013, "UNSUPPORTED_GRANT_TYPE"),
        (
            {"grant_type": "refresh_token", "client_id": CLIENT_ID, "client_secret": KEY},
            1008,
            "ILLEGAL_REFRESH_TOKEN",
        ),
        (
            {
                "grant_type": "refresh_token",
                "client_id": CLIENT_ID,
                "client_secret": KEY,
                "refresh_token": "0" * 32,
            },
            4020,
            "EXPIRED_REFRESH_TOKEN",
        ),
        (
            {"grant_type": "authorization_code", "client_id": CLIENT_ID, "client_secret": KEY},
            1001,
            "ILLEGAL_CODE",
        ),
    ],
)
@pytest.mark.parametrize("form", [False, True], ids=["json", "form"])
async def test_failures_are_500_with_the_hsweb_body(
    env: Env, params: dict[str, str], status: int, code: str, form: bool
) -> None:
    reply = await env.oauth2(params, form=form)
    assert_hsweb_error(reply, 500, status, code)
    assert reply.body["message"] == code.lower()
    assert "result" not in reply.body


async def test_basic_credentials_are_not_read(env: Env) -> None:
    basic = base64.b64encode(f"{CLIENT_ID}:{KEY}".encode()).decode()
    reply = await env.call(
        "POST", TOKEN, data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
    )
    assert_hsweb_error(reply, 500, 1003, "ILLEGAL_CLIENT_ID")


# --------------------------------------------------------------------------------------------------
# Bearer tokens


async def test_bearer_with_two_spaces_is_refused(env: Env) -> None:
    tokens = await env.client_credentials()
    assert_unauthorized(
        await env.call("GET", DETAIL, headers={"Authorization": f"Bearer  {tokens['access_token']}"})
    )
    assert (
        await env.call("GET", DETAIL, headers={"Authorization": f"Bearer {tokens['access_token']}"})
    ).status == 200


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
# The stock server's form-only token endpoint (a fault)


async def test_form_only_refuses_json_with_415(env: Env) -> None:
    env.form_only[0] = True
    reply = await env.oauth2(env.credentials())
    assert_spring_error(reply, 415, TOKEN, "Content type 'application/json' not supported")
    assert (await env.oauth2(env.credentials(), form=True)).status == 200
    env.form_only[0] = False
    assert (await env.oauth2(env.credentials())).status == 200


@pytest.fixture
async def admin() -> AsyncIterator[Client]:
    app, _ = build_app(inventory(ALL_CLOUDS))
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield client
    await client.close()


async def test_form_only_is_set_and_cleared_over_the_admin_api(admin: Client) -> None:
    credentials = {
        "grant_type": "client_credentials",
        "client_id": LOCTUBE["client_id"],
        "client_secret": LOCTUBE["secure_key"],
    }
    async with admin.post("/_emulator/faults/loctube", json={"oauth2_form_only": True}) as resp:
        assert resp.status == 200
        assert (await resp.json())["loctube"]["oauth2_form_only"] is True
    async with admin.post(TOKEN, json=credentials) as resp:
        assert resp.status == 415
    async with admin.post(TOKEN, data=credentials) as resp:
        assert resp.status == 200
    async with admin.delete("/_emulator/faults/loctube?kinds=oauth2_form_only") as resp:
        assert (await resp.json())["loctube"]["oauth2_form_only"] is False
    async with admin.post(TOKEN, json=credentials) as resp:
        assert resp.status == 200
    async with admin.post("/_emulator/faults/thingplus", json={"oauth2_form_only": True}) as resp:
        assert resp.status == 400
        assert "loctube" in (await resp.json())["error"]
