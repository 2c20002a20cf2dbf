"""The pages' foundation: static files served from the package, and the change-only event stream."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gatewayd.webui import assets, events
from tests.helpers.ports import free_port


@pytest.fixture
async def client() -> TestClient:
    app = web.Application()
    app.add_routes(assets.page_routes("vendor/uplot/uPlot.min.css"))
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_the_page_and_its_assets_come_from_the_package_with_their_types(client: TestClient) -> None:
    page = await client.get("/")
    assert page.status == 200 and page.content_type == "text/css"
    script = await client.get("/_ui/vendor/uplot/uPlot.iife.min.js")
    assert script.status == 200 and script.content_type == "text/javascript"
    assert script.headers["Cache-Control"] == "no-cache"
    assert b"uPlot" in await script.read()


@pytest.mark.parametrize(
    "path", ["/_ui/nothing.js", "/_ui/../assets.py", "/_ui/%2e%2e/assets.py", "/_ui/vendor/uplot"]
)
async def test_only_the_packaged_files_are_served(client: TestClient, path: str) -> None:
    assert (await client.get(path)).status == 404


async def test_a_page_runs_only_its_own_scripts_and_no_other_site_frames_it() -> None:
    app = web.Application()
    app.add_routes(assets.page_routes("console.html"))
    async with TestClient(TestServer(app)) as client:
        page = await client.get("/")
        policy = dict(
            part.strip().split(" ", 1) for part in page.headers["Content-Security-Policy"].split(";")
        )
        script = await client.get("/_ui/common.js")
    assert policy["script-src"] == "'self'" and policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert "Content-Security-Policy" not in script.headers  # a page's header, not every file's


def test_an_unknown_page_is_refused_when_the_routes_are_made() -> None:
    with pytest.raises(LookupError, match=r"no page 'nope\.html'"):
        assets.page_routes("nope.html")


def test_the_vendored_chart_library_carries_its_licence() -> None:
    files = assets.static_files()
    assert b"MIT License" in files["vendor/uplot/LICENSE"]
    assert files["vendor/uplot/VERSION"].strip()


@pytest.mark.parametrize(
    ("sent", "sections", "changed"),
    [
        ({}, {"a": 1, "b": [1, 2]}, {"a": 1, "b": [1, 2]}),  # first message: everything
        ({"a": "1", "b": "[1,2]"}, {"a": 1, "b": [1, 2]}, {}),  # nothing new
        ({"a": "1", "b": "[1,2]"}, {"a": 2, "b": [1, 2]}, {"a": 2}),  # only what changed
        ({"a": '{"x":1,"y":2}'}, {"a": {"y": 2, "x": 1}}, {}),  # key order is no change
    ],
)
def test_a_stream_sends_only_the_sections_that_changed(
    sent: dict[str, str], sections: dict[str, object], changed: dict[str, object]
) -> None:
    assert events.changed_sections(sections, sent) == changed
    assert events.changed_sections(sections, sent) == {}


async def test_a_stream_ends_when_its_server_shuts_down() -> None:
    ticks = iter(range(1_000_000))
    app = web.Application()
    events.install(app)
    app.router.add_get("/events", events.stream_handler(lambda request: {"n": next(ticks)}, period_s=0.05))
    client = TestClient(TestServer(app))
    await client.start_server()
    response = await client.get("/events")
    assert response.headers["Content-Type"] == "text/event-stream"
    messages = []
    while len(messages) < 2:
        line = (await response.content.readline()).decode()
        if line.startswith("data: "):
            messages.append(json.loads(line[6:]))
    assert [m["sections"]["n"] for m in messages] == [0, 1]
    assert all(isinstance(m["t"], float) for m in messages)
    await asyncio.wait_for(client.close(), timeout=5)  # would wait for the open stream if it did not end


async def test_a_stream_ends_at_the_next_tick_once_its_page_has_gone() -> None:
    # A stream with nothing new to send writes only a keep-alive every 15 s: without a look at the
    # connection each tick, a page that moved on (a new view, a new stream) left it building for 15 s.
    ended = asyncio.Event()
    stream = events.stream_handler(lambda request: {"same": 1}, period_s=0.05)

    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            return await stream(request)
        finally:
            ended.set()

    app = web.Application()
    events.install(app)
    app.router.add_get("/events", handler)
    # A plain AppRunner, as the daemon and the emulator run: it does not cancel a handler whose client
    # left (aiohttp's TestServer does, which would hide the lingering).
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as session:
            response = await session.get(f"http://127.0.0.1:{port}/events")
            while not (await response.content.readline()).startswith(b"data: "):
                pass
            response.close()
            await asyncio.wait_for(ended.wait(), timeout=2)
    finally:
        await runner.cleanup()
