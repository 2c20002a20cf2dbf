"""Requests per cloud and the refused ones: the body parsing as table tests, the middleware on a real
emulator (outermost, so injected faults are counted too)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gatewayd.emulator import EmulatorServer
from gatewayd.emulator.console import CONSOLE_KEY
from gatewayd.emulator.console.requestlog import MESSAGE_CHARS, RequestLog, error_of, rcms_refusal
from tests.emulator import (
    ALL_CLOUDS,
    CLIENT_SECRET,
    PASSWORD,
    PASSWORD_MD5,
    apikey_headers,
    call,
    get_token,
    inventory,
    token_body,
)
from tests.emulator.console import Events
from tests.helpers.clocks import FakeClock


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # Thing+'s envelope
        (
            _json(
                {"statusCode": 404, "message": "Not Found", "errors": [{"code": "NOT_FOUND", "message": "x"}]}
            ),
            ("NOT_FOUND", "x"),
        ),
        # Thing+'s expired token, outside the envelope
        (
            _json({"name": "TokenExpiredError", "message": "jwt expired"}),
            ("TokenExpiredError", "jwt expired"),
        ),
        # an OAuth2 token endpoint's refusal
        (
            _json({"error": "invalid_grant", "error_description": "bad password"}),
            ("invalid_grant", "bad password"),
        ),
        # loctube's hsweb ResponseMessage, and its Spring error body
        (
            _json({"message": "用户未登录", "status": 401, "code": "unauthorized"}),
            ("unauthorized", "用户未登录"),
        ),
        (
            _json({"timestamp": 1, "path": "/p", "status": 401, "error": "Unauthorized", "message": "sig"}),
            ("Unauthorized", "sig"),
        ),
        # RCMS's envelope
        (_json({"code": 40002, "msg": "Invalid signature", "data": None}), ("40002", "Invalid signature")),
        # a fault's plain-text answer, and nothing at all
        (b"503 Service Unavailable (emulated outage)\n", (None, "503 Service Unavailable (emulated outage)")),
        (b"Access denied", (None, "Access denied")),
        (b"", (None, None)),
        (None, (None, None)),
        (_json([1, 2]), (None, "[1, 2]")),
    ],
)
def test_error_of_reads_each_clouds_refusal_body(
    body: bytes | None, expected: tuple[str | None, str | None]
) -> None:
    assert error_of(body) == expected


def test_a_long_message_is_cut() -> None:
    code, message = error_of(_json({"errors": [{"code": "SCHEMA_VALIDATE", "message": "m" * 1000}]}))
    assert code == "SCHEMA_VALIDATE" and message is not None and len(message) == MESSAGE_CHARS


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"code": 0, "msg": "Success", "data": {"total": 3}}', (None, None)),
        (
            _json({"code": 40001, "msg": "Missing required header: signature", "data": None}),
            ("40001", "Missing required header: signature"),
        ),
        (b'{"code": 0, "msg": "Success", "data": [' + b"1," * 5000 + b"1]}", (None, None)),
        (b"not json", (None, None)),
    ],
)
def test_rcms_refusal_finds_error_envelopes_answered_with_200(
    body: bytes, expected: tuple[str | None, str | None]
) -> None:
    assert rcms_refusal(body) == expected


def test_the_ring_keeps_the_newest_refusals_newest_first() -> None:
    clock = FakeClock(1000.0)
    log = RequestLog(clock=clock, kept=3)
    for i in range(5):
        clock.advance(1)
        log.record("thingplus", "PUT", f"/v2/x/{i}", 503, b"503 Service Unavailable (emulated outage)")
    log.record("thingplus", "GET", "/v2/sites", 200, None)
    assert [r["path"] for r in log.view()] == ["/v2/x/4", "/v2/x/3", "/v2/x/2"]
    assert log.view()[0]["t"] == 1005.0
    counts = log.clouds["thingplus"].view()
    assert counts == {"requests": 6, "refused": 5, "by_status": {"200": 1, "503": 5}}


@pytest.fixture
async def server() -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(inventory(ALL_CLOUDS), report_interval_ms=5000) as srv:
        yield srv


@pytest.fixture
async def http(server: EmulatorServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=server.url) as session:
        yield session


async def test_an_outage_is_counted_as_503_under_its_cloud(
    server: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    log = server.app[CONSOLE_KEY].requests
    assert (await call(http, "POST", "/_emulator/faults/rcms", json={"outage_s": 30}))[0] == 200
    assert (await call(http, "GET", "/api/link/dashboard/deviceTotal"))[0] == 503
    assert log.clouds["rcms"].view() == {"requests": 1, "refused": 1, "by_status": {"503": 1}}
    (refusal,) = log.view()
    assert (refusal["cloud"], refusal["method"], refusal["path"], refusal["status"]) == (
        "rcms",
        "GET",
        "/api/link/dashboard/deviceTotal",
        503,
    )
    assert refusal["code"] is None and "emulated outage" in refusal["message"]
    # the admin paths, the page and its assets are no cloud's requests
    assert (await call(http, "GET", "/"))[0] == 200
    assert (await call(http, "GET", "/_ui/common.css"))[0] == 200
    assert log.clouds["thingplus"].total == 0 and log.clouds["loctube"].total == 0


async def test_error_codes_are_parsed_from_each_clouds_answer(
    server: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    log = server.app[CONSOLE_KEY].requests
    auth = await get_token(http)
    status, _ = await call(http, "GET", "/v2/gateways/nope", auth)
    assert status == 404
    assert (await call(http, "GET", "/api/link/dashboard/deviceTotal"))[0] == 200  # unsigned: 40001 in a 200
    assert (await call(http, "GET", "/v2/no-such-path"))[0] == 404  # aiohttp's own 404
    codes = {(r["cloud"], r["status"], r["code"]) for r in log.view()}
    assert codes == {("thingplus", 404, "NOT_FOUND"), ("rcms", 200, "40001"), ("thingplus", 404, None)}
    assert log.clouds["thingplus"].view() == {"requests": 3, "refused": 2, "by_status": {"200": 1, "404": 2}}
    assert log.clouds["rcms"].view() == {"requests": 1, "refused": 1, "by_status": {"200": 1}}


async def test_no_secret_a_client_sent_reaches_the_console(
    server: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    config = inventory(ALL_CLOUDS)
    assert config.rcms is not None and config.loctube is not None
    apikey = "mqtt-apikey-Qx7-s3cret"
    secrets = [
        apikey,
        PASSWORD,
        PASSWORD_MD5,
        CLIENT_SECRET,
        config.rcms.client_secret.reveal(),
        config.loctube.secure_key.reveal(),
    ]
    added = await call(
        http, "POST", "/_emulator/thingplus/mqtt-gateways", json={"id": "b827eb0000f1", "apikey": apikey}
    )
    assert added[0] == 201
    # Refused calls carrying secrets in their query, headers and bodies.
    loctube_key = config.loctube.secure_key.reveal()
    query = f"grant_type=client_credentials&client_id=nobody&client_secret={loctube_key}"
    assert (await call(http, "GET", f"/loctube/oauth2/token?{query}"))[0] >= 400
    wrong_key = apikey_headers("b827eb0000f1", apikey + "x")
    assert (await call(http, "GET", f"/gateways/b827eb0000f1?apikey={apikey}", wrong_key))[0] == 401
    refused_token = await call(http, "POST", "/v2/oauth2/token", json=token_body(password=PASSWORD))
    assert refused_token[0] == 401
    rcms_key = config.rcms.client_secret.reveal()
    assert (await call(http, "GET", f"/api/link/dashboard/deviceTotal?secret={rcms_key}"))[0] == 200  # 40001
    async with http.get("/_emulator/console/events") as response:
        message = await Events(response).next()
    refusals = message["sections"]["refusals"]
    assert len(refusals) == 4 and all("?" not in r["path"] for r in refusals)
    text = json.dumps(message)
    assert [s for s in secrets if s in text] == []


async def _answers(app: web.Application) -> list[tuple[int, str]]:
    """(status, body) of each path the handlers below answer, as a client gets them."""
    async with TestClient(TestServer(app)) as client:
        answers = []
        for path in ("/v2/boom", "/v2/forbidden", "/v2/stream", "/v2/empty", "/v2/missing"):
            response = await client.get(path)
            answers.append((response.status, await response.text()))
        return answers


def _cloud_app(middlewares: list[Any]) -> web.Application:
    async def boom(request: web.Request) -> web.StreamResponse:
        raise RuntimeError("a bug in a handler")

    async def forbidden(request: web.Request) -> web.StreamResponse:
        raise web.HTTPForbidden(text=json.dumps({"errors": [{"code": "FORBIDDEN", "message": "no"}]}))

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        await response.write(b"chunk")
        return response

    async def empty(request: web.Request) -> web.StreamResponse:
        raise web.HTTPNoContent()

    app = web.Application(middlewares=middlewares)
    app.router.add_get("/v2/boom", boom)
    app.router.add_get("/v2/forbidden", forbidden)
    app.router.add_get("/v2/stream", stream)
    app.router.add_get("/v2/empty", empty)
    return app


async def test_the_log_changes_no_answer_and_counts_bugs_raised_answers_and_streams() -> None:
    log = RequestLog(clock=FakeClock())
    assert await _answers(_cloud_app([log.middleware])) == await _answers(_cloud_app([]))
    counts = log.clouds["thingplus"].view()
    assert counts == {
        "requests": 5,
        "refused": 3,
        "by_status": {"200": 1, "204": 1, "403": 1, "404": 1, "500": 1},
    }
    refused = {(r["path"], r["status"], r["code"]) for r in log.view()}
    assert refused == {
        ("/v2/boom", 500, None),
        ("/v2/forbidden", 403, "FORBIDDEN"),
        ("/v2/missing", 404, None),
    }
