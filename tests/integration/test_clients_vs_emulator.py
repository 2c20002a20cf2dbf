"""gatewayd's Thing+, RCMS and loctube clients against the emulator, over real loopback HTTP.

The clients and the emulator were written independently from the vendor documents (``shared/specs``): every
test here is a check that the two readings agree on the wire. Nothing is mocked; the only shortcut is the
emulator's knobs (expire tokens, faults, reportInterval) standing in for what time and the portal would do.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gatewayd.clouds.http import RetryPolicy
from gatewayd.clouds.loctube import LoctubeClient
from gatewayd.clouds.rcms import RcmsClient, RcmsError
from gatewayd.clouds.thingplus import (
    ThingPlusClient,
    report_interval_ms,
    valid_duration_s,
)
from gatewayd.emulator import EmulatorServer
from gatewayd.emulator.faults import RateLimit
from gatewayd.errors import AuthError, PermanentError, TransientError
from gatewayd.inventory.config import Inventory, parse_inventory
from gatewayd.secret import Secret
from gatewayd.statefile import StateFile
from tests.helpers.inventories import inventory_yaml
from tests.helpers.inventories import loctube as loctube_section
from tests.helpers.inventories import rcms as rcms_section

#: Retries fast enough for tests, bounded like production.
FAST = RetryPolicy(attempts=2, base=0.01, cap=0.02)
#: The emulator's gateway reportInterval (ms): the real platform's is >= 60000, tests need a short one.
REPORT_INTERVAL_MS = 5000
MINUTE_MS = 60_000

RCMS_DEVICES = ["SN-INT-0001", "SN-INT-0002", "SN-INT-0003"]
LOCTUBE_DEVICES = ["test001", "test002"]


def make_inventory(
    url: str = "http://127.0.0.1:9",
    *,
    state_dir: Path = Path("/nonexistent-state"),
    sign: str = "md5",
    auth: str = "signature",
    rcms_secret: str | None = None,
) -> Inventory:
    """All three clouds at ``url``; the emulator is built from the same text with a placeholder URL."""
    secret = {} if rcms_secret is None else {"client_secret": rcms_secret}
    text = inventory_yaml(
        url,
        gateway='{name: "Integration gateway"}',
        state_dir=state_dir,
        thingplus_keys={"timeout": "5s"},
        sections=rcms_section(url, **secret, timeout="5s", devices=RCMS_DEVICES)
        + loctube_section(url, sign=sign, auth=auth, timeout="5s", devices=LOCTUBE_DEVICES),
    )
    return parse_inventory(text, env={})


def new_id(label: str) -> str:
    """A Thing+ reqId: 32 lowercase hex digits (the Open API Gateway model's idFormat is uuid)."""
    return hashlib.md5(label.encode()).hexdigest()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def server() -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(make_inventory(), report_interval_ms=REPORT_INTERVAL_MS) as srv:
        yield srv


@pytest.fixture
def inventory(server: EmulatorServer, tmp_path: Path) -> Inventory:
    return make_inventory(server.url, state_dir=tmp_path)


# --------------------------------------------------------------------------------------------------
# Thing+


@pytest.fixture
def thingplus(http: aiohttp.ClientSession, inventory: Inventory, tmp_path: Path) -> ThingPlusClient:
    store = StateFile(tmp_path / "thingplus-token.json")
    return ThingPlusClient(http, inventory.thingplus, token_store=store, policy=FAST)


async def test_thingplus_token_sites_and_model(server: EmulatorServer, thingplus: ThingPlusClient) -> None:
    await thingplus.authenticate()
    assert server.emulator.thingplus.tokens_issued == 1

    sites = await thingplus.sites()
    assert [s["id"] for s in sites] == [server.emulator.thingplus.site_id]

    model = await thingplus.gateway_model("52")
    assert model["id"] == "52"
    assert report_interval_ms(model) == REPORT_INTERVAL_MS
    sensors = model["deviceModels"][0]["sensors"]
    assert {"type": "temperature", "driverName": "openApiSensor", "model": "openApiTemp"}.items() <= next(
        s for s in sensors if s["type"] == "temperature"
    ).items()
    # One token served every call.
    assert server.emulator.thingplus.tokens_issued == 1


async def test_thingplus_token_falls_back_to_form_encoding(
    server: EmulatorServer, thingplus: ThingPlusClient
) -> None:
    server.emulator.thingplus.token_encodings = frozenset({"form"})
    assert await thingplus.sites()
    assert server.emulator.thingplus.tokens_issued == 1
    assert server.emulator.thingplus.rejections["token:invalid_request"] == 1


async def test_thingplus_register_report_and_read_back(
    server: EmulatorServer, thingplus: ThingPlusClient
) -> None:
    tp = server.emulator.thingplus
    gateway_id, device_id, sensor_id = new_id("gw"), new_id("dev"), new_id("sensor")
    site_id = (await thingplus.sites())[0]["id"]
    model = await thingplus.gateway_model("52")
    device_model = model["deviceModels"][0]
    temperature = next(s for s in device_model["sensors"] if s["type"] == "temperature")

    gw = await thingplus.register_gateway(gateway_id, name="Integration gateway", site_id=site_id, model="52")
    assert gw.created and gw.data["id"] == gateway_id
    dev = await thingplus.register_device(gateway_id, device_id, name="Room 1", model=device_model["id"])
    assert dev.created and dev.data["owner"] == gateway_id
    sensor = await thingplus.register_sensor(
        gateway_id,
        sensor_id,
        device_id=device_id,
        name="Temperature",
        type=temperature["type"],
        driver_name=temperature["driverName"],
        model=temperature["model"],
    )
    assert sensor.created and sensor.data["deviceId"] == device_id

    # Registering again is a 409 CONFLICT, which the client reports as "already there".
    again = [
        await thingplus.register_gateway(gateway_id, name="Integration gateway", site_id=site_id, model="52"),
        await thingplus.register_device(gateway_id, device_id, name="Room 1", model=device_model["id"]),
        await thingplus.register_sensor(
            gateway_id,
            sensor_id,
            device_id=device_id,
            name="Temperature",
            type=temperature["type"],
            driver_name=temperature["driverName"],
            model=temperature["model"],
        ),
    ]
    assert [r.created for r in again] == [False, False, False]
    assert tp.rejections["register_gateway:CONFLICT"] == 1
    assert tp.rejections["register_device:CONFLICT"] == 1
    assert tp.rejections["register_sensor:CONFLICT"] == 1
    assert (len(tp.gateways), len(tp.devices), len(tp.sensors)) == (1, 1, 1)
    assert await thingplus.list_devices(gateway_id) == [tp.devices[device_id]]
    assert [s["id"] for s in await thingplus.list_sensors(gateway_id)] == [sensor_id]

    # Heartbeats: validDuration from the gateway record's reportInterval.
    interval = report_interval_ms(await thingplus.gateway(gateway_id))
    assert interval == REPORT_INTERVAL_MS
    duration = valid_duration_s(interval)
    assert duration == 8
    await thingplus.gateway_status(gateway_id, "on", duration)
    await thingplus.sensor_status(gateway_id, sensor_id, "on", duration)
    assert [(s.value, s.valid_duration) for s in tp.gateway_statuses[gateway_id]] == [("on", 8)]
    assert [(s.value, s.valid_duration) for s in tp.sensor_statuses[sensor_id]] == [("on", 8)]

    # Series: one point as an object, several as an array.
    now_ms = int(time.time() * 1000)
    single = await thingplus.series(gateway_id, sensor_id, [(now_ms - 3000, "21.5")])
    assert single["id"] == sensor_id
    batch = [(now_ms - 2000, "21.6"), (now_ms - 1000, "21.7"), (now_ms, "21.8")]
    many = await thingplus.series(gateway_id, sensor_id, batch)
    assert many["seriesPack"] == [{"value": v, "time": t} for t, v in batch]
    assert tp.series(sensor_id) == [(now_ms - 3000, "21.5"), *batch]
    assert tp.latest(sensor_id) == {"time": now_ms, "value": "21.8"}
    assert not any(key.startswith(("series:", "gateway_status:", "sensor_status:")) for key in tp.rejections)

    # The portal changes reportInterval: the gateway record says so.
    tp.set_report_interval(7000, gateway_id)
    assert report_interval_ms(await thingplus.gateway(gateway_id)) == 7000


async def test_thingplus_unknown_gateway_is_not_found(thingplus: ThingPlusClient) -> None:
    with pytest.raises(PermanentError) as info:
        await thingplus.gateway(new_id("nobody"))
    assert (info.value.status, info.value.code) == (404, "NOT_FOUND")


async def test_thingplus_expired_token_is_renewed_transparently(
    server: EmulatorServer, thingplus: ThingPlusClient, tmp_path: Path
) -> None:
    tp = server.emulator.thingplus
    assert await thingplus.sites()
    stored = StateFile(tmp_path / "thingplus-token.json").load()
    assert stored is not None
    server.emulator.expire_tokens("thingplus")

    assert await thingplus.sites()
    assert tp.tokens_issued == 2
    assert tp.rejections["sites:TOKEN_EXPIRED"] == 1
    renewed = StateFile(tmp_path / "thingplus-token.json").load()
    assert renewed is not None and renewed["access_token"] != stored["access_token"]


async def test_thingplus_stored_token_is_reused_by_a_new_client(
    server: EmulatorServer, http: aiohttp.ClientSession, inventory: Inventory, tmp_path: Path
) -> None:
    store = StateFile(tmp_path / "thingplus-token.json")
    await ThingPlusClient(http, inventory.thingplus, token_store=store, policy=FAST).sites()
    await ThingPlusClient(http, inventory.thingplus, token_store=store, policy=FAST).sites()
    assert server.emulator.thingplus.tokens_issued == 1


async def test_thingplus_outage_ends_in_transient_error_after_bounded_retries(
    server: EmulatorServer, thingplus: ThingPlusClient
) -> None:
    assert await thingplus.sites()  # a token first, so every faulted request is the call itself
    faults = server.emulator.faults
    faults.set("thingplus", outage_s=30)
    started = time.monotonic()
    with pytest.raises(TransientError) as info:
        await thingplus.sites()
    assert time.monotonic() - started < 2
    assert info.value.status == 503
    assert faults.get("thingplus").injected["outage"] == FAST.attempts

    faults.clear("thingplus")
    assert await thingplus.sites()


async def test_thingplus_rate_limit_is_waited_out(server: EmulatorServer, thingplus: ThingPlusClient) -> None:
    assert await thingplus.sites()
    server.emulator.faults.set("thingplus", rate_limit=RateLimit(count=1, retry_after=0))
    assert await thingplus.sites()
    assert server.emulator.faults.get("thingplus").injected["rate_limited"] == 1


@pytest.mark.parametrize(
    ("field", "code"), [("client_secret", "invalid_client"), ("password", "invalid_grant")]
)
async def test_thingplus_wrong_credentials_are_an_auth_error(
    server: EmulatorServer, http: aiohttp.ClientSession, inventory: Inventory, field: str, code: str
) -> None:
    wrong = inventory.thingplus.model_copy(update={field: Secret("not-the-right-one")})
    with pytest.raises(AuthError) as info:
        await ThingPlusClient(http, wrong, policy=FAST).sites()
    assert (info.value.status, info.value.code) == (401, code)
    assert server.emulator.thingplus.tokens_issued == 0
    # Both encodings were tried before giving up: a 401 may mean the body was not understood.
    assert server.emulator.thingplus.requests["token"] == 2


# --------------------------------------------------------------------------------------------------
# RCMS


@pytest.fixture
def rcms(http: aiohttp.ClientSession, inventory: Inventory) -> RcmsClient:
    assert inventory.rcms is not None
    return RcmsClient(http, inventory.rcms, policy=FAST)


async def test_rcms_device_total(server: EmulatorServer, rcms: RcmsClient) -> None:
    totals = await rcms.device_total()
    assert totals["deviceTotal"] == len(RCMS_DEVICES)
    assert totals["onlineTotal"] + totals["offlineTotal"] == len(RCMS_DEVICES)
    state = server.emulator.state()["rcms"]
    assert state["ok"]["GET /api/link/dashboard/deviceTotal"] == 1
    assert state["rejections"] == {}


async def test_rcms_status_data_follows_every_page(server: EmulatorServer, rcms: RcmsClient) -> None:
    # A 30-minute window ending on the last whole minute: exactly 30 minutes fall inside it.
    end_ms = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS
    begin_ms = end_ms - 30 * MINUTE_MS + 1
    records = await rcms.status_data(RCMS_DEVICES[0], begin_ms, end_ms, page_size=7)

    times = [r["time"] for r in records]
    assert times == list(range(end_ms - 29 * MINUTE_MS, end_ms + 1, MINUTE_MS))
    assert all({"system", "active_link", "cellular"} <= r["data"].keys() for r in records)
    state = server.emulator.state()["rcms"]
    assert state["ok"]["GET /api/link/device/devices/{sn}/statusData"] == 5  # 7+7+7+7+2
    assert state["rejections"] == {}


async def test_rcms_status_data_of_unknown_router_is_a_business_error(rcms: RcmsClient) -> None:
    end_ms = int(time.time() * 1000)
    with pytest.raises(RcmsError) as info:
        await rcms.status_data("SN-UNKNOWN", end_ms - MINUTE_MS, end_ms)
    assert info.value.code == 40004


async def test_rcms_set_group_is_visible_in_the_emulator(server: EmulatorServer, rcms: RcmsClient) -> None:
    await rcms.set_group(RCMS_DEVICES[1], "Seoul branch")
    state = server.emulator.state()["rcms"]
    assert state["groups"] == {RCMS_DEVICES[1]: "Seoul branch"}
    assert [(e["sn"], e["groupName"]) for e in state["group_history"]] == [(RCMS_DEVICES[1], "Seoul branch")]


async def test_rcms_wrong_secret_is_40002(
    server: EmulatorServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    wrong = make_inventory(server.url, state_dir=tmp_path, rcms_secret="not-the-secret").rcms
    assert wrong is not None
    with pytest.raises(RcmsError) as info:
        await RcmsClient(http, wrong, policy=FAST).device_total()
    assert info.value.code == 40002
    assert server.emulator.state()["rcms"]["rejections"] == {"bad_signature": 1}


async def test_rcms_outage_ends_in_transient_error(server: EmulatorServer, rcms: RcmsClient) -> None:
    server.emulator.faults.set("rcms", outage_s=30)
    with pytest.raises(TransientError):
        await rcms.device_total()
    assert server.emulator.faults.get("rcms").injected["outage"] == FAST.attempts


# --------------------------------------------------------------------------------------------------
# loctube: every auth mode with every digest


@pytest.fixture(params=["md5", "sha256"])
def sign(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def loctube_server(sign: str) -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(make_inventory(sign=sign), report_interval_ms=REPORT_INTERVAL_MS) as srv:
        yield srv


def loctube_client(
    http: aiohttp.ClientSession, server: EmulatorServer, sign: str, auth: str
) -> LoctubeClient:
    config = make_inventory(server.url, sign=sign, auth=auth).loctube
    assert config is not None
    return LoctubeClient(http, config, policy=FAST)


@pytest.mark.parametrize("auth", ["signature", "token", "oauth2"])
async def test_loctube_detail_and_query(
    http: aiohttp.ClientSession, loctube_server: EmulatorServer, sign: str, auth: str
) -> None:
    client = loctube_client(http, loctube_server, sign, auth)

    detail = await client.device_detail("test001")
    assert detail["id"] == "test001"
    assert detail["state"]["value"] in ("online", "offline")
    assert {"battery", "latitude", "longitude", "speed"} <= detail["properties"].keys()

    page = await client.query_devices(page_size=1)
    assert (page["total"], page["pageSize"], len(page["data"])) == (2, 1, 1)
    filtered = await client.query_devices(terms=[{"column": "id", "value": "test002"}])
    assert [d["id"] for d in filtered["data"]] == ["test002"]

    with pytest.raises(PermanentError) as info:
        await client.device_detail("nope")
    assert (info.value.status, info.value.code) == (404, "not_found")

    lt = loctube_server.emulator.state()["loctube"]
    assert lt["sign"] == sign
    assert lt["rejections"] == {"not_found": 1}
    expected_auth = {
        "signature": {"signature": 4},
        # the token request itself is signed; the four calls carry the token
        "token": {"signature": 1, "token": 4},
        "oauth2": {"oauth2": 4},
    }[auth]
    assert lt["auth"] == expected_auth


async def test_loctube_wrong_secure_key_is_an_auth_error_not_tampering(
    http: aiohttp.ClientSession, loctube_server: EmulatorServer, sign: str
) -> None:
    config = make_inventory(loctube_server.url, sign=sign, auth="signature").loctube
    assert config is not None
    wrong = config.model_copy(update={"secure_key": Secret("not-the-key")})
    with pytest.raises(AuthError) as info:
        await LoctubeClient(http, wrong, policy=FAST).device_detail("test001")
    # the JetLinks signature filter answers a wrong signature with an unsigned 400
    assert info.value.status == 400
    assert "secure_key" in info.value.message


async def test_loctube_signature_mode_has_no_token(
    http: aiohttp.ClientSession, loctube_server: EmulatorServer, sign: str
) -> None:
    with pytest.raises(PermanentError):
        await loctube_client(http, loctube_server, sign, "signature").access_token()


@pytest.mark.parametrize("auth", ["token", "oauth2"])
async def test_loctube_token_is_obtained_once_and_renewed_when_expired(
    http: aiohttp.ClientSession, loctube_server: EmulatorServer, sign: str, auth: str
) -> None:
    client = loctube_client(http, loctube_server, sign, auth)
    first = await client.access_token()
    assert first and await client.access_token() == first
    await client.device_detail("test001")
    kind = "x-access" if auth == "token" else "oauth2-access"
    assert loctube_server.emulator.state()["loctube"]["tokens_issued"][kind] == 1

    loctube_server.emulator.expire_tokens("loctube")
    detail = await client.device_detail("test001")  # 401, renewed, retried: the caller sees none of it
    assert detail["id"] == "test001"
    assert await client.access_token() != first

    lt = loctube_server.emulator.state()["loctube"]
    assert lt["tokens_issued"][kind] == 2
    assert lt["rejections"] == {"token_expired": 1}
    if auth == "oauth2":
        assert lt["tokens_issued"]["oauth2-refresh"] == 1  # renewed with the refresh token


async def test_loctube_outage_ends_in_transient_error(
    http: aiohttp.ClientSession, loctube_server: EmulatorServer, sign: str
) -> None:
    loctube_server.emulator.faults.set("loctube", outage_s=30)
    with pytest.raises(TransientError):
        await loctube_client(http, loctube_server, sign, "signature").device_detail("test001")
    assert loctube_server.emulator.faults.get("loctube").injected["outage"] == FAST.attempts


async def test_loctube_oauth2_falls_back_to_the_form_when_the_server_refuses_json(
    http: aiohttp.ClientSession, loctube_server: EmulatorServer, sign: str
) -> None:
    """A stock JetLinks token endpoint answers JSON with 415: the client sends the form instead."""
    loctube_server.emulator.faults.set("loctube", oauth2_form_only=True)
    client = loctube_client(http, loctube_server, sign, "oauth2")
    detail = await client.device_detail("test001")
    assert detail["id"] == "test001"
    lt = loctube_server.emulator.state()["loctube"]
    assert lt["tokens_issued"]["oauth2-access"] == 1
    assert lt["rejections"] == {"unsupported_media_type": 1}  # JSON first, refused once, then the form
