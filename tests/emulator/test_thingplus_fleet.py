"""The emulated Thing+ at fleet scale: each gateway's devices and sensors indexed, the state per gateway."""

from __future__ import annotations

import aiohttp

from gatewayd.emulator.thingplus import ThingPlusEmulator
from gatewayd.emulator.thingplus.owners import ByOwner
from tests.emulator import RECENT_MS, call, new_id, register, sensor_body


def test_records_by_owner_keep_each_owners_ids_in_order() -> None:
    store = ByOwner()
    for key, owner in [("s1", "g1"), ("s2", "g2"), ("s3", "g1")]:
        store[key] = {"id": key, "owner": owner}
    assert [r["id"] for r in store.of("g1")] == ["s1", "s3"] and store.count_of("g2") == 1
    store["s1"] = {"id": "s1", "owner": "g2"}  # written again: under its new owner, last
    assert [r["id"] for r in store.of("g2")] == ["s2", "s1"] and [r["id"] for r in store.of("g1")] == ["s3"]
    del store["s3"]
    assert store.of("g1") == [] and store.count_of("g1") == 0 and store.of("unknown") == []
    assert dict(store) == {"s2": {"id": "s2", "owner": "g2"}, "s1": {"id": "s1", "owner": "g2"}}


async def _series(
    http: aiohttp.ClientSession, auth: dict[str, str], gateway: str, sensor: str, n: int
) -> None:
    points = [{"value": f"{20 + i}", "time": RECENT_MS + i} for i in range(n)]
    status, body = await call(http, "PUT", f"/v2/gateways/{gateway}/sensors/{sensor}/series", auth, points)
    assert status == 200, body


async def test_state_summarised_per_gateway(
    http: aiohttp.ClientSession, auth: dict[str, str], tp: ThingPlusEmulator
) -> None:
    (g0, d0, s0), (g1, _, s1), (g2, _, _) = [await register(http, auth) for _ in range(3)]
    second = new_id()
    status, body = await call(
        http, "POST", f"/v2/gateways/{g0}/sensors", auth, sensor_body(second, d0, name="B")
    )
    assert status == 201, body
    await _series(http, auth, g0, s0, 3)
    await _series(http, auth, g0, second, 2)
    await _series(http, auth, g1, s1, 1)
    status, body = await call(
        http, "PUT", f"/v2/gateways/{g1}/status", auth, {"value": "on", "validDuration": 60}
    )
    assert status == 200, body

    status, state = await call(http, "GET", "/_emulator/state?summary=gateways")
    assert status == 200 and "faults" in state
    summary = state["thingplus"]
    assert "sensors" not in summary and "devices" not in summary  # counts, not a row per sensor
    assert summary["totals"] == {"gateways": 3, "devices": 3, "sensors": 4, "points": 6}
    assert summary["requests"]["series"] == 3 and summary["rejections"] == {}
    rows = {g["id"]: g for g in summary["gateways"]}
    counts = {gid: (g["devices"], g["sensors"], g["points"], g["statuses"]) for gid, g in rows.items()}
    assert counts == {g0: (1, 2, 5, 0), g1: (1, 1, 1, 1), g2: (1, 1, 0, 0)}
    assert rows[g0]["last_point_received"] == tp.points[second][-1].received
    assert rows[g2]["last_point_received"] is None and rows[g2]["latest_status"] is None
    assert rows[g1]["latest_status"]["value"] == "on"

    status, whole = await call(http, "GET", "/_emulator/state")  # the whole state, as before
    assert status == 200 and len(whole["thingplus"]["sensors"]) == 4

    status, _ = await call(http, "DELETE", f"/_emulator/thingplus/gateways/{g0}")
    assert status == 200
    summary = (await call(http, "GET", "/_emulator/state?summary=gateways"))[1]["thingplus"]
    assert summary["totals"] == {
        "gateways": 2,
        "devices": 2,
        "sensors": 2,
        "points": 6,
    }  # points stay counted
    assert (await call(http, "GET", f"/v2/gateways/{g0}/sensors", auth))[0] == 404


async def test_an_unknown_summary_is_refused(http: aiohttp.ClientSession) -> None:
    status, body = await call(http, "GET", "/_emulator/state?summary=sensors")
    assert status == 400 and body == {"error": "unknown summary 'sensors': expected 'gateways'"}
