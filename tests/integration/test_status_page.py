"""The daemon's status page on ``http.listen``: ``/`` and its assets, ``/status`` and the live stream.

The daemon runs in-process against the emulator (Thing+, RCMS, loctube) with ``http.listen`` on a free
loopback port; the tests read the page, the JSON and the stream over HTTP as a browser would (the page
itself is driven in a real browser by tests/browser/).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from gatewayd.secret import known_values
from tests.helpers.inventories import LOCTUBE, RCMS, THINGPLUS, THINGPLUS_PASSWORD_MD5
from tests.helpers.waiting import until

from .conftest import (
    emulator_env,
    get,
    polled_sections,
    running,
    until_health,
    until_registered_and_polled,
    with_http,
)

POLLED = polled_sections("signature")
SECTIONS = {"health", "registration", "sensors", "outbox", "polled", "actuators"}
#: The keys /status had before the page: they keep their meaning.
STATUS_KEYS = {
    *("registered", "gateway_id", "report_interval_ms", "transport", "outbox", "storage", "registry"),
    *("sensors", "actuators", "polled"),
}
SENSOR_KEYS = {"device", "name", "id", "type", "status", "reads", "failures", "last_error"}


async def events(response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    """The messages of a server-sent events stream, as they come (comments and retry lines skipped)."""
    async for line in response.content:
        if line.startswith(b"data: "):
            yield json.loads(line[len(b"data: ") :])


def secrets_in(text: str, state_dir: Path | None = None) -> list[str]:
    """The inventory's credentials, every secret value the process knows and (with ``state_dir``) the
    Thing+ access token the daemon holds, those found in ``text``."""
    secrets = {
        *(THINGPLUS["client_secret"], THINGPLUS["password"], THINGPLUS_PASSWORD_MD5),
        *(RCMS["client_secret"], LOCTUBE["secure_key"]),
        *known_values(),
    }
    if state_dir is not None:
        token = json.loads((state_dir / "thingplus-token.json").read_text(encoding="utf-8"))
        secrets.add(token["access_token"])
    return [s for s in secrets if s in text]


async def test_the_page_its_assets_status_and_the_live_stream(tmp_path: Path) -> None:
    async with emulator_env(tmp_path, report_interval_ms=1000, extra=POLLED) as env:
        inventory, base = with_http(env.inventory())
        async with running(inventory) as run:
            daemon = run.daemon
            await until_registered_and_polled(daemon)
            await until_health(base, 200)  # an upload cycle went through

            # The page and its files, with the types a browser needs (no sniffing).
            code, html, headers = await get(f"{base}/")
            assert code == 200 and headers["Content-Type"].startswith("text/html"), headers
            assert '<script src="/_ui/status.js">' in html and 'data-testid="health"' in html
            for name, kind in (
                ("status.js", "text/javascript"),
                ("status.css", "text/css"),
                ("common.js", "text/javascript"),
                ("common.css", "text/css"),
            ):
                code, text, headers = await get(f"{base}/_ui/{name}")
                assert code == 200 and headers["Content-Type"].startswith(kind), (name, headers)
                assert headers["X-Content-Type-Options"] == "nosniff" and not secrets_in(text)
            assert (await get(f"{base}/_ui/nothing.js"))[0] == 404
            assert not secrets_in(html)

            # /status: the keys it always had, and the new ones.
            code, text, _ = await get(f"{base}/status")
            assert code == 200 and not secrets_in(text, env.state_dir)
            status = json.loads(text)
            assert set(status) >= STATUS_KEYS and status["registered"] is True
            assert status["gateway_id"] == daemon.registered.gateway_id  # type: ignore[union-attr]
            assert status["report_interval_ms"] == 1000 and status["transport"] == "https"
            assert status["health"]["ok"] is True and status["health"]["status"] == "ok"
            assert status["outbox"]["dead_letters"] == {"total": 0, "by_reason": {}}
            assert "oldest_age_s" in status["outbox"] and "oldest_time" in status["outbox"]
            assert {s["name"] for s in status["sensors"]} == {"Temperature", "Humidity"}
            for sensor in status["sensors"]:
                assert SENSOR_KEYS | {"last_value", "last_time"} == set(sensor)
                assert (
                    0 < float(sensor["last_value"]) < 100
                    and abs(sensor["last_time"] / 1000 - time.time()) < 10
                )
            assert set(status["polled"]) == {"rcms", "loctube"}

            # The stream: every section first, then what changed (sensor values, within ~2 s).
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{base}/status/events?limit=1") as stream,
            ):
                assert stream.headers["Content-Type"] == "text/event-stream"
                messages = events(stream)
                first = await asyncio.wait_for(messages.__anext__(), 5)
                sections = first["sections"]
                assert set(sections) == SECTIONS and abs(first["t"] - time.time()) < 5
                assert sections["health"] == {"ok": True, "status": "ok", "reason": "uploading"}
                assert sections["registration"]["gateway_id"] == status["gateway_id"]
                page = sections["sensors"]
                assert (page["total"], page["matching"], page["limit"], len(page["rows"])) == (2, 2, 1, 1)
                assert {r["cloud"] for r in sections["polled"]["rows"]} == {"rcms", "loctube"}
                assert all("age_s" not in r for r in sections["polled"]["rows"])
                texts = [json.dumps(first)]
                value = page["rows"][0]["last_value"]
                started = time.monotonic()
                while True:
                    message = await asyncio.wait_for(messages.__anext__(), 3)
                    texts.append(json.dumps(message))
                    rows = message["sections"].get("sensors", {}).get("rows", [])
                    if rows and rows[0]["last_value"] != value:
                        break
                assert time.monotonic() - started < 2.5
                assert not secrets_in("\n".join(texts), env.state_dir)

                # A stop does not wait for an open page: the stream ends with the daemon.
                stopping = time.monotonic()
                await run.stop(within_s=10)
                stopped_in = time.monotonic() - stopping
                rest = [m async for m in messages]
                assert len(rest) <= 2, rest  # a tick or two while the daemon delivered its last points
            assert stopped_in < 5, f"stop took {stopped_in:.1f}s with a page open"


async def test_the_stream_sends_the_page_of_sensors_it_asks_for_and_refuses_a_bad_number(
    tmp_path: Path,
) -> None:
    async with emulator_env(tmp_path, report_interval_ms=1000) as env:
        inventory, base = with_http(env.inventory())
        async with running(inventory), aiohttp.ClientSession() as session:
            url = f"{base}/status/events?offset=1&limit=1&filter=room/"
            async with session.get(url) as stream:
                first = await asyncio.wait_for(events(stream).__anext__(), 5)
            page = first["sections"]["sensors"]
            assert (page["offset"], page["matching"], page["filter"]) == (1, 2, "room/")
            assert [r["name"] for r in page["rows"]] == ["Humidity"]
            async with session.get(f"{base}/status/events?offset=page2") as refused:
                assert refused.status == 400  # said before the stream starts, not a 500 nor page 0
                assert "offset" in (await refused.json())["error"]


async def test_over_mqtt_the_page_shows_the_session_and_not_the_apikey(emulator_mqtt_env: Any) -> None:
    from tests.helpers.mqttenv import MQTT_APIKEY, MQTT_GATEWAY

    inventory, base = with_http(emulator_mqtt_env.inventory())
    async with running(inventory) as run, aiohttp.ClientSession() as session:
        snapshot = run.daemon.snapshot
        await until(
            lambda: snapshot().registration.registered and snapshot().reporting.connection.get("connected"),
            what="registered (discovery) and connected",
        )
        code, text, _ = await get(f"{base}/status")
        async with session.get(f"{base}/status/events") as stream:
            first = await asyncio.wait_for(events(stream).__anext__(), 5)
    assert code == 200
    status = json.loads(text)
    assert (status["transport"], status["mqtt"]["connected"], status["gateway_id"]) == (
        "mqtt",
        True,
        MQTT_GATEWAY,
    )
    registration = first["sections"]["registration"]
    assert registration["mqtt"]["connected"] is True and registration["transport"] == "mqtt"
    assert [a["name"] for a in first["sections"]["actuators"]] == ["Fan"]
    assert MQTT_APIKEY not in text + json.dumps(first) and not secrets_in(text + json.dumps(first))
