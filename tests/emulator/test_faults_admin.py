"""Fault injection (the rules, then over HTTP) and the admin paths under /_emulator/."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import pytest

from gatewayd.emulator import EmulatorServer, Faults, RateLimit, build_app, serve_forever
from gatewayd.emulator.app import EMULATOR_KEY
from gatewayd.emulator.faults import CLOUDS, cloud_of
from tests.emulator import ALL_CLOUDS, call, error_code, inventory, register
from tests.helpers.clocks import FakeClock

# --------------------------------------------------------------------------------------------------
# The rules, without a server


@pytest.mark.parametrize(
    ("path", "cloud"),
    [
        ("/v2/oauth2/token", "thingplus"),
        ("/v2/gateways/abc/sensors/def/series", "thingplus"),
        ("/api/link/dashboard/deviceTotal", "rcms"),
        ("/api/v1/device/dev1/_detail", "loctube"),
        ("/api/v1/token", "loctube"),
        ("/loctube/oauth2/token", "loctube"),
        ("/device/instance/_query", "loctube"),
        ("/_emulator/state", "admin"),
        ("/", None),
        ("/v3/x", None),
    ],
)
def test_cloud_of(path: str, cloud: str | None) -> None:
    assert cloud_of(path) == cloud


def test_nothing_set_passes_at_once() -> None:
    faults = Faults()
    for cloud in (*CLOUDS, "admin", None):
        verdict = faults.decide(cloud)
        assert (verdict.passes, verdict.delay_s, dict(verdict.headers)) == (True, 0.0, {})


def test_an_expired_outage_passes_again() -> None:
    clock = FakeClock(100.0)
    faults = Faults(monotonic=clock)
    faults.set("thingplus", outage_s=1)
    assert faults.decide("thingplus").status == 503
    clock.advance(1)
    assert faults.decide("thingplus").passes
    assert faults.snapshot()["thingplus"]["outage"] is None
    assert faults.get("thingplus").injected["outage"] == 1


def test_outage_lasts_until_its_monotonic_deadline() -> None:
    mono = FakeClock(100.0)
    faults = Faults(monotonic=mono)
    faults.set("thingplus", outage_s=30)
    assert faults.decide("thingplus").status == 503
    assert faults.decide("rcms").passes  # other clouds are not touched
    assert faults.decide("admin").passes and faults.decide(None).passes
    mono.advance(29.9)
    assert faults.decide("thingplus").status == 503
    assert faults.active("thingplus")
    mono.advance(0.1)
    assert faults.decide("thingplus").passes
    assert not faults.active("thingplus")
    assert faults.get("thingplus").injected["outage"] == 2


def test_outage_until_cleared() -> None:
    mono = FakeClock()
    faults = Faults(monotonic=mono)
    faults.set("rcms", outage_s=math.inf)
    mono.advance(1e9)
    assert faults.decide("rcms").status == 503
    assert faults.snapshot()["rcms"]["outage"] == {"until_cleared": True, "remaining_s": None}
    faults.clear("rcms")
    assert faults.decide("rcms").passes
    assert faults.snapshot()["rcms"]["outage"] is None


def test_rate_limit_for_the_next_k_requests() -> None:
    faults = Faults()
    faults.set("loctube", rate_limit=RateLimit(count=3, retry_after=2))
    verdicts = [faults.decide("loctube") for _ in range(5)]
    assert [v.status for v in verdicts] == [429, 429, 429, None, None]
    assert all(v.headers == {"Retry-After": "2"} for v in verdicts[:3])


def test_rate_limit_window_says_what_is_left() -> None:
    mono = FakeClock(0.0)
    faults = Faults(monotonic=mono)
    faults.set("thingplus", rate_limit={"window_s": 10})
    first = faults.decide("thingplus")
    assert (first.status, first.headers["Retry-After"]) == (429, "10")
    mono.advance(7.5)
    assert faults.decide("thingplus").headers["Retry-After"] == "3"
    mono.advance(2.5)
    assert faults.decide("thingplus").passes


def test_failure_rate_is_seeded_and_about_right() -> None:
    def run(seed: int) -> list[int | None]:
        faults = Faults(seed=seed)
        faults.set("thingplus", failure_rate=0.3)
        return [faults.decide("thingplus").status for _ in range(2000)]

    first = run(7)
    assert first == run(7)
    assert first != run(8)
    counts = Counter(first)
    assert set(counts) == {None, 500, 503}
    assert 0.25 < (counts[500] + counts[503]) / 2000 < 0.35


def test_failure_rate_extremes_and_statuses() -> None:
    faults = Faults()
    faults.set("rcms", failure_rate=1.0, failure_statuses=[502])
    assert {faults.decide("rcms").status for _ in range(50)} == {502}
    faults.set("rcms", failure_rate=0.0)
    assert all(faults.decide("rcms").passes for _ in range(50))


def test_latency_comes_with_every_verdict() -> None:
    faults = Faults()
    faults.set("thingplus", latency_s=0.25, outage_s=5)
    verdict = faults.decide("thingplus")
    assert (verdict.delay_s, verdict.status) == (0.25, 503)
    faults.clear("thingplus", "outage")
    verdict = faults.decide("thingplus")
    assert (verdict.delay_s, verdict.passes) == (0.25, True)
    faults.clear("thingplus", "latency")
    assert faults.decide("thingplus").delay_s == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"failure_rate": 1.5},
        {"failure_rate": -0.1},
        {"latency_s": -1},
        {"outage_s": 0},
        {"outage_s": -3},
        {"failure_statuses": [200]},
        {"failure_statuses": []},
        {"rate_limit": {}},
        {"rate_limit": {"count": 0}},
        {"rate_limit": {"count": 2, "colour": "red"}},
        {"rate_limit": {"window_s": -1}},
        {"rate_limit": {"count": 1, "retry_after": -1}},
    ],
)
def test_bad_settings_change_nothing(kwargs: dict[str, object]) -> None:
    faults = Faults()
    before = faults.snapshot()
    with pytest.raises(ValueError):
        # a good setting next to the bad one must not be applied either
        good = {"failure_rate": 0.5} if "latency_s" in kwargs else {"latency_s": 1.0}
        faults.set("thingplus", **good, **kwargs)  # type: ignore[arg-type]
    assert faults.snapshot() == before


def test_unknown_cloud_and_kind() -> None:
    faults = Faults()
    with pytest.raises(ValueError, match="unknown cloud"):
        faults.set("aws", outage_s=1)
    with pytest.raises(ValueError, match="unknown fault kind"):
        faults.clear("rcms", "meteor")


# --------------------------------------------------------------------------------------------------
# Over HTTP


@pytest.fixture
def mono() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
async def server(mono: FakeClock) -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(inventory(), report_interval_ms=5000, faults=Faults(monotonic=mono)) as srv:
        yield srv


async def test_server_url_is_loopback_and_closes() -> None:
    async with EmulatorServer(inventory()) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.port is not None and server.port > 0
        async with aiohttp.ClientSession() as session, session.get(f"{server.url}/_emulator/healthz") as resp:
            assert await resp.json() == {"ok": True, "clouds": ["thingplus"]}
    with pytest.raises(RuntimeError):
        _ = server.url


async def test_outage_then_clear_from_python(
    http: aiohttp.ClientSession, server: EmulatorServer, auth: dict[str, str]
) -> None:
    server.emulator.faults.set("thingplus", outage_s=30)
    status, body = await call(http, "GET", "/v2/sites", auth)
    assert status == 503
    assert "outage" in body
    assert (await call(http, "POST", "/v2/oauth2/token", json={}))[0] == 503
    assert (await call(http, "GET", "/_emulator/state"))[0] == 200  # admin is never faulted
    server.emulator.faults.clear("thingplus")
    assert (await call(http, "GET", "/v2/sites", auth))[0] == 200


async def test_outage_recovers_at_its_deadline(
    http: aiohttp.ClientSession, server: EmulatorServer, mono: FakeClock, auth: dict[str, str]
) -> None:
    status, body = await call(http, "POST", "/_emulator/faults/thingplus", json={"outage_s": 10})
    assert status == 200
    assert body["thingplus"]["outage"] == {"until_cleared": False, "remaining_s": 10}
    assert (await call(http, "GET", "/v2/sites", auth))[0] == 503
    mono.advance(10)
    assert (await call(http, "GET", "/v2/sites", auth))[0] == 200


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        (None, 200),  # not a browser: tests, curl, the one-shot commands
        ("SAME", 200),  # the console's own page
        ("http://evil.example", 403),  # another site's page in the same browser
        ("http://127.0.0.1:1", 403),  # another port is another site
        ("null", 403),  # a sandboxed frame or a file
    ],
)
async def test_a_change_asked_by_another_sites_page_is_refused(
    http: aiohttp.ClientSession, server: EmulatorServer, origin: str | None, status: int
) -> None:
    headers = {} if origin is None else {"Origin": server.url if origin == "SAME" else origin}
    answer, body = await call(http, "POST", "/_emulator/faults/thingplus", headers, json={"outage": True})
    assert answer == status
    refused = server.emulator.faults.snapshot()["thingplus"]["outage"] is None
    assert refused == (status == 403)
    if status == 403:
        assert "may not change the emulator" in body["error"]
    # reading is never refused: the page of another site cannot read the answer anyway (no CORS)
    assert (await call(http, "GET", "/_emulator/state", headers))[0] == 200


async def test_outage_over_admin_until_deleted(http: aiohttp.ClientSession, auth: dict[str, str]) -> None:
    assert (await call(http, "POST", "/_emulator/faults/thingplus", json={"outage": True}))[0] == 200
    assert (await call(http, "GET", "/v2/sites", auth))[0] == 503
    status, body = await call(http, "DELETE", "/_emulator/faults/thingplus")
    assert status == 200
    assert body["thingplus"]["outage"] is None
    assert (await call(http, "GET", "/v2/sites", auth))[0] == 200


async def test_outage_of_another_cloud_leaves_thingplus_alone(
    http: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    assert (await call(http, "POST", "/_emulator/faults/rcms", json={"outage_s": 60}))[0] == 200
    assert (await call(http, "GET", "/v2/sites", auth))[0] == 200
    assert (await call(http, "GET", "/api/link/dashboard/deviceTotal"))[0] == 503


async def test_rate_limit_over_admin(http: aiohttp.ClientSession, auth: dict[str, str]) -> None:
    status, _ = await call(
        http, "POST", "/_emulator/faults/thingplus", json={"rate_limit": {"count": 3, "retry_after": 2}}
    )
    assert status == 200
    for _ in range(3):
        async with http.get("/v2/sites", headers=auth) as resp:
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "2"
    assert (await call(http, "GET", "/v2/sites", auth))[0] == 200


async def test_latency_over_admin(http: aiohttp.ClientSession, auth: dict[str, str]) -> None:
    assert (await call(http, "POST", "/_emulator/faults/thingplus", json={"latency_s": 0.2}))[0] == 200
    started = time.monotonic()
    assert (await call(http, "GET", "/v2/sites", auth))[0] == 200
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    assert (await call(http, "GET", "/_emulator/faults"))[0] == 200
    assert time.monotonic() - started < 0.2  # admin is not delayed


async def test_failure_rate_over_admin(http: aiohttp.ClientSession, auth: dict[str, str]) -> None:
    body = {"failure_rate": 1.0, "failure_statuses": [500], "seed": 3}
    assert (await call(http, "POST", "/_emulator/faults/thingplus", json=body))[0] == 200
    assert [(await call(http, "GET", "/v2/sites", auth))[0] for _ in range(3)] == [500, 500, 500]
    status, faults = await call(http, "GET", "/_emulator/faults")
    assert status == 200
    assert faults["thingplus"]["injected"] == {"failure": 3}
    assert (await call(http, "POST", "/_emulator/faults/thingplus", json={"failure_rate": 0}))[0] == 200
    assert (await call(http, "GET", "/v2/sites", auth))[0] == 200


async def test_expire_tokens_over_admin(http: aiohttp.ClientSession, auth: dict[str, str]) -> None:
    assert (await call(http, "GET", "/v2/sites", auth))[0] == 200
    status, body = await call(http, "POST", "/_emulator/tokens/expire")
    assert (status, body) == (200, {"expired": ["thingplus"]})
    status, body = await call(http, "GET", "/v2/sites", auth)
    assert status == 401
    assert body["message"] == "jwt expired"
    assert (await call(http, "POST", "/_emulator/tokens/expire", json={"cloud": "thingplus"}))[0] == 200
    assert (await call(http, "POST", "/_emulator/tokens/expire", json={"cloud": "rcms"}))[0] == 404


async def test_report_interval_over_admin(
    http: aiohttp.ClientSession, server: EmulatorServer, auth: dict[str, str]
) -> None:
    gid, _, _ = await register(http, auth)
    status, body = await call(http, "POST", "/_emulator/thingplus/report-interval", json={"ms": 3000})
    assert (status, body) == (200, {"reportInterval": "3000", "gateway": None})
    assert (await call(http, "GET", f"/v2/gateways/{gid}", auth))[1]["data"]["reportInterval"] == "3000"
    body = {"ms": 4000, "gateway": gid}
    assert (await call(http, "POST", "/_emulator/thingplus/report-interval", json=body))[0] == 200
    assert (await call(http, "GET", f"/v2/gateways/{gid}", auth))[1]["data"]["reportInterval"] == "4000"
    assert server.emulator.thingplus.report_interval_ms == 3000


async def test_delete_a_gateway_over_admin(
    http: aiohttp.ClientSession, server: EmulatorServer, auth: dict[str, str]
) -> None:
    gid, did, sid = await register(http, auth)
    other, _, other_sid = await register(http, auth)
    series = f"/v2/gateways/{gid}/sensors/{sid}/series"
    now_ms = int(time.time() * 1000)
    assert (await call(http, "PUT", series, auth, {"value": "21.5", "time": now_ms}))[0] == 200
    status, body = await call(http, "DELETE", f"/_emulator/thingplus/gateways/{gid}")
    assert (status, body) == (200, {"deleted": gid, "devices": 1, "sensors": 1})
    for method, path, payload in [
        ("GET", f"/v2/gateways/{gid}", None),
        ("PUT", f"/v2/gateways/{gid}/status", {"validDuration": 8, "value": "on"}),
        ("PUT", series, {"value": "22.0", "time": now_ms + 1000}),
    ]:
        status, answer = await call(http, method, path, auth, payload)
        assert (status, error_code(answer)) == (404, "NOT_FOUND"), path
    tp = server.emulator.thingplus
    assert did not in tp.devices and sid not in tp.sensors and len(tp.points[sid]) == 1  # points kept
    assert other in tp.gateways and other_sid in tp.sensors  # another gateway is untouched
    assert (await call(http, "DELETE", f"/_emulator/thingplus/gateways/{gid}"))[0] == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/_emulator/faults/aws", {"outage_s": 1}, 404),
        ("POST", "/_emulator/faults/thingplus", {"outage_minutes": 1}, 400),
        ("POST", "/_emulator/faults/thingplus", {"failure_rate": 2}, 400),
        ("POST", "/_emulator/faults/thingplus", {"latency_s": "slow"}, 400),
        ("POST", "/_emulator/faults/thingplus", {"rate_limit": 3}, 400),
        ("POST", "/_emulator/faults/thingplus", {"outage": True, "outage_s": 3}, 400),
        ("POST", "/_emulator/faults/thingplus", [1], 400),
        ("DELETE", "/_emulator/faults/thingplus?kinds=meteor", None, 400),
        ("POST", "/_emulator/tokens/expire", {"clouds": "all"}, 400),
        ("POST", "/_emulator/thingplus/report-interval", {"ms": 0}, 400),
        ("POST", "/_emulator/thingplus/report-interval", {"ms": "5000"}, 400),
        ("POST", "/_emulator/thingplus/report-interval", {"ms": 5000, "gateway": "f" * 32}, 404),
    ],
)
async def test_admin_refusals(
    http: aiohttp.ClientSession, server: EmulatorServer, method: str, path: str, body: object, status: int
) -> None:
    before = server.emulator.faults.snapshot()
    got, answer = await call(http, method, path, json=body)
    assert got == status, answer
    assert "error" in answer
    assert server.emulator.faults.snapshot() == before


async def test_admin_bad_json(http: aiohttp.ClientSession) -> None:
    headers = {"Content-Type": "application/json"}
    status, body = await call(http, "POST", "/_emulator/faults/thingplus", headers, data=b"{oops")
    assert status == 400
    assert "error" in body


async def test_clear_some_kinds_over_admin(http: aiohttp.ClientSession, server: EmulatorServer) -> None:
    body = {"latency_s": 0.01, "failure_rate": 0.5, "rate_limit": {"count": 2}}
    await call(http, "POST", "/_emulator/faults/thingplus", json=body)
    status, answer = await call(http, "DELETE", "/_emulator/faults/thingplus?kinds=latency,rate_limit")
    assert status == 200
    left = answer["thingplus"]
    assert (left["latency_s"], left["rate_limit"], left["failure_rate"]) == (0.0, None, 0.5)
    assert (await call(http, "DELETE", "/_emulator/faults"))[0] == 200
    assert not server.emulator.faults.active("thingplus")


async def test_state_shows_objects_counts_and_faults(
    http: aiohttp.ClientSession, auth: dict[str, str]
) -> None:
    gid, did, sid = await register(http, auth)
    series = f"/v2/gateways/{gid}/sensors/{sid}/series"
    t = int(time.time() * 1000) - 3000  # the emulator runs on the real clock: recent points
    await call(
        http, "PUT", series, auth, [{"value": "21.5", "time": t + 1000}, {"value": "22.0", "time": t + 2000}]
    )
    await call(http, "PUT", series, auth, {"value": "22.5", "time": t + 3000})
    await call(
        http, "PUT", f"/v2/gateways/{gid}/sensors/{sid}/status", auth, {"validDuration": 8, "value": "on"}
    )
    await call(http, "PUT", f"/v2/gateways/{gid}/status", auth, {"validDuration": 8, "value": "on"})
    await call(http, "POST", "/_emulator/faults/thingplus", json={"latency_s": 0.001})

    status, state = await call(http, "GET", "/_emulator/state")
    assert status == 200
    tp = state["thingplus"]
    assert [g["id"] for g in tp["gateways"]] == [gid]
    assert tp["gateways"][0]["latest_status"]["value"] == "on"
    assert [d["id"] for d in tp["devices"]] == [did]
    (sensor,) = tp["sensors"]
    assert (sensor["id"], sensor["points"], sensor["statuses"]) == (sid, 3, 1)
    assert sensor["latest"] == {"time": t + 3000, "value": "22.5"}
    assert tp["requests"]["series"] == 2
    assert tp["report_interval_ms"] == 5000
    assert state["faults"]["thingplus"]["latency_s"] == 0.001
    assert set(state["faults"]) == {"thingplus", "rcms", "loctube"}
    assert "rcms" not in state and "loctube" not in state


async def test_all_clouds_composed() -> None:
    app, emulator = build_app(inventory(ALL_CLOUDS))
    assert app[EMULATOR_KEY] is emulator
    assert set(emulator.clouds) == {"thingplus", "rcms", "loctube"}
    assert emulator.expire_tokens() == ["thingplus", "rcms", "loctube"]
    state = emulator.state()
    assert {"thingplus", "rcms", "loctube", "faults"} <= set(state)
    async with (
        EmulatorServer(inventory(ALL_CLOUDS)) as server,
        aiohttp.ClientSession(base_url=server.url) as http,
    ):
        status, body = await call(http, "POST", "/_emulator/faults/all", json={"outage": True})
        assert status == 200 and set(body) == {"thingplus", "rcms", "loctube"}
        for path in ("/v2/sites", "/api/link/dashboard/deviceTotal", "/api/v1/device/dev0001/_detail"):
            assert (await call(http, "GET", path))[0] == 503, path
        assert (await call(http, "DELETE", "/_emulator/faults/all"))[0] == 200
        # back to each cloud's own refusal of an unsigned, unauthenticated request
        for path in ("/v2/sites", "/api/link/dashboard/deviceTotal", "/api/v1/device/dev0001/_detail"):
            assert (await call(http, "GET", path))[0] != 503, path


async def test_serve_forever_runs_until_cancelled() -> None:
    task = asyncio.create_task(serve_forever(inventory(), "127.0.0.1", 0, 5000))
    await asyncio.sleep(0.1)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
