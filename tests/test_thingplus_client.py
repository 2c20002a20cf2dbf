"""ThingPlusClient against a fake Thing+ on 127.0.0.1 (real HTTP): token lifecycle, bodies, errors, retries."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict
from structlog.testing import capture_logs

from gatewayd.clouds.auth.thingplus import TOKEN_RENEW_AFTER_S, token_expired
from gatewayd.clouds.http import RetryPolicy
from gatewayd.clouds.thingplus import (
    Registration,
    ThingPlusClient,
    report_interval_ms,
    valid_duration_s,
)
from gatewayd.errors import (
    AuthError,
    CloudError,
    DeferredError,
    PermanentError,
    RateLimitedError,
    TransientError,
)
from gatewayd.inventory.config import ThingPlusConfig
from gatewayd.statefile import StateFile
from tests.conftest import loopback_server

CLIENT_ID = "testClientId"
CLIENT_SECRET = "testClientPwd12!@"
USERNAME = "serviceadmin"
PASSWORD = "your_password"
PASSWORD_MD5 = "1060b7b46a3bd36b3a0d66e0127d0517"  # echo -n your_password | md5sum
TOKEN_FIELDS = {
    "grant_type": "password",
    "client_id": CLIENT_ID,
    "client_secret": CLIENT_SECRET,
    "username": USERNAME,
    "password": PASSWORD_MD5,
}
GW = "87cd2a6e407511e7922eb724f8803770"
DEV = "366d685f93f5477a8d29e8c45bae0a31"
SENSOR = "d815ba2f84eb490b8e68d9dd744da397"
T0 = 1_495_715_734_508

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
HANG = "hang"


@dataclass
class Seen:
    method: str
    path: str
    raw_path: str
    headers: CIMultiDict[str]
    body: bytes


Reply = Callable[[], web.Response]


@dataclass
class FakeThingPlus:
    """A small Thing+ written from the document: tokens, envelope, 401 for unknown tokens, scripted faults."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    script: dict[tuple[str, str], list[Reply | str]] = field(default_factory=dict)
    token_types: set[str] = field(default_factory=lambda: {JSON, FORM})
    refuse_status: int = 415
    valid: set[str] = field(default_factory=set)
    issued: int = 0
    data: dict[tuple[str, str], Any] = field(default_factory=dict)
    expired_reply: Reply = field(default=lambda: web.Response(status=401, text="Access denied"))
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def then(
        self,
        method: str,
        path: str,
        status: int,
        body: Any = None,
        *,
        text: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``method path`` with this instead of the default."""

        def reply() -> web.Response:
            if text is not None:
                return web.Response(status=status, text=text, headers=headers)
            return web.json_response(body, status=status, headers=headers)

        self.script.setdefault((method, path), []).append(reply)

    def hang(self, method: str, path: str, times: int) -> None:
        self.script.setdefault((method, path), []).extend([HANG] * times)

    def requests(self, path: str | None = None) -> list[Seen]:
        return [s for s in self.seen if path is None or s.path == path]

    @property
    def token_requests(self) -> list[Seen]:
        return self.requests("/v2/oauth2/token")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(
            Seen(request.method, request.path, request.raw_path, CIMultiDict(request.headers), body)
        )
        queue = self.script.get((request.method, request.path))
        if queue:
            reply = queue.pop(0)
            if reply == HANG:
                await self.release.wait()
                return web.Response(status=200)
            assert not isinstance(reply, str)
            return reply()
        if request.path == "/v2/oauth2/token":
            return self._token(request.content_type, body)
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self.valid:
            return self.expired_reply()
        status = 201 if request.method == "POST" else 200
        message = "Created" if status == 201 else "OK"
        collection = request.method == "GET" and request.path.endswith(("/sites", "/devices", "/sensors"))
        data = self.data.get((request.method, request.path), [] if collection else {})
        return web.json_response({"statusCode": status, "message": message, "data": data}, status=status)

    def _token(self, content_type: str, body: bytes) -> web.Response:
        if content_type not in self.token_types:
            if self.refuse_status == 401:  # a server that did not parse the body sees no client
                return web.Response(status=401, text="Unauthorized")
            return web.json_response(
                {"statusCode": self.refuse_status, "message": "unsupported body"}, status=self.refuse_status
            )
        fields = json.loads(body) if content_type == JSON else dict(parse_qsl(body.decode()))
        if fields.get("client_secret") != CLIENT_SECRET or fields.get("password") != PASSWORD_MD5:
            return web.json_response(
                {"error": "invalid_client", "error_description": "Client authentication failed"}, status=401
            )
        self.issued += 1
        token = f"tok-{self.issued}"
        self.valid.add(token)
        return web.json_response({"access_token": token, "token_type": "Bearer"})


@pytest.fixture
async def cloud() -> AsyncIterator[FakeThingPlus]:
    fake = FakeThingPlus()
    async with loopback_server(fake.handle) as url:
        fake.url = url
        yield fake
        fake.release.set()


@dataclass
class Harness:
    cloud: FakeThingPlus
    session: aiohttp.ClientSession
    tmp_path: Path
    sleeps: list[float] = field(default_factory=list)

    @property
    def store(self) -> StateFile:
        return StateFile(self.tmp_path / "state" / "thingplus-token.json")

    def config(self, **overrides: Any) -> ThingPlusConfig:
        values: dict[str, Any] = {
            "endpoint": self.cloud.url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "username": USERNAME,
            "password": PASSWORD,
            "timeout": 5.0,
        }
        values.update(overrides)
        return ThingPlusConfig.model_validate(values)

    def client(
        self,
        *,
        store: bool = True,
        attempts: int = 4,
        clock: Callable[[], float] | None = None,
        **overrides: Any,
    ) -> ThingPlusClient:
        async def fake_sleep(seconds: float) -> None:
            self.sleeps.append(seconds)

        kwargs: dict[str, Any] = {}
        if clock is not None:
            kwargs["clock"] = clock
        return ThingPlusClient(
            self.session,
            self.config(**overrides),
            token_store=self.store if store else None,
            policy=RetryPolicy(attempts=attempts, base=0.5, cap=30.0),
            sleep=fake_sleep,
            rand=lambda: 0.5,
            **kwargs,
        )


@pytest.fixture
def h(cloud: FakeThingPlus, session: aiohttp.ClientSession, tmp_path: Path) -> Harness:
    return Harness(cloud, session, tmp_path)


# --------------------------------------------------------------------------------------------------
# Token


async def test_token_request_is_the_documents_json_with_md5_password(h: Harness) -> None:
    h.cloud.data["GET", "/v2/sites"] = [{"id": "1", "name": "default"}]
    assert await h.client().sites() == [{"id": "1", "name": "default"}]

    (token_req,) = h.cloud.token_requests
    assert token_req.method == "POST"
    assert token_req.headers["Content-Type"] == JSON
    sent = json.loads(token_req.body)
    assert sent == TOKEN_FIELDS
    assert list(sent) == ["grant_type", "client_id", "client_secret", "username", "password"]
    assert PASSWORD.encode() not in token_req.body
    (sites,) = h.cloud.requests("/v2/sites")
    assert sites.headers["Authorization"] == "Bearer tok-1"


async def test_password_md5_from_config_is_sent_as_is(h: Harness) -> None:
    await h.client(password=None, password_md5=PASSWORD_MD5.upper()).authenticate()
    assert json.loads(h.cloud.token_requests[0].body)["password"] == PASSWORD_MD5


@pytest.mark.parametrize("refuse_status", [400, 401, 415])
async def test_token_falls_back_to_form_and_remembers_it(h: Harness, refuse_status: int) -> None:
    h.cloud.token_types = {FORM}
    h.cloud.refuse_status = refuse_status
    client = h.client()
    await client.sites()

    first, second = h.cloud.token_requests
    assert first.headers["Content-Type"] == JSON
    assert second.headers["Content-Type"] == FORM
    assert dict(parse_qsl(second.body.decode())) == TOKEN_FIELDS
    assert [k for k, _ in parse_qsl(second.body.decode())] == list(TOKEN_FIELDS)

    h.cloud.valid.clear()  # the token expires: the renewal goes straight to the form
    await client.sites()
    assert [r.headers["Content-Type"] for r in h.cloud.token_requests] == [JSON, FORM, FORM]


async def test_token_answer_without_access_token_falls_back_to_form(h: Harness) -> None:
    h.cloud.then("POST", "/v2/oauth2/token", 200, text="<html>login</html>")
    await h.client().sites()
    assert [r.headers["Content-Type"] for r in h.cloud.token_requests] == [JSON, FORM]
    assert h.cloud.requests("/v2/sites")[0].headers["Authorization"] == "Bearer tok-1"


async def test_remembered_encoding_survives_a_restart(h: Harness) -> None:
    h.cloud.token_types = {FORM}
    await h.client().sites()
    h.cloud.valid.clear()
    await h.client().sites()  # a new process: loads the stored token, gets 401, renews with the form
    assert [r.headers["Content-Type"] for r in h.cloud.token_requests] == [JSON, FORM, FORM]


async def test_token_is_stored_0600_and_reused_by_the_next_client(h: Harness) -> None:
    await h.client().sites()
    assert len(h.cloud.token_requests) == 1

    path = h.store.path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    record = json.loads(path.read_text())
    assert record["access_token"] == "tok-1"
    assert record["token_type"] == "Bearer"
    assert record["username"] == USERNAME
    assert record["client_id"] == CLIENT_ID
    assert record["endpoint"] == h.cloud.url
    assert record["encoding"] == "json"
    assert PASSWORD_MD5 not in path.read_text()
    assert CLIENT_SECRET not in path.read_text()

    await h.client().sites()  # a restart: no second token request
    assert len(h.cloud.token_requests) == 1
    assert [r.headers["Authorization"] for r in h.cloud.requests("/v2/sites")] == ["Bearer tok-1"] * 2


@pytest.mark.parametrize(
    "change", [{"username": "otheradmin"}, {"client_id": "otherClient"}, {"endpoint": "localhost"}]
)
async def test_stored_token_is_not_reused_for_another_identity(h: Harness, change: dict[str, Any]) -> None:
    await h.client().sites()
    if change.get("endpoint") == "localhost":
        change = {"endpoint": h.cloud.url.replace("127.0.0.1", "localhost")}
    await h.client(**change).sites()
    assert len(h.cloud.token_requests) == 2


async def test_token_is_renewed_before_90_days(h: Harness) -> None:
    now = 1_700_000_000.0
    await h.client(clock=lambda: now).sites()
    await h.client(clock=lambda: now + 88 * 86400).sites()
    assert len(h.cloud.token_requests) == 1
    await h.client(clock=lambda: now + TOKEN_RENEW_AFTER_S + 1).sites()
    assert len(h.cloud.token_requests) == 2
    assert json.loads(h.store.path.read_text())["obtained_at"] == now + TOKEN_RENEW_AFTER_S + 1


def test_token_expiry_maths() -> None:
    assert not token_expired(1000.0, 1000.0 + 88 * 86400)
    assert token_expired(1000.0, 1000.0 + 89 * 86400)
    assert 88 * 86400 < TOKEN_RENEW_AFTER_S < 90 * 86400


async def test_without_a_store_the_token_lives_in_memory(h: Harness) -> None:
    client = h.client(store=False)
    await client.sites()
    await client.sites()
    assert len(h.cloud.token_requests) == 1
    assert not h.store.path.exists()


async def test_corrupt_token_file_means_a_new_token(h: Harness) -> None:
    h.store.path.parent.mkdir(parents=True)
    h.store.path.write_text("{not json")
    await h.client().sites()
    assert len(h.cloud.token_requests) == 1
    assert json.loads(h.store.path.read_text())["access_token"] == "tok-1"


async def test_unwritable_token_file_costs_a_login_not_the_call(h: Harness) -> None:
    h.store.path.parent.parent.mkdir(exist_ok=True)
    h.store.path.parent.write_text("a file where the state dir should be")
    with capture_logs() as logs:
        assert await h.client().sites() == []
    assert "thingplus.token_not_saved" in [e["event"] for e in logs]


@pytest.mark.parametrize(
    ("status", "body", "error", "message", "tries"),
    [
        (
            401,
            {"error": "invalid_client", "error_description": "Client authentication failed"},
            AuthError,
            "Client authentication failed",
            2,  # 401 may mean "body not parsed": the other encoding is tried once
        ),
        (
            400,
            {
                "statusCode": 400,
                "message": "wrong username or password",
                "errors": [{"code": "INVALID_INPUT"}],
            },
            PermanentError,
            "wrong username or password",
            2,
        ),
        (
            403,
            {"error": "invalid_grant", "error_description": "Invalid resource owner"},
            AuthError,
            "Invalid",
            1,
        ),
    ],
)
async def test_refused_credentials_fail_fast_with_the_clouds_message(
    h: Harness, status: int, body: dict[str, Any], error: type[CloudError], message: str, tries: int
) -> None:
    for _ in range(2):
        h.cloud.then("POST", "/v2/oauth2/token", status, body)
    with pytest.raises(error, match=message) as info:
        await h.client().sites()
    assert type(info.value) is error
    assert info.value.operation == "token"
    assert info.value.status == status
    assert len(h.cloud.token_requests) == tries  # at most one try per encoding, no retry loop
    assert h.sleeps == []
    assert h.cloud.requests("/v2/sites") == []


async def test_wrong_secret_is_an_auth_error(h: Harness) -> None:
    with pytest.raises(AuthError, match="Client authentication failed"):
        await h.client(client_secret="wrong").authenticate()
    assert len(h.cloud.token_requests) == 2
    assert not h.store.path.exists()


async def test_token_endpoint_503_is_retried(h: Harness) -> None:
    h.cloud.then("POST", "/v2/oauth2/token", 503, text="upstream down")
    await h.client().sites()
    assert len(h.cloud.token_requests) == 2
    assert h.sleeps == [0.25]


# --------------------------------------------------------------------------------------------------
# 401 handling


@pytest.mark.parametrize(
    "expired",
    [
        lambda: web.Response(status=401, text="Access denied"),
        lambda: web.json_response(
            {"name": "TokenExpiredError", "message": "jwt expired", "expiredAt": "2017-08-20T06:47:19.000Z"},
            status=401,
        ),
    ],
    ids=["plain", "json"],
)
async def test_401_gets_one_new_token_and_the_call_is_retried(h: Harness, expired: Reply) -> None:
    h.cloud.expired_reply = expired
    client = h.client()
    await client.sites()
    h.cloud.valid.clear()  # the cloud forgets tok-1
    h.cloud.data["GET", "/v2/sites"] = [{"id": "1"}]
    assert await client.sites() == [{"id": "1"}]

    assert [(r.path, r.headers.get("Authorization")) for r in h.cloud.seen] == [
        ("/v2/oauth2/token", None),
        ("/v2/sites", "Bearer tok-1"),
        ("/v2/sites", "Bearer tok-1"),
        ("/v2/oauth2/token", None),
        ("/v2/sites", "Bearer tok-2"),
    ]
    assert json.loads(h.store.path.read_text())["access_token"] == "tok-2"
    assert h.sleeps == []


async def test_a_second_401_is_an_auth_error(h: Harness) -> None:
    h.cloud.then("GET", "/v2/sites", 401, text="Access denied")
    h.cloud.then("GET", "/v2/sites", 401, {"name": "TokenExpiredError", "message": "jwt expired"})
    with pytest.raises(AuthError, match="jwt expired") as info:
        await h.client().sites()
    assert info.value.status == 401
    assert info.value.code == "TokenExpiredError"
    assert len(h.cloud.token_requests) == 2
    assert len(h.cloud.requests("/v2/sites")) == 2
    assert h.sleeps == []


async def test_concurrent_calls_share_one_token_and_one_renewal(h: Harness) -> None:
    client = h.client()
    await asyncio.gather(*(client.sites() for _ in range(5)))
    assert len(h.cloud.token_requests) == 1
    h.cloud.valid.clear()
    await asyncio.gather(*(client.sites() for _ in range(5)))
    assert len(h.cloud.token_requests) == 2


# --------------------------------------------------------------------------------------------------
# Registration


async def test_register_gateway_body_is_the_documents(h: Harness) -> None:
    created = {"name": "Open Gateway 1", "id": GW, "reportInterval": "300000"}
    h.cloud.data["POST", "/v2/registerGateway"] = created
    result = await h.client().register_gateway(GW, name="Open Gateway 1", site_id="1", model="52")
    assert result == Registration(created=True, data=created)
    (req,) = h.cloud.requests("/v2/registerGateway")
    assert req.method == "POST"
    assert req.headers["Content-Type"] == JSON
    assert req.body == (
        b'{"reqId":"87cd2a6e407511e7922eb724f8803770",'
        b'"params":{"siteId":"1","model":"52","name":"Open Gateway 1"}}'
    )


async def test_register_device_body_is_the_documents(h: Harness) -> None:
    result = await h.client().register_device(
        GW, DEV, name="Open Gateway Device 1", model="open-api-device-v1.0"
    )
    assert result.created is True
    (req,) = h.cloud.requests(f"/v2/gateways/{GW}/devices")
    assert req.method == "POST"
    assert req.body == (
        b'{"reqId":"366d685f93f5477a8d29e8c45bae0a31","name":"Open Gateway Device 1",'
        b'"model":"open-api-device-v1.0"}'
    )


async def test_register_sensor_body_is_the_documents(h: Harness) -> None:
    result = await h.client().register_sensor(
        GW,
        SENSOR,
        device_id=DEV,
        name="Temperature Sensor",
        type="temperature",
        driver_name="openApiSensor",
        model="openApiTemp",
    )
    assert result.created is True
    (req,) = h.cloud.requests(f"/v2/gateways/{GW}/sensors")
    assert req.method == "POST"
    assert json.loads(req.body) == {
        "reqId": "d815ba2f84eb490b8e68d9dd744da397",
        "name": "Temperature Sensor",
        "type": "temperature",
        "driverName": "openApiSensor",
        "model": "openApiTemp",
        "category": "sensor",
        "deviceId": "366d685f93f5477a8d29e8c45bae0a31",
    }
    assert list(json.loads(req.body)) == [
        "reqId",
        "name",
        "type",
        "driverName",
        "model",
        "category",
        "deviceId",
    ]


CONFLICT = {"statusCode": 409, "message": "Conflict", "errors": [{"code": "CONFLICT", "message": "exists"}]}


@pytest.mark.parametrize("kind", ["gateway", "device", "sensor"])
async def test_409_conflict_means_already_registered(h: Harness, kind: str) -> None:
    client = h.client()
    if kind == "gateway":
        h.cloud.then("POST", "/v2/registerGateway", 409, CONFLICT)
        result = await client.register_gateway(GW, name="g", site_id="1", model="52")
    elif kind == "device":
        h.cloud.then("POST", f"/v2/gateways/{GW}/devices", 409, CONFLICT)
        result = await client.register_device(GW, DEV, name="d", model="open-api-device-v1.0")
    else:
        h.cloud.then("POST", f"/v2/gateways/{GW}/sensors", 409, CONFLICT)
        result = await client.register_sensor(
            GW, SENSOR, device_id=DEV, name="s", type="temperature", driver_name="x", model="y"
        )
    assert result == Registration(created=False, data={})
    assert h.sleeps == []


async def test_400_schema_validate_is_permanent_with_the_code(h: Harness) -> None:
    h.cloud.then(
        "POST",
        f"/v2/gateways/{GW}/devices",
        400,
        {
            "statusCode": 400,
            "message": "Bad Request",
            "errors": [{"code": "SCHEMA_VALIDATE", "message": "x"}],
        },
    )
    with pytest.raises(PermanentError) as info:
        await h.client().register_device(GW, DEV, name="d", model="m")
    assert type(info.value) is PermanentError
    assert info.value.code == "SCHEMA_VALIDATE"
    assert info.value.status == 400
    assert info.value.operation == "register_device"
    assert info.value.cloud == "thingplus"
    assert len(h.cloud.requests(f"/v2/gateways/{GW}/devices")) == 1
    assert h.sleeps == []


async def test_404_not_found_is_permanent(h: Harness) -> None:
    h.cloud.then(
        "GET",
        f"/v2/gateways/{GW}",
        404,
        {"statusCode": 404, "message": "Not Found", "errors": [{"code": "NOT_FOUND"}]},
    )
    with pytest.raises(PermanentError, match="Not Found") as info:
        await h.client().gateway(GW)
    assert info.value.code == "NOT_FOUND"


async def test_http_200_with_a_failing_envelope_is_a_failure(h: Harness) -> None:
    h.cloud.then("GET", "/v2/sites", 200, {"statusCode": 400, "message": "bad", "errors": [{"code": "X"}]})
    with pytest.raises(PermanentError) as info:
        await h.client().sites()
    assert (info.value.status, info.value.code) == (400, "X")


# --------------------------------------------------------------------------------------------------
# Transient failures


async def test_503_is_retried_with_backoff_then_succeeds(h: Harness) -> None:
    path = f"/v2/gateways/{GW}/sensors/{SENSOR}/series"
    h.cloud.then("PUT", path, 503, text="Service Unavailable")
    h.cloud.then("PUT", path, 504, {"statusCode": 504, "message": "Gateway Timeout"})
    await h.client().series(GW, SENSOR, [(T0, "36.5")])
    bodies = [r.body for r in h.cloud.requests(path)]
    assert len(bodies) == 3
    assert len(set(bodies)) == 1  # the same bytes every attempt
    assert h.sleeps == [0.25, 0.5]  # full jitter with rand=0.5: 0.5 * 0.5 * 2**retry


NOW_S = 1_700_000_000.0


def answer_429_once(h: Harness, seconds: int, as_date: bool) -> None:
    """The next ``GET /v2/sites`` answers 429 with a Retry-After of ``seconds`` (a number or an HTTP date)."""
    value = formatdate(NOW_S + seconds, usegmt=True) if as_date else str(seconds)
    h.cloud.then(
        "GET", "/v2/sites", 429, {"statusCode": 429, "message": "Too Many"}, headers={"Retry-After": value}
    )


@pytest.mark.parametrize("as_date", [False, True], ids=["seconds", "date"])
async def test_a_short_429_retry_after_is_waited_in_the_call(h: Harness, as_date: bool) -> None:
    answer_429_once(h, 3, as_date)
    await h.client(clock=lambda: NOW_S).sites()
    assert h.sleeps == [3.0]
    assert len(h.cloud.requests("/v2/sites")) == 2


@pytest.mark.parametrize("as_date", [False, True], ids=["seconds", "date"])
async def test_a_long_retry_after_fails_at_once_and_defers_the_next_calls(h: Harness, as_date: bool) -> None:
    answer_429_once(h, 120, as_date)
    client = h.client(clock=lambda: NOW_S)
    mono = [1000.0]
    client._transport.deferral.mono = lambda: mono[0]
    with pytest.raises(RateLimitedError) as first:
        await client.sites()
    assert first.value.retry_after == 120.0
    assert h.sleeps == []  # not slept in the call
    with pytest.raises(
        DeferredError, match=r"deferred by Retry-After until 2023-11-14T22:15:20Z \(120s left\)"
    ):
        await client.sites()
    mono[0] += 119
    with pytest.raises(DeferredError, match=r"\(1s left\); no request sent"):
        await client.gateway_status(GW, "on", 90)  # every call to this cloud, not only the one refused
    assert len(h.cloud.requests("/v2/sites")) == 1 and not h.cloud.requests(f"/v2/gateways/{GW}/status")
    mono[0] += 1
    assert await client.sites() == []
    assert len(h.cloud.requests("/v2/sites")) == 2


async def test_persistent_503_gives_up_after_the_policys_attempts(h: Harness) -> None:
    for _ in range(5):
        h.cloud.then("GET", "/v2/sites", 503, text="Service Unavailable")
    with pytest.raises(TransientError, match="Service Unavailable") as info:
        await h.client(attempts=3).sites()
    assert info.value.status == 503
    assert len(h.cloud.requests("/v2/sites")) == 3
    assert len(h.sleeps) == 2


async def test_persistent_429_is_rate_limited_error(h: Harness) -> None:
    for _ in range(2):
        h.cloud.then("GET", "/v2/sites", 429, text="slow down")
    with pytest.raises(RateLimitedError):
        await h.client(attempts=2).sites()


async def test_timeout_is_transient_after_bounded_attempts(h: Harness) -> None:
    path = f"/v2/gateways/{GW}/status"
    h.cloud.hang("PUT", path, 3)
    client = h.client(attempts=3, timeout=0.05)
    await client.authenticate()
    with pytest.raises(TransientError, match="no answer within") as info:
        await client.gateway_status(GW, "on", 450)
    assert info.value.operation == "gateway_status"
    assert len(h.cloud.requests(path)) == 3
    assert len(h.sleeps) == 2


async def test_connection_refused_is_transient(session: aiohttp.ClientSession, tmp_path: Path) -> None:
    app = web.Application()
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    await server.close()  # nothing listens there now
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    config = ThingPlusConfig.model_validate(
        {
            "endpoint": url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "username": USERNAME,
            "password": PASSWORD,
        }
    )
    client = ThingPlusClient(session, config, policy=RetryPolicy(attempts=2), sleep=fake_sleep)
    with pytest.raises(TransientError) as info:
        await client.sites()
    assert info.value.operation == "token"
    assert len(sleeps) == 1


# --------------------------------------------------------------------------------------------------
# Status and series


async def test_gateway_and_sensor_status_bodies(h: Harness) -> None:
    client = h.client()
    h.cloud.data["PUT", f"/v2/gateways/{GW}/status"] = {"value": "on", "expireAt": "1495703919608"}
    assert (await client.gateway_status(GW, "on", 450))["expireAt"] == "1495703919608"
    await client.sensor_status(GW, SENSOR, "err", 90)
    gw, sensor = (
        h.cloud.requests(f"/v2/gateways/{GW}/status"),
        h.cloud.requests(f"/v2/gateways/{GW}/sensors/{SENSOR}/status"),
    )
    assert [(r.method, r.body, r.headers["Content-Type"]) for r in gw] == [
        ("PUT", b'{"validDuration":450,"value":"on"}', JSON)
    ]
    assert [(r.method, r.body) for r in sensor] == [("PUT", b'{"validDuration":90,"value":"err"}')]


@pytest.mark.parametrize(
    ("value", "duration"),
    [("ON", 450), ("maybe", 450), ("", 450), ("on", 0), ("on", -5), ("on", 1.5), ("on", True)],
)
async def test_status_values_are_checked_before_sending(h: Harness, value: str, duration: Any) -> None:
    client = h.client()
    with pytest.raises(ValueError):
        await client.gateway_status(GW, value, duration)
    with pytest.raises(ValueError):
        await client.sensor_status(GW, SENSOR, value, duration)
    assert h.cloud.seen == []


async def test_series_one_point_is_the_single_object(h: Harness) -> None:
    await h.client().series(GW, SENSOR, [(T0, "36.5")])
    (req,) = h.cloud.requests(f"/v2/gateways/{GW}/sensors/{SENSOR}/series")
    assert req.method == "PUT"
    assert req.headers["Content-Type"] == JSON
    assert req.body == b'{"value":"36.5","time":1495715734508}'


async def test_series_many_points_are_an_array(h: Harness) -> None:
    await h.client().series(
        GW,
        SENSOR,
        [(1495716734508, "36.5"), (1495717184508, "36.3"), (1495717200000, {"lat": "1", "lng": "2"})],
    )
    (req,) = h.cloud.requests(f"/v2/gateways/{GW}/sensors/{SENSOR}/series")
    assert req.body == (
        b'[{"value":"36.5","time":1495716734508},{"value":"36.3","time":1495717184508},'
        b'{"value":{"lat":"1","lng":"2"},"time":1495717200000}]'
    )


@pytest.mark.parametrize(
    "points",
    [
        [],
        [(T0, 36.5)],
        [(T0, 36)],
        [(T0, True)],
        [(T0, None)],
        [(float(T0), "1")],
        [(True, "1")],
        [("1495715734508", "1")],
        [(1495715734, "1")],  # seconds, not ms
        [(T0, {"x": float("nan")})],
    ],
)
async def test_series_points_are_checked_before_sending(h: Harness, points: Any) -> None:
    with pytest.raises(ValueError):
        await h.client().series(GW, SENSOR, points)
    assert h.cloud.seen == []


async def test_series_400_invalid_input_is_permanent(h: Harness) -> None:
    path = f"/v2/gateways/{GW}/sensors/{SENSOR}/series"
    h.cloud.then(
        "PUT", path, 400, {"statusCode": 400, "message": "too old", "errors": [{"code": "INVALID_INPUT"}]}
    )
    with pytest.raises(PermanentError) as info:
        await h.client().series(GW, SENSOR, [(T0, "1")])
    assert info.value.code == "INVALID_INPUT"
    assert info.value.operation == "series"
    assert len(h.cloud.requests(path)) == 1


# --------------------------------------------------------------------------------------------------
# Reads


async def test_reads_return_the_envelopes_data(h: Harness) -> None:
    h.cloud.data["GET", "/v2/gatewayModels/52"] = {"id": "52", "reportInterval": "300000"}
    h.cloud.data["GET", f"/v2/gateways/{GW}"] = {"id": GW, "reportInterval": "60000"}
    h.cloud.data["GET", f"/v2/gateways/{GW}/devices"] = [{"id": DEV}, "junk"]
    h.cloud.data["GET", f"/v2/gateways/{GW}/sensors"] = [{"id": SENSOR}]
    client = h.client()
    assert await client.gateway_model("52") == {"id": "52", "reportInterval": "300000"}
    gateway = await client.gateway(GW)
    assert report_interval_ms(gateway) == 60000
    assert await client.list_devices(GW) == [{"id": DEV}]
    assert await client.list_sensors(GW) == [{"id": SENSOR}]
    assert all(r.method == "GET" and r.body == b"" for r in h.cloud.seen[1:])


async def test_unexpected_shape_is_permanent(h: Harness) -> None:
    h.cloud.data["GET", "/v2/sites"] = {"not": "a list"}
    with pytest.raises(PermanentError, match="expected a list"):
        await h.client().sites()


async def test_ids_are_percent_encoded_in_paths(h: Harness) -> None:
    await h.client().gateway("a/b c")
    assert h.cloud.seen[-1].raw_path == "/v2/gateways/a%2Fb%20c"
    with pytest.raises(ValueError):
        await h.client().gateway("")


def test_report_interval_and_valid_duration() -> None:
    assert report_interval_ms({"reportInterval": "300000"}) == 300000
    assert report_interval_ms({"reportInterval": 60000}) == 60000
    assert report_interval_ms({}) is None
    assert report_interval_ms({"reportInterval": "soon"}) is None
    assert report_interval_ms({"reportInterval": "0"}) is None
    assert valid_duration_s(300000) == 450  # the document's example
    assert valid_duration_s(5000) == 8
    assert valid_duration_s(1) == 1


# --------------------------------------------------------------------------------------------------
# Secrets


async def test_secrets_never_reach_log_events(h: Harness) -> None:
    h.cloud.token_types = {FORM}
    with capture_logs() as logs:
        client = h.client()
        await client.sites()
        h.cloud.valid.clear()
        await client.sites()
        h.cloud.then("GET", "/v2/sites", 503, text="down")
        await client.sites()
    assert len(h.cloud.token_requests) == 3
    text = repr(logs)
    for secret in (CLIENT_SECRET, PASSWORD, PASSWORD_MD5, "tok-1", "tok-2", "Bearer tok"):
        assert secret not in text
    events = [e["event"] for e in logs]
    assert "thingplus.token_obtained" in events
    assert "cloud.credentials_renewed" in events
    token = await client._auth.token()
    assert token.access_token not in repr(token)


def test_path_segments_are_percent_encoded_unless_already_safe() -> None:
    from gatewayd.clouds.thingplus import _seg

    assert _seg("d815ba2f84eb490b8e68d9dd744da397") == "d815ba2f84eb490b8e68d9dd744da397"
    assert _seg("a/b c") == "a%2Fb%20c"
    assert _seg("zähler") == "z%C3%A4hler"
    with pytest.raises(ValueError, match="non-empty"):
        _seg("")
