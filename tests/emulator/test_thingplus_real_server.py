"""The emulated Thing+ answers as the real platform does where the document is silent or stricter (issue 17).

The reference is an error suite recorded against the real sandbox (``shared/specs/README.md``): a point about
5 days old is 400 INVALID_INPUT; an existing reqId is 409 CONFLICT before anything else in the body is
checked; sensor bodies may carry ``network``, ``sequence``, ``virtual`` and device bodies ``address``; the
server is JavaScript, so ``90.0`` is the integer 90. Every body here is JSON text written out by hand, as
the real server would receive it; gatewayd's client is not used.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from gatewayd.emulator.thingplus import ThingPlusEmulator
from tests.emulator import call, error_code, new_id, register, send_json_text
from tests.helpers.clocks import FakeClock

DAY_MS = 86_400_000


async def put(http: aiohttp.ClientSession, path: str, auth: dict[str, str], text: str) -> tuple[int, Any]:
    return await send_json_text(http, "PUT", path, auth, text)


async def post(http: aiohttp.ClientSession, path: str, auth: dict[str, str], text: str) -> tuple[int, Any]:
    return await send_json_text(http, "POST", path, auth, text)


def now_ms(clock: FakeClock) -> int:
    return int(clock.now * 1000)


# --------------------------------------------------------------------------------------------------
# 1. Stale and future points


@pytest.mark.parametrize(
    ("age_ms", "status"),
    [
        (5 * DAY_MS + 1000, 400),  # the real sandbox refused a point 5 days old
        (5 * DAY_MS - 1000, 200),
        (0, 200),
        (-600_000, 200),  # 10 minutes ahead of the server's clock: a box whose clock runs fast
        (-601_000, 400),
        (-40 * DAY_MS, 400),  # a clock set wrong
    ],
)
async def test_points_too_old_or_too_far_ahead_are_invalid_input(
    http: aiohttp.ClientSession,
    tp: ThingPlusEmulator,
    clock: FakeClock,
    auth: dict[str, str],
    age_ms: int,
    status: int,
) -> None:
    gid, _, sid = await register(http, auth)
    when = now_ms(clock) - age_ms
    got, body = await put(
        http, f"/v2/gateways/{gid}/sensors/{sid}/series", auth, f'{{"value":"21.5","time":{when}}}'
    )
    assert got == status, body
    if status == 400:
        assert error_code(body) == "INVALID_INPUT"
        past = "too far in the past" in body["errors"][0]["message"]
        assert past == (age_ms > 0)
        assert tp.points.get(sid, []) == []
    else:
        assert [p.time for p in tp.points[sid]] == [when]


async def test_one_stale_point_refuses_its_whole_array(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, clock: FakeClock, auth: dict[str, str]
) -> None:
    gid, _, sid = await register(http, auth)
    fresh, stale = now_ms(clock) - 1000, now_ms(clock) - 6 * DAY_MS
    text = f'[{{"value":"1","time":{fresh}}},{{"value":"2","time":{stale}}}]'
    status, body = await put(http, f"/v2/gateways/{gid}/sensors/{sid}/series", auth, text)
    assert (status, error_code(body)) == (400, "INVALID_INPUT")
    assert body["errors"][0]["message"].startswith(f"body[1].time {stale} is too far in the past")
    assert tp.points.get(sid, []) == []
    assert tp.rejections["series:INVALID_INPUT"] == 1


async def test_series_limits_over_the_admin_api(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, clock: FakeClock, auth: dict[str, str]
) -> None:
    gid, _, sid = await register(http, auth)
    path = f"/v2/gateways/{gid}/sensors/{sid}/series"
    status, state = await call(http, "GET", "/_emulator/state")
    assert state["thingplus"]["series_limits"] == {"max_age_s": 432000.0, "max_future_s": 600.0}

    status, body = await call(http, "POST", "/_emulator/thingplus/series-limits", json={"max_age": "90s"})
    assert (status, body) == (200, {"max_age_s": 90.0, "max_future_s": 600.0})
    assert tp.series_max_age_s == 90.0
    old = now_ms(clock) - 91_000
    assert (await put(http, path, auth, f'{{"value":"1","time":{old}}}'))[0] == 400
    assert (await put(http, path, auth, f'{{"value":"1","time":{old + 2000}}}'))[0] == 200

    limits = {"max_age": None, "max_future": 30}  # null: no limit; a number: seconds
    status, body = await call(http, "POST", "/_emulator/thingplus/series-limits", json=limits)
    assert (status, body) == (200, {"max_age_s": None, "max_future_s": 30.0})
    assert (await put(http, path, auth, f'{{"value":"1","time":{old - 30 * DAY_MS}}}'))[0] == 200
    assert (await put(http, path, auth, f'{{"value":"1","time":{now_ms(clock) + 31_000}}}'))[0] == 400
    status, state = await call(http, "GET", "/_emulator/state")
    assert state["thingplus"]["series_limits"] == {"max_age_s": None, "max_future_s": 30.0}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"max_age": "2x"}, "max_age: cannot parse duration '2x'"),
        ({"max_age": 0}, "max_age: must be greater than zero"),
        ({"max_future": True}, "max_future: must be a duration"),
        ({"max_age": "1d", "stale": "1d"}, "unknown key(s) ['stale']"),
    ],
)
async def test_series_limits_refuses_bad_values_and_changes_nothing(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, body: dict[str, Any], message: str
) -> None:
    status, answer = await call(http, "POST", "/_emulator/thingplus/series-limits", json=body)
    assert status == 400
    assert answer["error"].startswith(message), answer
    assert tp.series_limits() == {"max_age_s": 432000.0, "max_future_s": 600.0}


# --------------------------------------------------------------------------------------------------
# 2. Not stricter than the real API


@pytest.mark.parametrize(
    "extra",
    [
        '"network":"daliworks","sequence":"1","virtual":"n"',
        '"network":"daliworks","sequence":2,"virtual":"y"',
        '"sequence":2.0',
        '"virtual":"n"',
    ],
)
async def test_sensor_registration_takes_the_model_entries_keys(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, auth: dict[str, str], extra: str
) -> None:
    gid, did, _ = await register(http, auth)
    sid = new_id()
    text = (
        f'{{"reqId":"{sid}","name":"Temperature 2","type":"temperature","driverName":"openApiSensor",'
        f'"model":"openApiTemp","category":"sensor","deviceId":"{did}",{extra}}}'
    )
    status, body = await post(http, f"/v2/gateways/{gid}/sensors", auth, text)
    assert status == 201, body
    given = json.loads(f"{{{extra}}}")
    assert {k: body["data"][k] for k in given} == given
    assert {k: tp.sensors[sid][k] for k in given} == given


@pytest.mark.parametrize(
    "extra",
    ['"virtual":"yes"', '"virtual":true', '"sequence":1.5', '"network":""', '"network":7', '"unit":"C"'],
)
async def test_sensor_registration_still_refuses_bad_or_unknown_keys(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, auth: dict[str, str], extra: str
) -> None:
    gid, did, _ = await register(http, auth)
    text = (
        f'{{"reqId":"{new_id()}","name":"T","type":"temperature","driverName":"openApiSensor",'
        f'"model":"openApiTemp","category":"sensor","deviceId":"{did}",{extra}}}'
    )
    status, body = await post(http, f"/v2/gateways/{gid}/sensors", auth, text)
    assert (status, error_code(body)) == (400, "SCHEMA_VALIDATE")
    assert len(tp.sensors) == 1


@pytest.mark.parametrize(
    ("address", "ok"), [('"00:11:22"', True), ("7", True), ('""', False), ("[1]", False)]
)
async def test_device_registration_takes_an_address(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, auth: dict[str, str], address: str, ok: bool
) -> None:
    gid, _, _ = await register(http, auth)
    did = new_id()
    text = f'{{"reqId":"{did}","name":"Meter","model":"open-api-device-v1.0","address":{address}}}'
    status, body = await post(http, f"/v2/gateways/{gid}/devices", auth, text)
    if ok:
        assert status == 201, body
        assert body["data"]["address"] == tp.devices[did]["address"] == json.loads(address)
    else:
        assert (status, error_code(body)) == (400, "SCHEMA_VALIDATE")


@pytest.mark.parametrize(
    ("extra", "interval"),
    [
        ('"reportInterval":60000', "60000"),
        ('"reportInterval":"60000"', "60000"),  # the platform's own records write it as text
        ('"reportInterval":60000.0', "60000"),
        ('"autoCreateDiscoverable":"y"', "5000"),  # the emulator's default (the fixture's 5000)
    ],
)
async def test_register_gateway_takes_the_documented_optional_params(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, auth: dict[str, str], extra: str, interval: str
) -> None:
    gid = new_id()
    text = f'{{"reqId":"{gid}","params":{{"siteId":"1","model":"52","name":"Open Gateway 1",{extra}}}}}'
    status, body = await post(http, "/v2/registerGateway", auth, text)
    assert status == 201, body
    assert body["data"]["reportInterval"] == tp.gateways[gid]["reportInterval"] == interval
    status, body = await call(http, "GET", f"/v2/gateways/{gid}", auth)
    assert body["data"]["reportInterval"] == interval
    if "autoCreateDiscoverable" in extra:
        assert body["data"]["autoCreateDiscoverable"] == "y"


@pytest.mark.parametrize(
    "extra",
    [
        '"reportInterval":0',
        '"reportInterval":"1m"',
        '"reportInterval":1500.5',
        '"autoCreateDiscoverable":"yes"',
        '"location":"Seoul"',  # not a documented option
    ],
)
async def test_register_gateway_refuses_bad_or_unknown_params(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, auth: dict[str, str], extra: str
) -> None:
    text = f'{{"reqId":"{new_id()}","params":{{"siteId":"1","model":"52","name":"G",{extra}}}}}'
    status, body = await post(http, "/v2/registerGateway", auth, text)
    assert (status, error_code(body)) == (400, "SCHEMA_VALIDATE")
    assert tp.gateways == {}


# --------------------------------------------------------------------------------------------------
# 3. An existing reqId is a conflict before anything else in the body is checked


async def test_an_existing_req_id_is_conflict_before_the_body_is_validated(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, auth: dict[str, str]
) -> None:
    gid, did, sid = await register(http, auth)
    for path, text in (
        ("/v2/registerGateway", f'{{"reqId":"{gid}","params":{{"siteId":7,"colour":"red"}}}}'),
        (f"/v2/gateways/{gid}/devices", f'{{"reqId":"{did}","model":"some-other-model","extra":1}}'),
        (f"/v2/gateways/{gid}/sensors", f'{{"reqId":"{sid}","type":"no-such-type"}}'),
    ):
        status, body = await post(http, path, auth, text)
        assert (status, error_code(body)) == (409, "CONFLICT"), path
    # A new reqId with the same bodies is checked as before.
    status, body = await post(http, f"/v2/gateways/{gid}/sensors", auth, f'{{"reqId":"{new_id()}"}}')
    assert (status, error_code(body)) == (400, "SCHEMA_VALIDATE")
    assert (len(tp.gateways), len(tp.devices), len(tp.sensors)) == (1, 1, 1)


# --------------------------------------------------------------------------------------------------
# 4. JSON numbers as a JavaScript server reads them


async def test_integral_floats_are_integers(
    http: aiohttp.ClientSession, tp: ThingPlusEmulator, clock: FakeClock, auth: dict[str, str]
) -> None:
    gid, _, sid = await register(http, auth)
    status, body = await put(http, f"/v2/gateways/{gid}/status", auth, '{"validDuration":90.0,"value":"on"}')
    assert status == 200, body
    assert tp.gateway_statuses[gid][-1].valid_duration == 90
    assert int(body["data"]["expireAt"]) - int(body["data"]["time"]) == 90_000
    path = f"/v2/gateways/{gid}/sensors/{sid}"
    assert (await put(http, f"{path}/status", auth, '{"validDuration":9e1,"value":"off"}'))[0] == 200
    assert tp.sensor_statuses[sid][-1].valid_duration == 90

    when = now_ms(clock) - 1000
    status, body = await put(http, f"{path}/series", auth, f'[{{"value":"1","time":{when}.0}}]')
    assert status == 200, body
    assert body["data"]["seriesPack"] == [{"value": "1", "time": when}]
    assert tp.points[sid][-1].time == when and type(tp.points[sid][-1].time) is int


@pytest.mark.parametrize(
    ("where", "text"),
    [
        ("status", '{"validDuration":90.5,"value":"on"}'),
        ("status", '{"validDuration":"90","value":"on"}'),
        ("series", '{"value":"1","time":1699999999000.5}'),
        ("series", '{"value":"1","time":"1699999999000"}'),
    ],
)
async def test_fractions_and_texts_are_still_not_integers(
    http: aiohttp.ClientSession, auth: dict[str, str], where: str, text: str
) -> None:
    gid, _, sid = await register(http, auth)
    path = f"/v2/gateways/{gid}/sensors/{sid}/{where}"
    status, body = await put(http, path, auth, text)
    assert (status, error_code(body)) == (400, "SCHEMA_VALIDATE")
