"""The RCMS emulator against requests built by hand from the vendor's document (shared/specs/000_*.txt).

The signing below is the document's ``RCMSClient`` transcribed: no gatewayd signer is used, so these tests
pin the emulator to the document, not to our client.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gatewayd.emulator.admin import routes as admin_routes
from gatewayd.emulator.app import Emulator
from gatewayd.emulator.faults import Faults
from gatewayd.emulator.rcms import RcmsEmulator
from gatewayd.emulator.rcmstimeline import ReportTimeline
from gatewayd.inventory.config import RcmsConfig
from tests.helpers.clocks import FakeClock

CLIENT_ID = "rcmsClient01"
SECRET = "rcms-secret-key"
DEVICES = ["6001A2B3C4", "6001A2B3C5", "6001A2B3C6"]
NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
MINUTE = 60_000


def sign_request(
    method: str,
    path: str,
    params: dict[str, Any] | None = None,
    *,
    timestamp: int,
    client_id: str = CLIENT_ID,
    secret: str = SECRET,
) -> tuple[str, dict[str, str]]:
    """(url, headers) exactly as the document's RCMSClient.get/put builds them."""
    ts = str(timestamp)
    canon_params: dict[str, Any] = {
        "apiVersion": "1.0",
        "clientId": client_id,
        "signatureVersion": "1.0",
        "timestamp": ts,
        "uniqueCode": client_id,
    }
    canon_params.update(params or {})
    canonical = "&".join(f"{k}={v}" for k, v in sorted(canon_params.items(), key=lambda x: x[0]))
    string_to_sign = method + path + canonical + secret
    key = client_id + client_id
    signature = (
        hmac.new(key.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest().lower()
    )
    headers = {
        "apiVersion": "1.0",
        "signatureVersion": "1.0",
        "uniqueCode": client_id,
        "clientId": client_id,
        "timestamp": ts,
        "signature": signature,
    }
    return f"{path}?{canonical}", headers


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def emulator(clock: FakeClock) -> RcmsEmulator:
    config = RcmsConfig(
        endpoint="http://127.0.0.1:1", client_id=CLIENT_ID, client_secret=SECRET, devices=DEVICES
    )
    return RcmsEmulator(config, clock=clock)


@pytest.fixture
async def client(emulator: RcmsEmulator) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application()
    app.add_routes(emulator.routes())
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


Client = TestClient[web.Request, web.Application]


def now_ms(clock: FakeClock) -> int:
    return int(clock.now * 1000)


async def get(client: Client, url: str, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get(url, headers=headers)
    assert response.status == 200  # RCMS answers errors with HTTP 200 too
    body: dict[str, Any] = await response.json()
    assert set(body) == {"code", "msg", "data"}
    return body


def status_params(begin: int, end: int, page_num: int = 1, page_size: int = 10) -> dict[str, Any]:
    return {"pageNum": page_num, "pageSize": page_size, "beginTime": begin, "endTime": end}


# --------------------------------------------------------------------------------------------------
# Signature and public parameters


async def test_device_total_signed_as_the_document_does(client: Client, clock: FakeClock) -> None:
    url, headers = sign_request("GET", "/api/link/dashboard/deviceTotal", timestamp=now_ms(clock))
    body = await get(client, url, headers)
    assert body["code"] == 0, body
    assert body["msg"] == "Success"
    data = body["data"]
    assert data["deviceTotal"] == len(DEVICES)
    assert data["registeredTotal"] == len(DEVICES)
    assert data["unRegisteredTotal"] == 0
    assert data["onlineTotal"] + data["offlineTotal"] == data["deviceTotal"]
    assert data["userTotal"] >= 1


async def test_online_total_changes_over_time_and_stays_consistent(client: Client, clock: FakeClock) -> None:
    seen = set()
    for minute in range(0, 60, 5):
        clock.now = NOW + minute * 60
        url, headers = sign_request("GET", "/api/link/dashboard/deviceTotal", timestamp=now_ms(clock))
        data = (await get(client, url, headers))["data"]
        assert data["onlineTotal"] + data["offlineTotal"] == len(DEVICES)
        seen.add(data["onlineTotal"])
    assert len(seen) > 1, "each router should be offline part of the hour"


@pytest.mark.parametrize(
    "header", ["apiVersion", "signatureVersion", "uniqueCode", "clientId", "timestamp", "signature"]
)
async def test_missing_header_is_40001(client: Client, clock: FakeClock, header: str) -> None:
    url, headers = sign_request("GET", "/api/link/dashboard/deviceTotal", timestamp=now_ms(clock))
    del headers[header]
    body = await get(client, url, headers)
    assert body["code"] == 40001, body
    assert header in body["msg"]
    assert body["data"] is None


@pytest.mark.parametrize("param", ["apiVersion", "clientId", "signatureVersion", "timestamp", "uniqueCode"])
async def test_missing_public_query_parameter_is_40001(client: Client, clock: FakeClock, param: str) -> None:
    url, headers = sign_request("GET", "/api/link/dashboard/deviceTotal", timestamp=now_ms(clock))
    path, query = url.split("?")
    query = "&".join(p for p in query.split("&") if not p.startswith(param + "="))
    body = await get(client, f"{path}?{query}", headers)
    assert body["code"] == 40001, body


async def test_flipped_signature_character_is_40002(client: Client, clock: FakeClock) -> None:
    url, headers = sign_request("GET", "/api/link/dashboard/deviceTotal", timestamp=now_ms(clock))
    sig = headers["signature"]
    headers["signature"] = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    body = await get(client, url, headers)
    assert body["code"] == 40002, body
    assert "signature" in body["msg"].lower()


async def test_uppercase_signature_is_refused(client: Client, clock: FakeClock) -> None:
    """The document lowercases the hex digest; the emulator holds clients to it."""
    url, headers = sign_request("GET", "/api/link/dashboard/deviceTotal", timestamp=now_ms(clock))
    headers["signature"] = headers["signature"].upper()
    assert (await get(client, url, headers))["code"] == 40002


async def test_wrong_secret_is_40002(client: Client, clock: FakeClock) -> None:
    url, headers = sign_request(
        "GET", "/api/link/dashboard/deviceTotal", timestamp=now_ms(clock), secret=SECRET + "x"
    )
    assert (await get(client, url, headers))["code"] == 40002


async def test_unknown_client_is_40002(client: Client, clock: FakeClock) -> None:
    url, headers = sign_request(
        "GET", "/api/link/dashboard/deviceTotal", timestamp=now_ms(clock), client_id="someoneElse"
    )
    body = await get(client, url, headers)
    assert body["code"] == 40002
    assert "clientid" in body["msg"].lower()


async def test_signature_covers_the_query(client: Client, clock: FakeClock) -> None:
    sn = DEVICES[0]
    path = f"/api/link/device/devices/{sn}/statusData"
    begin = now_ms(clock) - 30 * MINUTE
    url, headers = sign_request("GET", path, status_params(begin, now_ms(clock)), timestamp=now_ms(clock))
    assert (await get(client, url, headers))["code"] == 0
    tampered = url.replace("pageSize=10", "pageSize=11")
    assert tampered != url
    assert (await get(client, tampered, headers))["code"] == 40002


async def test_signature_covers_the_path(client: Client, clock: FakeClock) -> None:
    params = status_params(now_ms(clock) - 10 * MINUTE, now_ms(clock))
    url, headers = sign_request(
        "GET", f"/api/link/device/devices/{DEVICES[0]}/statusData", params, timestamp=now_ms(clock)
    )
    other = url.replace(DEVICES[0], DEVICES[1])
    assert (await get(client, other, headers))["code"] == 40002


async def test_signature_covers_the_method(client: Client, clock: FakeClock) -> None:
    """A PUT signed as if it were a GET fails."""
    path = f"/api/link/devices/{DEVICES[0]}/group"
    url, headers = sign_request("GET", path, timestamp=now_ms(clock))
    response = await client.put(url, headers=headers, json={"groupName": "Demo"})
    assert (await response.json())["code"] == 40002


async def test_header_and_query_must_agree(client: Client, clock: FakeClock) -> None:
    url, headers = sign_request("GET", "/api/link/dashboard/deviceTotal", timestamp=now_ms(clock))
    headers["timestamp"] = str(now_ms(clock) + 1)
    assert (await get(client, url, headers))["code"] == 40002


@pytest.mark.parametrize("offset_s", [-6 * 60, 6 * 60, -3600])
async def test_timestamp_out_of_range_is_refused(client: Client, clock: FakeClock, offset_s: int) -> None:
    url, headers = sign_request(
        "GET", "/api/link/dashboard/deviceTotal", timestamp=now_ms(clock) + offset_s * 1000
    )
    body = await get(client, url, headers)
    assert body["code"] == 40002, body
    assert "timestamp" in body["msg"].lower()
    assert "out of range" in body["msg"].lower()


@pytest.mark.parametrize("offset_s", [-4 * 60, 4 * 60])
async def test_timestamp_within_five_minutes_is_accepted(
    client: Client, clock: FakeClock, offset_s: int
) -> None:
    url, headers = sign_request(
        "GET", "/api/link/dashboard/deviceTotal", timestamp=now_ms(clock) + offset_s * 1000
    )
    assert (await get(client, url, headers))["code"] == 0


async def test_timestamp_in_seconds_is_refused(client: Client, clock: FakeClock) -> None:
    url, headers = sign_request("GET", "/api/link/dashboard/deviceTotal", timestamp=int(clock.now))
    assert (await get(client, url, headers))["code"] == 40002


# --------------------------------------------------------------------------------------------------
# Status data


async def fetch_status(client: Client, clock: FakeClock, sn: str, params: dict[str, Any]) -> dict[str, Any]:
    url, headers = sign_request(
        "GET", f"/api/link/device/devices/{sn}/statusData", params, timestamp=now_ms(clock)
    )
    return await get(client, url, headers)


async def test_unknown_sn_is_40004(client: Client, clock: FakeClock) -> None:
    params = status_params(now_ms(clock) - 10 * MINUTE, now_ms(clock))
    body = await fetch_status(client, clock, "NOSUCHSN", params)
    assert body["code"] == 40004, body
    assert body["data"] is None


async def test_paging_one_record_a_minute_until_a_short_page(client: Client, clock: FakeClock) -> None:
    # 25 whole minutes lie in [begin, end]: begin is on a minute, end 30 s past the 25th.
    begin = (now_ms(clock) // MINUTE - 60) * MINUTE
    end = begin + 24 * MINUTE + 30_000
    sn = DEVICES[1]
    records: list[dict[str, Any]] = []
    sizes = []
    page = 1
    while True:
        body = await fetch_status(client, clock, sn, status_params(begin, end, page, 10))
        assert body["code"] == 0, body
        assert isinstance(body["data"], list)
        records.extend(body["data"])
        sizes.append(len(body["data"]))
        if len(body["data"]) < 10:
            break
        page += 1
    assert sizes == [10, 10, 5]
    times = [r["time"] for r in records]
    assert times == [begin + i * MINUTE for i in range(25)]
    # a page past the end is empty
    body = await fetch_status(client, clock, sn, status_params(begin, end, 4, 10))
    assert body["data"] == []


async def test_records_are_realistic_and_deterministic(client: Client, clock: FakeClock) -> None:
    begin = now_ms(clock) - 30 * MINUTE
    params = status_params(begin, now_ms(clock), 1, 50)
    first = await fetch_status(client, clock, DEVICES[0], params)
    clock.now += 7  # a later request for the same window gives the same records
    second = await fetch_status(client, clock, DEVICES[0], params)
    assert first["data"] == second["data"]
    other = await fetch_status(client, clock, DEVICES[2], params)
    assert [r["data"]["cellular"] for r in other["data"]] != [r["data"]["cellular"] for r in first["data"]]
    rssis = set()
    for record in first["data"]:
        data = record["data"]
        assert set(data["system"]) >= {"system_time", "device_model", "firmware_version", "uptime"}
        assert set(data["active_link"]) >= {"ip", "gateway", "link_uptime", "interface"}
        cellular = data["cellular"]
        assert set(cellular) >= {"rssi", "rsrp", "rsrq", "sinr", "operator", "network_type"}
        assert -70 <= cellular["rssi"] <= -50
        rssis.add(cellular["rssi"])
        assert record["time"] % MINUTE == 0
    assert len(first["data"]) == 30
    assert len(rssis) > 1, "the signal should vary from minute to minute"


async def test_window_ends_at_the_emulator_clock(client: Client, clock: FakeClock) -> None:
    begin = (now_ms(clock) // MINUTE - 5) * MINUTE
    body = await fetch_status(
        client, clock, DEVICES[0], status_params(begin, now_ms(clock) + 3600_000, 1, 100)
    )
    assert [r["time"] for r in body["data"]] == [begin + i * MINUTE for i in range(6)]
    future = await fetch_status(
        client, clock, DEVICES[0], status_params(now_ms(clock) + MINUTE, now_ms(clock) + 9 * MINUTE)
    )
    assert future["code"] == 0
    assert future["data"] == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"pageNum": "one", "pageSize": 10, "beginTime": 0, "endTime": 1}, 40002),
        ({"pageNum": 0, "pageSize": 10, "beginTime": 0, "endTime": 1}, 40002),
        ({"pageNum": 1, "pageSize": "x", "beginTime": 0, "endTime": 1}, 40002),
        ({"pageNum": 1, "pageSize": 10, "beginTime": "yesterday", "endTime": 1}, 40002),
        ({"pageNum": 1, "pageSize": 10, "beginTime": 5, "endTime": 1}, 40002),
        ({"pageNum": 1, "pageSize": 10, "endTime": 1}, 40001),
        ({"pageNum": 1, "pageSize": 10, "beginTime": 0}, 40001),
    ],
)
async def test_bad_status_parameters(
    client: Client, clock: FakeClock, params: dict[str, Any], code: int
) -> None:
    body = await fetch_status(client, clock, DEVICES[0], params)
    assert body["code"] == code, body


# --------------------------------------------------------------------------------------------------
# Group


async def test_set_group_is_recorded(client: Client, clock: FakeClock, emulator: RcmsEmulator) -> None:
    path = f"/api/link/devices/{DEVICES[2]}/group"
    url, headers = sign_request("PUT", path, timestamp=now_ms(clock))
    headers["Content-Type"] = "application/json"
    response = await client.put(url, headers=headers, data=b'{"groupName": "Demo"}')
    assert response.status == 200
    body = await response.json()
    assert body["code"] == 0, body
    assert emulator.snapshot()["groups"] == {DEVICES[2]: "Demo"}


async def test_group_body_is_not_signed(client: Client, clock: FakeClock, emulator: RcmsEmulator) -> None:
    """The document signs method, path and query only; any body goes with the same signature."""
    path = f"/api/link/devices/{DEVICES[0]}/group"
    url, headers = sign_request("PUT", path, timestamp=now_ms(clock))
    for name in ("First", "Second"):
        response = await client.put(url, headers=headers, json={"groupName": name})
        assert (await response.json())["code"] == 0
    assert emulator.snapshot()["groups"][DEVICES[0]] == "Second"


async def test_group_of_unknown_sn_is_40004(client: Client, clock: FakeClock, emulator: RcmsEmulator) -> None:
    url, headers = sign_request("PUT", "/api/link/devices/NOSUCHSN/group", timestamp=now_ms(clock))
    response = await client.put(url, headers=headers, json={"groupName": "Demo"})
    assert response.status == 200
    assert (await response.json())["code"] == 40004
    assert emulator.snapshot()["groups"] == {}


@pytest.mark.parametrize(
    ("payload", "code"), [({}, 40001), ({"groupName": ""}, 40002), ({"groupName": 5}, 40002)]
)
async def test_group_body_is_checked(
    client: Client, clock: FakeClock, payload: dict[str, Any], code: int
) -> None:
    url, headers = sign_request("PUT", f"/api/link/devices/{DEVICES[0]}/group", timestamp=now_ms(clock))
    response = await client.put(url, headers=headers, json=payload)
    assert (await response.json())["code"] == code


async def test_put_with_bad_signature_records_nothing(
    client: Client, clock: FakeClock, emulator: RcmsEmulator
) -> None:
    url, headers = sign_request(
        "PUT", f"/api/link/devices/{DEVICES[0]}/group", timestamp=now_ms(clock), secret="wrong"
    )
    response = await client.put(url, headers=headers, json={"groupName": "Demo"})
    assert (await response.json())["code"] == 40002
    assert emulator.snapshot()["groups"] == {}


# --------------------------------------------------------------------------------------------------
# Snapshot


async def test_snapshot_counts_requests_and_rejections(
    client: Client, clock: FakeClock, emulator: RcmsEmulator
) -> None:
    url, headers = sign_request("GET", "/api/link/dashboard/deviceTotal", timestamp=now_ms(clock))
    await get(client, url, headers)
    await get(client, url, {**headers, "signature": "0" * 64})
    stale_url, stale_headers = sign_request(
        "GET", "/api/link/dashboard/deviceTotal", timestamp=now_ms(clock) - 3600_000
    )
    await get(client, stale_url, stale_headers)
    await fetch_status(client, clock, "NOSUCHSN", status_params(0, 1))
    emulator.expire_tokens()  # a no-op for RCMS
    snap = emulator.snapshot()
    assert snap["cloud"] == "rcms"
    assert snap["requests"]["GET /api/link/dashboard/deviceTotal"] == 3
    assert snap["ok"]["GET /api/link/dashboard/deviceTotal"] == 1
    assert snap["requests"]["GET /api/link/device/devices/{sn}/statusData"] == 1
    assert snap["rejections"] == {"bad_signature": 1, "stale_timestamp": 1, "unknown_device": 1}
    assert "rcms-secret-key" not in repr(snap)


# --------------------------------------------------------------------------------------------------
# History at each router's own reporting interval


@pytest.mark.parametrize(
    ("changes", "begin", "last", "expected"),
    [
        ([], 0, 180_000, [0, 60_000, 120_000, 180_000]),  # the default: on the minute
        ([], 1, 119_999, [60_000]),
        ([(10_000, 0)], 5_000, 40_000, [10_000, 20_000, 30_000, 40_000]),  # the whole history
        # from 65 s on every 20 s: the records before stay as they were
        ([(20_000, 65_000)], 0, 130_000, [0, 60_000, 65_000, 85_000, 105_000, 125_000]),
        # changed twice; a later change replaces what it overlaps
        (
            [(20_000, 65_000), (30_000, 100_000)],
            60_000,
            170_000,
            [60_000, 65_000, 85_000, 100_000, 130_000, 160_000],
        ),
        ([(20_000, 65_000), (5_000, 60_000)], 59_000, 75_000, [60_000, 65_000, 70_000, 75_000]),
        ([], 200, 100, []),
    ],
)
def test_timeline_times(changes: list[tuple[int, int]], begin: int, last: int, expected: list[int]) -> None:
    timeline = ReportTimeline(MINUTE)
    for interval, since in changes:
        timeline.set_interval("SN", interval, since)
    assert timeline.count("SN", begin, last) == len(expected)
    assert timeline.times("SN", begin, last, 0, 1000) == expected
    for start in range(len(expected) + 1):  # any page of it
        assert timeline.times("SN", begin, last, start, start + 2) == expected[start : start + 2]


async def test_each_router_reports_at_its_own_interval_and_keeps_its_history(
    client: Client, clock: FakeClock, emulator: RcmsEmulator
) -> None:
    emulator.set_record_interval(10_000, DEVICES[0], since_ms=0)
    start = now_ms(clock) // MINUTE * MINUTE
    clock.now = start / 1000 + 120
    window = status_params(start, start + 2 * MINUTE, 1, 100)
    fast = (await fetch_status(client, clock, DEVICES[0], window))["data"]
    slow = (await fetch_status(client, clock, DEVICES[1], window))["data"]
    assert [r["time"] for r in fast] == list(range(start, start + 2 * MINUTE + 1, 10_000))
    assert [r["time"] for r in slow] == [start, start + MINUTE, start + 2 * MINUTE]
    assert len({r["data"]["cellular"]["rssi"] for r in fast}) > 1, "each record its own signal"
    # Asked again an hour later (an outage in between), the window holds the same records.
    clock.now += 3600
    assert (await fetch_status(client, clock, DEVICES[0], window))["data"] == fast
    # From now on every 30 s: the history before stays as served.
    emulator.set_record_interval(30_000, DEVICES[0])
    clock.now += 65
    later = (await fetch_status(client, clock, DEVICES[0], status_params(start, now_ms(clock), 1, 1000)))[
        "data"
    ]
    times = [r["time"] for r in later]
    changed = now_ms(clock) - 65_000
    assert times[: len(fast)] == [r["time"] for r in fast]
    assert times[-3:] == [changed, changed + 30_000, changed + 60_000]
    assert emulator.snapshot()["reporting"]["routers"][DEVICES[0]][-1] == [changed, 30_000]


async def test_record_interval_over_admin(emulator: RcmsEmulator, clock: FakeClock) -> None:
    app = web.Application()
    app.add_routes(emulator.routes())
    app.add_routes(admin_routes(Emulator([emulator], Faults())))
    async with TestClient(TestServer(app, host="127.0.0.1")) as http:
        ok = await http.post("/_emulator/rcms/record-interval", json={"ms": 5000, "sn": DEVICES[2]})
        assert ok.status == 200 and await ok.json() == {"ms": 5000, "sn": DEVICES[2]}
        assert emulator.timeline.interval_ms(DEVICES[2], now_ms(clock)) == 5000
        assert emulator.timeline.interval_ms(DEVICES[1], now_ms(clock)) == MINUTE
        everyone = await http.post("/_emulator/rcms/record-interval", json={"ms": 2000})
        assert everyone.status == 200
        assert {emulator.timeline.interval_ms(sn, now_ms(clock)) for sn in DEVICES} == {2000}
        for body, status in [
            ({"ms": 0}, 400),
            ({"ms": "5000"}, 400),
            ({"ms": 5000, "every": 1}, 400),
            ({"ms": 5000, "sn": 7}, 400),
            ({"ms": 5000, "sn": "NOSUCHSN"}, 404),
        ]:
            refused = await http.post("/_emulator/rcms/record-interval", json=body)
            assert refused.status == status, body
            assert "error" in await refused.json()
