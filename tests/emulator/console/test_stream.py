"""The console's live stream, read as a page reads it, from a running emulator: every section first,
then only what changed, a new point within two seconds, and an end as soon as the server stops."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from gatewayd.emulator import EmulatorServer
from gatewayd.emulator.app import build_app
from gatewayd.emulator.console import add_daemon_link, daemon_links
from tests.emulator import ALL_CLOUDS, inventory
from tests.emulator.console import Events, add_gateway, add_points
from tests.helpers.clocks import FakeClock

ALL_SECTIONS = {
    "run",
    "clouds",
    "points",
    "faults",
    "refusals",
    "gateways",
    "sensors",
    "chart",
    "rcms",
    "loctube",
    "mqtt",
    "rpc",
    "links",
}


@pytest.fixture
async def server() -> AsyncIterator[EmulatorServer]:
    # A clock that stands still: RCMS and loctube values (computed from it) change only when a test says.
    async with EmulatorServer(inventory(ALL_CLOUDS), report_interval_ms=5000, clock=FakeClock()) as srv:
        yield srv


@pytest.fixture
async def http(server: EmulatorServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=server.url) as session:
        yield session


async def _open(http: aiohttp.ClientSession, query: str) -> aiohttp.ClientResponse:
    response = await http.get(f"/_emulator/console/events?{query}")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    return response


async def test_first_message_has_every_section_then_only_changes_and_a_new_point_within_2_s(
    server: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    tp = server.emulator.thingplus
    sensors = add_gateway(tp, "gw", name="Greenhouse", sensors=3)
    add_points(tp, sensors[0], "20.5", "21.0")
    response = await _open(http, f"gateway=gw&sensor={sensors[0]}&since=2")
    events = Events(response)
    first = await events.next()
    sections = first["sections"]
    assert set(sections) == ALL_SECTIONS
    assert first["t"] == FakeClock().now
    assert [row["id"] for row in sections["sensors"]["rows"]] == sensors
    assert sections["sensors"]["rows"][0]["value"] == "21.0"
    assert sections["chart"] == {"sensor": sensors[0], "from": 2, "to": 2, "points": []}
    assert [g["id"] for g in sections["gateways"]["rows"]] == ["gw", "b827eb000001"]
    assert sections["links"] == [] and sections["mqtt"] == {"served": False}

    added = time.monotonic()
    add_points(tp, sensors[0], "22.5")
    message = await events.until("chart", lambda chart: chart["points"], timeout=2.5)
    assert time.monotonic() - added < 2.5
    assert message["sections"]["chart"]["points"] == [[tp.points[sensors[0]][-1].time, "22.5"]]
    assert message["sections"]["sensors"]["rows"][0]["value"] == "22.5"
    assert message["sections"]["points"]["total"] == 3
    # nothing else moved: those sections are not sent again
    assert not {"run", "clouds", "faults", "links", "gateways", "rcms", "loctube", "rpc"} & set(
        message["sections"]
    )

    add_daemon_link(server.app, "HTTPS gateway", "http://127.0.0.1:9108/")
    message = await events.until("links", lambda links: links)
    assert message["sections"]["links"] == [{"label": "HTTPS gateway", "url": "http://127.0.0.1:9108/"}]
    response.close()


async def test_a_control_shows_in_the_next_message(
    server: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    events = Events(await _open(http, ""))
    first = await events.next()
    assert first["sections"]["clouds"]["thingplus"]["health"] == "ok"
    async with http.post("/_emulator/faults/thingplus", json={"outage_s": 30}) as answer:
        assert answer.status == 200
    async with http.get("/v2/sites") as answer:
        assert answer.status == 503
    message = await events.until(
        "clouds", lambda clouds: clouds["thingplus"]["health"] == "down", timeout=2.5
    )
    clouds = message["sections"]["clouds"]["thingplus"]
    assert (clouds["requests"], clouds["refused"], clouds["by_status"]) == (1, 1, {"503": 1})
    assert message["sections"]["faults"]["thingplus"]["set"]["outage"]["until_cleared"] is False
    assert message["sections"]["refusals"][0]["status"] == 503


async def test_each_stream_has_its_own_view_and_cursor(
    server: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    tp = server.emulator.thingplus
    add_gateway(tp, "empty")
    sensors = add_gateway(tp, "gw", sensors=150)
    plain = Events(await _open(http, ""))  # no gateway chosen: the first one with sensors
    paged = Events(await _open(http, f"gateway=gw&page=1&sensor={sensors[0]}"))
    filtered = Events(await _open(http, f"gateway=gw&filter=sensor%201&sensor={sensors[0]}"))
    default = (await plain.next())["sections"]["sensors"]
    assert (default["gateway"], default["page"], len(default["rows"])) == ("gw", 0, 100)
    view = (await paged.next())["sections"]["sensors"]
    assert (view["page"], view["pages"], view["rows"][0]["id"], len(view["rows"])) == (1, 2, sensors[100], 50)
    view = (await filtered.next())["sections"]["sensors"]
    # "sensor 1" is in Sensor 1, 10 to 19 and 100 to 149
    assert (view["matched"], view["total"]) == (61, 150)
    add_points(tp, sensors[0], "1", "2")
    for events in (paged, filtered):  # each stream's cursor: both get both points
        message = await events.until("chart", lambda chart: chart["points"], timeout=2.5)
        assert [p[1] for p in message["sections"]["chart"]["points"]] == ["1", "2"]


@pytest.mark.parametrize("query", ["page=x", "gpage=-1", "sensor=s&since=1.5", "page=%EF%BC%91", "page=1e3"])
async def test_a_bad_number_in_the_query_is_a_400_naming_it(http: aiohttp.ClientSession, query: str) -> None:
    response = await http.get(f"/_emulator/console/events?{query}")
    assert response.status == 400
    name = query.split("=")[0] if "since" not in query else "since"
    assert name in (await response.json())["error"]


@pytest.mark.parametrize("query", ["page=999", "gpage=999&gateway=gone", "sensor=nothing&since=999999"])
async def test_a_page_or_a_cursor_past_the_end_is_clamped_not_refused(
    server: EmulatorServer, http: aiohttp.ClientSession, query: str
) -> None:
    add_gateway(server.emulator.thingplus, "gw", sensors=3)
    message = await Events(await _open(http, query)).next()
    sensors = message["sections"]["sensors"]
    assert sensors["page"] == max(0, sensors["pages"] - 1)


async def test_the_stream_ends_promptly_when_the_server_stops(
    server: EmulatorServer, http: aiohttp.ClientSession
) -> None:
    events = Events(await _open(http, ""))
    await events.next()
    started = time.monotonic()
    await server.stop()
    with pytest.raises((EOFError, aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError)):
        await events.next(timeout=2.0)
    assert time.monotonic() - started < 2.0


def test_daemon_links_are_checked() -> None:
    app, _ = build_app(inventory())
    add_daemon_link(app, " MQTT gateway ", "https://127.0.0.1:9109/")
    assert [(link.label, link.url) for link in daemon_links(app)] == [
        ("MQTT gateway", "https://127.0.0.1:9109/")
    ]
    with pytest.raises(ValueError, match="label"):
        add_daemon_link(app, " ", "http://127.0.0.1:9108/")
    with pytest.raises(ValueError, match="http"):
        add_daemon_link(app, "x", "javascript:alert(1)")


async def test_each_run_of_the_emulator_tells_itself_apart() -> None:
    """A page reconnecting to a restarted emulator must learn that its chart position means nothing
    there: each emulator app carries its own run in the stream."""
    runs = set()
    for _ in range(2):
        async with (
            EmulatorServer(inventory(ALL_CLOUDS)) as server,
            aiohttp.ClientSession(base_url=server.url) as http,
        ):
            first = await Events(await _open(http, "")).next()
            runs.add(first["sections"]["run"])
    assert len(runs) == 2
