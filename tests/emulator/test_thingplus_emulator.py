"""The emulated Thing+ checks what the document says the real one checks, and records what it accepts.

Every request is built by hand from the document (``shared/specs/001_*.txt``); gatewayd's client is not used.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from gatewayd.emulator.thingplus import SENSOR_TYPES, ThingPlusEmulator
from tests.emulator import (
    CLIENT_ID,
    CLIENT_SECRET,
    PASSWORD,
    PASSWORD_MD5,
    RECENT_MS,
    call,
    error_code,
    get_token,
    new_id,
    register,
    sensor_body,
    token_body,
)
from tests.helpers.clocks import FakeClock

# --------------------------------------------------------------------------------------------------
# Token


async def test_token_json_answers_outside_the_envelope(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator
) -> None:
    status, body = await call(http, "POST", "/v2/oauth2/token", json=token_body())
    assert status == 200
    assert set(body) == {"access_token", "token_type"}
    assert body["token_type"] == "Bearer"
    assert body["access_token"].count(".") == 2  # JWT-shaped
    assert tp.tokens_issued == 1


async def test_token_form_encoded_is_accepted(http: aiohttp.ClientSession) -> None:
    status, body = await call(http, "POST", "/v2/oauth2/token", data=token_body())
    assert status == 200, body
    assert body["token_type"] == "Bearer"


async def test_token_client_credentials_in_basic_auth(http: aiohttp.ClientSession) -> None:
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    body = token_body(client_id=None, client_secret=None)
    status, answer = await call(
        http, "POST", "/v2/oauth2/token", headers={"Authorization": f"Basic {basic}"}, json=body
    )
    assert status == 200, answer


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"password": PASSWORD}, 401),  # the password itself, not its md5
        ({"password": PASSWORD_MD5.upper()}, 401),  # not what md5sum prints
        ({"password": "0" * 32}, 401),  # an md5, but of something else
        ({"client_secret": "wrong"}, 401),
        ({"client_id": "otherClient"}, 401),
        ({"username": "someone"}, 401),
        ({"grant_type": "client_credentials"}, 400),
        ({"password": None}, 400),
        ({"grant_type": None}, 400),
    ],
)
async def test_token_refuses_bad_credentials(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, overrides: dict[str, Any], expected: int
) -> None:
    status, body = await call(http, "POST", "/v2/oauth2/token", json=token_body(**overrides))
    assert status == expected, body
    assert "access_token" not in body
    assert tp.tokens_issued == 0


async def test_token_encodings_can_be_restricted(http: aiohttp.ClientSession, tp: ThingPlusEmulator) -> None:
    tp.token_encodings = frozenset({"form"})
    status, _ = await call(http, "POST", "/v2/oauth2/token", json=token_body())
    assert status == 400
    status, _ = await call(http, "POST", "/v2/oauth2/token", data=token_body())
    assert status == 200


# --------------------------------------------------------------------------------------------------
# Bearer token


async def test_missing_or_unknown_bearer_is_refused(http: aiohttp.ClientSession) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic abc"}):
        status, body = await call(http, "GET", "/v2/sites", headers)
        assert (status, body) == (401, "Access denied")


async def test_expired_token_gets_jwt_expired(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, auth: dict[str, str]
) -> None:
    status, _ = await call(http, "GET", "/v2/sites", auth)
    assert status == 200
    tp.expire_tokens()
    status, body = await call(http, "GET", "/v2/sites", auth)
    assert status == 401
    assert body == {"name": "TokenExpiredError", "message": "jwt expired"}
    fresh = await get_token(http)
    status, _ = await call(http, "GET", "/v2/sites", fresh)
    assert status == 200


async def test_token_lives_ninety_days(
    http: aiohttp.ClientSession, clock: FakeClock, auth: dict[str, str]
) -> None:
    clock.advance(90 * 86400 - 1)
    assert (await call(http, "GET", "/v2/sites", auth))[0] == 200
    clock.advance(1)
    status, body = await call(http, "GET", "/v2/sites", auth)
    assert status == 401
    assert body["name"] == "TokenExpiredError"


# --------------------------------------------------------------------------------------------------
# Sites and the gateway model


async def test_sites(http: aiohttp.ClientSession, auth: dict[str, str]) -> None:
    status, body = await call(http, "GET", "/v2/sites", auth)
    assert status == 200
    assert body["statusCode"] == 200 and body["message"] == "OK"
    assert [(s["id"], s["name"]) for s in body["data"]] == [("1", "default")]


async def test_gateway_model_52(http: aiohttp.ClientSession, auth: dict[str, str]) -> None:
    status, body = await call(http, "GET", "/v2/gatewayModels/52", auth)
    assert status == 200
    model = body["data"]
    assert model["id"] == "52"
    assert model["reportInterval"] == "5000"
    assert model["idFormat"] == "uuid"
    (device_model,) = model["deviceModels"]
    assert device_model["id"] == "open-api-device-v1.0"
    sensors = {s["type"]: s for s in device_model["sensors"]}
    assert sensors["temperature"]["model"] == "openApiTemp"
    assert sensors["humidity"]["model"] == "openApiHumi"
    assert sensors["conductivity"]["model"] == "openApiConductivity"
    for kind in ("number", "percent", "string", "onoff", "voltage", "current", "power", "co2", "battery"):
        assert kind in sensors
    for sensor in device_model["sensors"]:
        assert sensor["driverName"] == "openApiSensor"
        assert sensor["network"] == "daliworks"
        assert sensor["category"] == "sensor"
        assert sensor["model"].startswith("openApi")


async def test_unknown_gateway_model_is_not_found(http: aiohttp.ClientSession, auth: dict[str, str]) -> None:
    status, body = await call(http, "GET", "/v2/gatewayModels/53", auth)
    assert status == 404
    assert error_code(body) == "NOT_FOUND"
    assert body["statusCode"] == 404


# --------------------------------------------------------------------------------------------------
# Gateway registration


def _gateway_body(req_id: Any, **params: Any) -> dict[str, Any]:
    return {"reqId": req_id, "params": {"siteId": "1", "model": "52", "name": "Open Gateway 1", **params}}


async def test_register_gateway(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, clock: FakeClock, auth: dict[str, str]
) -> None:
    gid = new_id()
    status, body = await call(http, "POST", "/v2/registerGateway", auth, _gateway_body(gid))
    assert status == 201
    assert (body["statusCode"], body["message"]) == (201, "Created")
    data = body["data"]
    assert data["id"] == data["tree"] == gid
    assert (data["name"], data["model"], data["_site"]) == ("Open Gateway 1", "52", "1")
    assert data["reportInterval"] == "5000"
    assert data["ctime"] == int(clock.now * 1000)
    status, body = await call(http, "GET", f"/v2/gateways/{gid}", auth)
    assert status == 200
    assert body["data"] == data
    assert list(tp.gateways) == [gid]
    assert tp.requests["register_gateway"] == 1


async def test_duplicate_gateway_is_conflict(http: aiohttp.ClientSession, auth: dict[str, str]) -> None:
    gid = new_id()
    assert (await call(http, "POST", "/v2/registerGateway", auth, _gateway_body(gid)))[0] == 201
    status, body = await call(http, "POST", "/v2/registerGateway", auth, _gateway_body(gid))
    assert status == 409
    assert error_code(body) == "CONFLICT"


@pytest.mark.parametrize(
    "req_id",
    [
        "87cd2a6e-4075-11e7-922e-b724f8803770",  # dashes left in
        "87CD2A6E407511E7922EB724F8803770",  # upper case
        "87cd2a6e407511e7922eb724f880377",  # 31 digits
        "87cd2a6e407511e7922eb724f880377g",  # not hex
        12345,
    ],
)
async def test_bad_gateway_req_id(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, auth: dict[str, str], req_id: Any
) -> None:
    status, body = await call(http, "POST", "/v2/registerGateway", auth, _gateway_body(req_id))
    assert status == 400
    assert error_code(body) == "SCHEMA_VALIDATE"
    assert tp.gateways == {}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"reqId": "x" * 32}, 400, "SCHEMA_VALIDATE"),  # no params at all
        (_gateway_body("a" * 32, color="red"), 400, "SCHEMA_VALIDATE"),  # extra key in params
        ({**_gateway_body("a" * 32), "extra": 1}, 400, "SCHEMA_VALIDATE"),  # extra key at the top
        (_gateway_body("a" * 32, siteId=1), 400, "SCHEMA_VALIDATE"),  # siteId a number
        (_gateway_body("a" * 32, siteId="7"), 404, "NOT_FOUND"),
        (_gateway_body("a" * 32, model="53"), 404, "NOT_FOUND"),
    ],
)
async def test_gateway_registration_refusals(
    http: aiohttp.ClientSession, auth: dict[str, str], body: Any, status: int, code: str
) -> None:
    got, answer = await call(http, "POST", "/v2/registerGateway", auth, body)
    assert got == status, answer
    assert error_code(answer) == code


async def test_invalid_json_is_schema_validate(http: aiohttp.ClientSession, auth: dict[str, str]) -> None:
    headers = {**auth, "Content-Type": "application/json"}
    status, body = await call(http, "POST", "/v2/registerGateway", headers, data=b"{not json")
    assert status == 400
    assert error_code(body) == "SCHEMA_VALIDATE"


async def test_unknown_gateway_is_not_found(http: aiohttp.ClientSession, auth: dict[str, str]) -> None:
    status, body = await call(http, "GET", f"/v2/gateways/{new_id()}", auth)
    assert status == 404
    assert error_code(body) == "NOT_FOUND"


async def test_report_interval_change_is_visible_on_the_gateway(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, auth: dict[str, str]
) -> None:
    g1, _, _ = await register(http, auth)
    g2, _, _ = await register(http, auth)
    tp.set_report_interval(2000)
    for gid in (g1, g2):
        assert (await call(http, "GET", f"/v2/gateways/{gid}", auth))[1]["data"]["reportInterval"] == "2000"
    tp.set_report_interval(7000, g2)
    assert (await call(http, "GET", f"/v2/gateways/{g1}", auth))[1]["data"]["reportInterval"] == "2000"
    assert (await call(http, "GET", f"/v2/gateways/{g2}", auth))[1]["data"]["reportInterval"] == "7000"
    assert (await call(http, "GET", "/v2/gatewayModels/52", auth))[1]["data"]["reportInterval"] == "2000"
    with pytest.raises(ValueError):
        tp.set_report_interval(0)
    with pytest.raises(KeyError):
        tp.set_report_interval(1000, new_id())


# --------------------------------------------------------------------------------------------------
# Devices


async def _gateway(http: aiohttp.ClientSession, auth: dict[str, str]) -> str:
    gid = new_id()
    status, body = await call(http, "POST", "/v2/registerGateway", auth, _gateway_body(gid))
    assert status == 201, body
    return gid


def _device_body(req_id: Any, **overrides: Any) -> dict[str, Any]:
    return {"reqId": req_id, "name": "Open Gateway Device 1", "model": "open-api-device-v1.0", **overrides}


async def test_register_and_list_devices(http: aiohttp.ClientSession, auth: dict[str, str]) -> None:
    gid = await _gateway(http, auth)
    did = new_id()
    status, body = await call(http, "POST", f"/v2/gateways/{gid}/devices", auth, _device_body(did))
    assert status == 201
    assert (body["data"]["id"], body["data"]["owner"], body["data"]["model"]) == (
        did,
        gid,
        "open-api-device-v1.0",
    )
    status, body = await call(http, "GET", f"/v2/gateways/{gid}/devices", auth)
    assert status == 200
    assert [d["id"] for d in body["data"]] == [did]
    other = await _gateway(http, auth)
    assert (await call(http, "GET", f"/v2/gateways/{other}/devices", auth))[1]["data"] == []
    assert (await call(http, "GET", f"/v2/gateways/{gid}/devices/{did}", auth))[0] == 200
    assert (await call(http, "GET", f"/v2/gateways/{other}/devices/{did}", auth))[0] == 404


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (_device_body("c" * 32, model="some-other-device"), 400, "INVALID_INPUT"),
        (_device_body("C" * 32), 400, "SCHEMA_VALIDATE"),
        (_device_body("c" * 32, location="1"), 400, "SCHEMA_VALIDATE"),
        ({"reqId": "c" * 32, "model": "open-api-device-v1.0"}, 400, "SCHEMA_VALIDATE"),
        (_device_body("c" * 32, name=7), 400, "SCHEMA_VALIDATE"),
    ],
)
async def test_device_registration_refusals(
    http: aiohttp.ClientSession, auth: dict[str, str], body: Any, status: int, code: str
) -> None:
    gid = await _gateway(http, auth)
    got, answer = await call(http, "POST", f"/v2/gateways/{gid}/devices", auth, body)
    assert got == status, answer
    assert error_code(answer) == code


async def test_device_of_unknown_gateway_and_duplicate(
    http: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    did = new_id()
    status, body = await call(http, "POST", f"/v2/gateways/{new_id()}/devices", auth, _device_body(did))
    assert (status, error_code(body)) == (404, "NOT_FOUND")
    gid = await _gateway(http, auth)
    assert (await call(http, "POST", f"/v2/gateways/{gid}/devices", auth, _device_body(did)))[0] == 201
    status, body = await call(http, "POST", f"/v2/gateways/{gid}/devices", auth, _device_body(did))
    assert (status, error_code(body)) == (409, "CONFLICT")


# --------------------------------------------------------------------------------------------------
# Sensors


async def test_register_and_list_sensors(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, auth: dict[str, str]
) -> None:
    gid, did, sid = await register(http, auth)
    record = tp.sensors[sid]
    assert (record["owner"], record["deviceId"], record["type"]) == (gid, did, "temperature")
    status, body = await call(http, "GET", f"/v2/gateways/{gid}/sensors", auth)
    assert status == 200
    assert [s["id"] for s in body["data"]] == [sid]
    assert (await call(http, "GET", f"/v2/gateways/{gid}/sensors/{sid}", auth))[1]["data"]["id"] == sid
    # a duplicate reqId, even under the same device
    status, body = await call(http, "POST", f"/v2/gateways/{gid}/sensors", auth, sensor_body(sid, did))
    assert (status, error_code(body)) == (409, "CONFLICT")


@pytest.mark.parametrize("kind", [k for k, _ in SENSOR_TYPES])
async def test_every_type_of_the_model_registers(
    http: aiohttp.ClientSession, auth: dict[str, str], kind: str
) -> None:
    model = dict(SENSOR_TYPES)[kind]
    await register(http, auth, sensor_type=kind, model=model)


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"model": "openApiHumi"}, "INVALID_INPUT"),  # a humidity model on a temperature type
        ({"driverName": "someDriver"}, "INVALID_INPUT"),
        ({"type": "radiation", "model": "openApiRadiation"}, "INVALID_INPUT"),  # not in the model
        ({"category": "actuator"}, "INVALID_INPUT"),
        ({"reqId": "d815ba2f-84eb-490b-8e68-d9dd744da397"}, "SCHEMA_VALIDATE"),
        ({"unit": "C"}, "SCHEMA_VALIDATE"),
        ({"type": 3}, "SCHEMA_VALIDATE"),
    ],
)
async def test_sensor_registration_refusals(
    http: aiohttp.ClientSession,
    tp: ThingPlusEmulator,
    auth: dict[str, str],
    overrides: dict[str, Any],
    code: str,
) -> None:
    gid, did, _ = await register(http, auth)
    status, body = await call(
        http, "POST", f"/v2/gateways/{gid}/sensors", auth, sensor_body(new_id(), did, **overrides)
    )
    assert status == 400, body
    assert error_code(body) == code
    assert len(tp.sensors) == 1


async def test_sensor_needs_a_device_of_its_own_gateway(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, auth: dict[str, str]
) -> None:
    _, other_device, _ = await register(http, auth)
    gid = await _gateway(http, auth)
    status, body = await call(
        http, "POST", f"/v2/gateways/{gid}/sensors", auth, sensor_body(new_id(), other_device)
    )
    assert (status, error_code(body)) == (400, "INVALID_INPUT")
    status, body = await call(
        http, "POST", f"/v2/gateways/{gid}/sensors", auth, sensor_body(new_id(), new_id())
    )
    assert (status, error_code(body)) == (404, "NOT_FOUND")
    status, body = await call(
        http, "POST", f"/v2/gateways/{new_id()}/sensors", auth, sensor_body(new_id(), other_device)
    )
    assert (status, error_code(body)) == (404, "NOT_FOUND")
    assert len(tp.sensors) == 1


# --------------------------------------------------------------------------------------------------
# Status


async def test_gateway_status(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, clock: FakeClock, auth: dict[str, str]
) -> None:
    gid, _, _ = await register(http, auth)
    status, body = await call(
        http, "PUT", f"/v2/gateways/{gid}/status", auth, {"validDuration": 450, "value": "on"}
    )
    assert status == 200, body
    data = body["data"]
    now = int(clock.now * 1000)
    assert (data["type"], data["value"], data["srcDbType"]) == ("status", "on", "gateway")
    assert data["time"] == str(now)
    assert data["expireAt"] == str(now + 450_000)
    assert data["gateway"] == data["owner"] == data["status"] == gid
    clock.advance(5)
    await call(http, "PUT", f"/v2/gateways/{gid}/status", auth, {"validDuration": 7, "value": "err"})
    records = tp.gateway_statuses[gid]
    assert [(r.value, r.valid_duration, r.received) for r in records] == [
        ("on", 450, now),
        ("err", 7, now + 5000),
    ]
    assert records[1].expire_at == now + 5000 + 7000


async def test_sensor_status(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, clock: FakeClock, auth: dict[str, str]
) -> None:
    gid, _, sid = await register(http, auth)
    status, body = await call(
        http, "PUT", f"/v2/gateways/{gid}/sensors/{sid}/status", auth, {"validDuration": 9, "value": "off"}
    )
    assert status == 200, body
    data = body["data"]
    assert (data["srcType"], data["srcCategory"], data["srcDbType"]) == ("temperature", "sensor", "sensor")
    assert (data["sensor"], data["owner"]) == (sid, gid)
    assert data["expireAt"] == str(int(clock.now * 1000) + 9000)
    assert [r.value for r in tp.sensor_statuses[sid]] == ["off"]


@pytest.mark.parametrize(
    "body",
    [
        {"validDuration": 450, "value": "maybe"},
        {"validDuration": 450, "value": "ON"},
        {"validDuration": 0, "value": "on"},
        {"validDuration": -5, "value": "on"},
        {"validDuration": 1.5, "value": "on"},
        {"validDuration": "450", "value": "on"},
        {"validDuration": True, "value": "on"},
        {"value": "on"},
        {"validDuration": 450, "value": "on", "time": 1},
        ["on"],
    ],
)
async def test_status_refusals(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, auth: dict[str, str], body: Any
) -> None:
    gid, _, sid = await register(http, auth)
    for path in (f"/v2/gateways/{gid}/status", f"/v2/gateways/{gid}/sensors/{sid}/status"):
        status, answer = await call(http, "PUT", path, auth, body)
        assert status == 400, (path, answer)
        assert error_code(answer) == "SCHEMA_VALIDATE"
    assert tp.gateway_statuses == {} and tp.sensor_statuses == {}


async def test_status_needs_matching_owner(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, auth: dict[str, str]
) -> None:
    _, _, sid = await register(http, auth)
    other = await _gateway(http, auth)
    ok = {"validDuration": 10, "value": "on"}
    for path in (
        f"/v2/gateways/{other}/sensors/{sid}/status",
        f"/v2/gateways/{other}/sensors/{new_id()}/status",
        f"/v2/gateways/{new_id()}/status",
    ):
        status, body = await call(http, "PUT", path, auth, ok)
        assert (status, error_code(body)) == (404, "NOT_FOUND"), path
    assert tp.sensor_statuses == {}


# --------------------------------------------------------------------------------------------------
# Series


async def test_series_single_point(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, clock: FakeClock, auth: dict[str, str]
) -> None:
    gid, did, sid = await register(http, auth)
    path = f"/v2/gateways/{gid}/sensors/{sid}/series"
    status, body = await call(http, "PUT", path, auth, {"value": "36.5", "time": 1699715734508})
    assert status == 200, body
    data = body["data"]
    assert (data["id"], data["owner"], data["deviceId"], data["type"]) == (sid, gid, did, "temperature")
    assert data["series"].startswith("series.sensor.")
    assert [(p.time, p.value) for p in tp.points[sid]] == [(1699715734508, "36.5")]
    assert tp.points[sid][0].received == int(clock.now * 1000)


async def test_series_array(http: aiohttp.ClientSession, tp: ThingPlusEmulator, auth: dict[str, str]) -> None:
    gid, _, sid = await register(http, auth)
    path = f"/v2/gateways/{gid}/sensors/{sid}/series"
    pack = [{"value": "36.5", "time": 1699716734508}, {"value": "36.3", "time": 1699717184508}]
    status, body = await call(http, "PUT", path, auth, pack)
    assert status == 200, body
    data = body["data"]
    assert data["type"] == "series"
    assert data["seriesPack"] == pack
    assert (data["time"], data["value"], data["sensor"], data["owner"]) == ("1699717184508", "36.3", sid, gid)
    # a second batch repeating a time: both receipts recorded, the stored series keeps the last
    await call(http, "PUT", path, auth, [{"value": "36.4", "time": 1699717184508}])
    assert [(p.time, p.value) for p in tp.points[sid]] == [
        (1699716734508, "36.5"),
        (1699717184508, "36.3"),
        (1699717184508, "36.4"),
    ]
    assert tp.series(sid) == [(1699716734508, "36.5"), (1699717184508, "36.4")]
    assert tp.latest(sid) == {"time": 1699717184508, "value": "36.4"}
    assert tp.requests["series"] == 2


async def test_object_value_for_a_location_sensor(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, auth: dict[str, str]
) -> None:
    gid, _, sid = await register(http, auth, sensor_type="location", model="openApiLocation")
    point = {"value": {"lat": 37.5, "lng": 127.0}, "time": 1699715734508}
    status, body = await call(http, "PUT", f"/v2/gateways/{gid}/sensors/{sid}/series", auth, point)
    assert status == 200, body
    assert tp.points[sid][0].value == {"lat": 37.5, "lng": 127.0}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"value": 36.5, "time": 1699715734508}, "SCHEMA_VALIDATE"),  # a JSON number
        ({"value": True, "time": 1699715734508}, "SCHEMA_VALIDATE"),
        ({"value": None, "time": 1699715734508}, "SCHEMA_VALIDATE"),
        ({"value": "36.5", "time": 1699715734508.5}, "SCHEMA_VALIDATE"),  # a float time
        ({"value": "36.5", "time": "1699715734508"}, "SCHEMA_VALIDATE"),  # a string time
        ({"value": "36.5", "time": True}, "SCHEMA_VALIDATE"),
        ({"value": "36.5", "time": -1}, "SCHEMA_VALIDATE"),
        ({"value": "36.5"}, "SCHEMA_VALIDATE"),
        ({"value": "36.5", "time": 1699715734508, "unit": "C"}, "SCHEMA_VALIDATE"),  # an extra key
        ([], "SCHEMA_VALIDATE"),
        ("36.5", "SCHEMA_VALIDATE"),
        # one bad point refuses the whole batch
        ([{"value": "1", "time": 1699715734508}, {"value": 2, "time": 1699715734509}], "SCHEMA_VALIDATE"),
        ({"value": "hot", "time": 1699715734508}, "INVALID_INPUT"),  # not proper to a temperature
        ({"value": "NaN", "time": 1699715734508}, "INVALID_INPUT"),
        ({"value": {"c": 36.5}, "time": 1699715734508}, "INVALID_INPUT"),
    ],
)
async def test_series_refusals(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, auth: dict[str, str], body: Any, code: str
) -> None:
    gid, _, sid = await register(http, auth)
    status, answer = await call(http, "PUT", f"/v2/gateways/{gid}/sensors/{sid}/series", auth, body)
    assert status == 400, answer
    assert error_code(answer) == code
    assert answer["statusCode"] == 400
    assert tp.points.get(sid, []) == []
    assert tp.rejections[f"series:{code}"] == 1


async def test_series_needs_matching_owner(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, auth: dict[str, str]
) -> None:
    _, _, sid = await register(http, auth)
    other = await _gateway(http, auth)
    point = {"value": "1", "time": 1699715734508}
    for path in (
        f"/v2/gateways/{other}/sensors/{sid}/series",
        f"/v2/gateways/{other}/sensors/{new_id()}/series",
    ):
        status, body = await call(http, "PUT", path, auth, point)
        assert (status, error_code(body)) == (404, "NOT_FOUND")
    assert tp.points == {}


async def test_stale_points_refused_when_a_max_age_is_set(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, clock: FakeClock, auth: dict[str, str]
) -> None:
    gid, _, sid = await register(http, auth)
    tp.series_max_age_s = 3600
    now = int(clock.now * 1000)
    path = f"/v2/gateways/{gid}/sensors/{sid}/series"
    status, body = await call(http, "PUT", path, auth, {"value": "1", "time": now - 3_601_000})
    assert (status, error_code(body)) == (400, "INVALID_INPUT")
    status, _ = await call(http, "PUT", path, auth, {"value": "1", "time": now - 3_599_000})
    assert status == 200


async def test_series_without_a_token_records_nothing(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, auth: dict[str, str]
) -> None:
    gid, _, sid = await register(http, auth)
    status, _ = await call(
        http, "PUT", f"/v2/gateways/{gid}/sensors/{sid}/series", {}, {"value": "1", "time": 1}
    )
    assert status == 401
    assert tp.points == {}


async def test_snapshot_counts_points_and_statuses(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, auth: dict[str, str]
) -> None:
    gid, did, sid = await register(http, auth)
    await call(
        http,
        "PUT",
        f"/v2/gateways/{gid}/sensors/{sid}/series",
        auth,
        [{"value": "1", "time": RECENT_MS + 10}, {"value": "2", "time": RECENT_MS + 20}],
    )
    await call(
        http, "PUT", f"/v2/gateways/{gid}/sensors/{sid}/status", auth, {"validDuration": 9, "value": "on"}
    )
    await call(http, "PUT", f"/v2/gateways/{gid}/status", auth, {"validDuration": 9, "value": "on"})
    snap = tp.snapshot()
    (gateway,) = snap["gateways"]
    assert (gateway["id"], gateway["statuses"], gateway["latest_status"]["value"]) == (gid, 1, "on")
    assert [d["id"] for d in snap["devices"]] == [did]
    (sensor,) = snap["sensors"]
    assert (sensor["id"], sensor["points"], sensor["statuses"]) == (sid, 2, 1)
    assert sensor["latest"] == {"time": RECENT_MS + 20, "value": "2"}
    assert snap["tokens"]["issued"] == 1
    assert snap["requests"]["series"] == 1


# --------------------------------------------------------------------------------------------------
# The reporting calls' fast paths answer exactly as the plain ones did


async def test_reporting_answers_are_the_envelope_json_response_writes(
    http: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    gid, _, sid = await register(http, auth)
    status_body = {"validDuration": 9, "value": "on"}
    for path, body in (
        (f"/v2/gateways/{gid}/status", status_body),
        (f"/v2/gateways/{gid}/sensors/{sid}/status", status_body),
        (
            f"/v2/gateways/{gid}/sensors/{sid}/series",
            [{"value": "1.5", "time": RECENT_MS + 10}, {"value": "2", "time": RECENT_MS + 20}],
        ),
    ):
        async with http.put(path, headers=auth, json=body) as resp:
            raw = await resp.read()
            assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        answer = json.loads(raw)
        assert raw == json.dumps(answer).encode()  # json.dumps' separators, keys in this order
        assert list(answer) == ["statusCode", "message", "data"]
        assert (answer["statusCode"], answer["message"]) == (200, "OK")


async def test_reporting_paths_refuse_other_methods_and_near_misses(
    http: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    gid, _, sid = await register(http, auth)
    for method, path in (
        ("GET", f"/v2/gateways/{gid}/sensors/{sid}/series"),
        ("POST", f"/v2/gateways/{gid}/sensors/{sid}/status"),
        ("POST", f"/v2/gateways/{gid}/status"),
    ):
        async with http.request(method, path, headers=auth) as resp:
            assert (resp.status, resp.headers["Allow"]) == (405, "PUT")
    for path in (f"/v2/gateways/{gid}/sensors/{sid}/other", f"/v2/gateways/{gid}/sensors/{sid}/series/"):
        status, _ = await call(http, "PUT", path, auth, {"value": "1", "time": 1})
        assert status == 404


async def test_accepted_reports_still_reach_structlog_at_debug_level(
    http: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    gid, _, sid = await register(http, auth)
    with capture_logs() as logs:
        point = {"value": "1", "time": RECENT_MS}
        await call(http, "PUT", f"/v2/gateways/{gid}/sensors/{sid}/series", auth, point)
        await call(http, "PUT", f"/v2/gateways/{gid}/status", auth, {"validDuration": 9, "value": "on"})
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("emulator.thingplus.series_accepted", "debug"),
        ("emulator.thingplus.status_accepted", "debug"),
    ]
