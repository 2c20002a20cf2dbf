"""The emulated Thing+'s MQTT broker, driven by a plain MQTT client (aiomqtt) and raw MQTT bytes.

The checks are the protocol document's: clientId = username = a known gateway, password = its API key;
topics only under the gateway's own ``v/a/g/{gw}``; payloads as the document shows them; points out of
time order ignored and counted; commands as JSON-RPC on ``req``/``res``; the last will ``err``.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

pytest.importorskip("amqtt", reason="the emulator's MQTT broker needs amqtt (Python >= 3.10)")

import aiomqtt

from gatewayd.emulator import EmulatorServer
from gatewayd.emulator.thingplus import ThingPlusEmulator
from gatewayd.emulator.thingplus.mqttgateways import DEMO_MQTT_APIKEY, DEMO_MQTT_GATEWAY_ID
from tests.emulator import RECENT_MS, call, discover_sensor, inventory
from tests.helpers.clocks import FakeClock
from tests.helpers.waiting import until

GW, KEY = DEMO_MQTT_GATEWAY_ID, DEMO_MQTT_APIKEY
STATUS_TOPIC = f"v/a/g/{GW}/mqtt/status"


@pytest.fixture
async def server(clock: FakeClock) -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(inventory(), report_interval_ms=5000, clock=clock, mqtt_port=0) as srv:
        yield srv


def gateway(
    server: EmulatorServer, client_id: str = GW, password: str = KEY, username: str | None = None
) -> aiomqtt.Client:
    """A gateway's MQTT client as the document describes it: its will ``err`` retained on mqtt/status."""
    assert server.mqtt_port is not None
    return aiomqtt.Client(
        "127.0.0.1",
        server.mqtt_port,
        identifier=client_id,
        username=client_id if username is None else username,
        password=password,
        will=aiomqtt.Will(f"v/a/g/{client_id}/mqtt/status", b"err", qos=1, retain=True),
        clean_session=True,
        timeout=5,
    )


def counts(tp: ThingPlusEmulator, gateway_id: str = GW) -> dict[str, int]:
    return dict(tp.mqtt.links[gateway_id].counts) if gateway_id in tp.mqtt.links else {}


@pytest.mark.parametrize(
    ("client_id", "username", "password"),
    [(GW, GW, "wrong-key"), ("ffffffffffff", "ffffffffffff", KEY), (GW, "someone-else", KEY)],
    ids=["wrong-api-key", "unknown-gateway", "username-not-client-id"],
)
async def test_connect_is_refused_without_the_gateway_s_api_key(
    server: EmulatorServer, tp: ThingPlusEmulator, client_id: str, username: str, password: str
) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with gateway(server, client_id, password, username):
            pass
    assert tp.mqtt.counts["connects_refused"] == 1
    assert not tp.mqtt.is_connected(GW)


async def test_topics_of_other_gateways_are_refused_and_counted(
    server: EmulatorServer, tp: ThingPlusEmulator
) -> None:
    async with gateway(server) as client:
        await client.publish("v/a/g/a0b1c2d3e4f5/status", b"on,90", qos=1)
        await client.publish("elsewhere", b"x", qos=1)
        granted = await client.subscribe("v/a/g/+/req", qos=1)
        assert [getattr(code, "value", code) for code in granted] == [0x80]  # SUBACK: failure
        await client.publish(f"v/a/g/{GW}/status", b"on,90", qos=1)
        await until(lambda: tp.gateway_statuses.get(GW), what="the gateway's own status")
    assert counts(tp)["publish_refused"] == 2
    assert counts(tp)["subscribe_refused"] == 1
    assert "a0b1c2d3e4f5" not in tp.gateway_statuses


async def test_statuses_and_points_are_parsed_and_recorded_in_the_series(
    server: EmulatorServer, tp: ThingPlusEmulator, http: aiohttp.ClientSession
) -> None:
    temp = await discover_sensor(http, GW, KEY, "dev1")
    loc = await discover_sensor(http, GW, KEY, "dev2", "location", "openApiLocation")
    t0 = RECENT_MS
    async with gateway(server) as client:
        await client.publish(STATUS_TOPIC, b"on", qos=1, retain=True)
        await client.publish(f"v/a/g/{GW}/status", f"on,90,{temp},on,90,{loc},err:no fix,-1".encode(), qos=1)
        await client.publish(f"v/a/g/{GW}/s/{temp}/status", b"off,30", qos=1)
        await client.publish(f"v/a/g/{GW}/s/{temp}", f"{t0},21.5,{t0 + 1000},21.6".encode(), qos=1)
        await client.publish(f"v/a/g/{GW}/s/{temp}", json.dumps([t0 + 2000, 21.7]).encode(), qos=1)
        where = {"lat": 37.5, "lng": 127.0}
        await client.publish(f"v/a/g/{GW}", json.dumps({temp: [t0 + 3000, "21.8"], loc: [t0, where]}), qos=1)
        packed = zlib.compress(json.dumps({temp: [t0 + 4000, "21.9", t0 + 5000, "22.0"]}).encode())
        await client.publish(f"v/a/g/{GW}", packed, qos=1)
        await client.publish(f"v/a/g/{GW}/s/{temp}", b"not,a,pair", qos=1)
        await until(lambda: len(tp.points.get(temp, [])) == 6, what="six points of the temperature sensor")
        await until(lambda: counts(tp).get("bad_payloads") == 1, what="the bad payload counted")

        assert tp.series(temp) == [(t0 + i * 1000, f"{21.5 + i / 10:.1f}") for i in range(6)]
        assert tp.latest(loc) == {"time": t0, "value": where}
        assert [s.value for s in tp.sensor_statuses[temp]] == ["on", "off"]
        assert tp.sensor_statuses[loc][-1].valid_duration == -1
        assert tp.gateway_statuses[GW][-1].value == "on"
        status, state = await call(http, "GET", "/_emulator/state")
        assert status == 200
        link = state["thingplus"]["mqtt"]["links"][GW]
        assert link["node_status"] == "on" and link["mqtt_status"] == "on"
        assert link["err_reasons"] == {loc: "no fix"}
        shown = {s["id"]: s for s in state["thingplus"]["sensors"]}
        assert shown[temp]["points"] == 6 and shown[temp]["latest"] == {"time": t0 + 5000, "value": "22.0"}


async def test_points_out_of_time_order_are_ignored_and_counted(
    server: EmulatorServer, tp: ThingPlusEmulator, http: aiohttp.ClientSession
) -> None:
    temp = await discover_sensor(http, GW, KEY)
    t0 = RECENT_MS
    async with gateway(server) as client:
        await client.publish(
            f"v/a/g/{GW}/s/{temp}", f"{t0 + 2000},2,{t0 + 1000},1,{t0 + 3000},3".encode(), qos=1
        )
        await client.publish(f"v/a/g/{GW}", json.dumps({temp: [t0, "0", t0 + 4000, "4"]}), qos=1)
        await until(lambda: counts(tp).get("points") == 3, what="three points taken")
    assert [(p.time - t0, p.value) for p in tp.points[temp]] == [(2000, "2"), (3000, "3"), (4000, "4")]
    assert counts(tp)["points_out_of_order"] == 2


async def answer_commands(client: aiomqtt.Client, result: Any) -> None:
    """The gateway's side of JSON-RPC: answer each request on ``res`` with ``result``."""
    async for message in client.messages:
        request = json.loads(message.payload)  # type: ignore[arg-type]
        answer = {"id": request["id"], "result": {"method": request["method"], **result}}
        await client.publish(f"v/a/g/{GW}/res", json.dumps(answer), qos=1)


async def test_rpc_round_trip_through_the_admin_api(
    server: EmulatorServer, tp: ThingPlusEmulator, http: aiohttp.ClientSession
) -> None:
    async with gateway(server) as client:
        await client.subscribe(f"v/a/g/{GW}/req", qos=1)
        responder = asyncio.create_task(answer_commands(client, {"ok": True}))
        try:
            body = {"gateway": GW, "method": "timeSync", "params": {"time": RECENT_MS}, "timeout": 5}
            status, answer = await call(http, "POST", "/_emulator/thingplus/rpc", json=body)
        finally:
            responder.cancel()
    assert status == 200, answer
    assert answer["result"] == {"method": "timeSync", "ok": True}
    (record,) = tp.mqtt.commands.view(GW)
    assert record["outcome"] == "result" and record["params"] == {"time": RECENT_MS}
    assert record["answer"] == answer


async def test_rpc_times_out_or_finds_no_gateway(
    server: EmulatorServer, tp: ThingPlusEmulator, http: aiohttp.ClientSession
) -> None:
    body = {"gateway": GW, "method": "swInfo", "timeout": 0.2}
    status, answer = await call(http, "POST", "/_emulator/thingplus/rpc", json=body)
    assert status == 404, answer  # known, not connected
    status, _ = await call(http, "POST", "/_emulator/thingplus/rpc", json={**body, "gateway": "nope"})
    assert status == 404
    async with gateway(server) as client:
        await client.subscribe(f"v/a/g/{GW}/req", qos=1)  # subscribed, never answers
        status, answer = await call(http, "POST", "/_emulator/thingplus/rpc", json=body)
    assert status == 504 and answer["error"] == "timeout"
    assert [r["outcome"] for r in tp.mqtt.commands.view(GW)] == ["timeout"]


def _string(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def _packet(kind: int, body: bytes) -> bytes:
    assert len(body) < 128  # one length byte
    return bytes([kind, len(body)]) + body


async def test_abrupt_disconnect_leaves_the_will_err_and_a_clean_one_off(
    server: EmulatorServer, tp: ThingPlusEmulator
) -> None:
    # MQTT 3.1.1 CONNECT by hand: user name, password, will retained QoS 1, clean session.
    assert server.mqtt_port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.mqtt_port)
    flags = 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02
    variable = _string("MQTT") + bytes([4, flags]) + (60).to_bytes(2, "big")
    payload = _string(GW) + _string(STATUS_TOPIC) + _string("err") + _string(GW) + _string(KEY)
    writer.write(_packet(0x10, variable + payload))
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"\x20\x02\x00\x00"  # CONNACK accepted
    writer.write(_packet(0x31, _string(STATUS_TOPIC) + b"on"))  # PUBLISH QoS 0, retained
    await writer.drain()
    await until(lambda: tp.mqtt.node_status(GW) == "on", what="node on")
    writer.transport.abort()  # no DISCONNECT: the broker publishes the will
    await until(lambda: tp.mqtt.node_status(GW) == "err", what="node err by the last will")
    assert not tp.mqtt.is_connected(GW)

    async with gateway(server) as client:
        await client.publish(STATUS_TOPIC, b"on", qos=1, retain=True)
        await until(lambda: tp.mqtt.node_status(GW) == "on", what="node on again")
        await client.publish(STATUS_TOPIC, b"off", qos=1, retain=True)
        await until(lambda: tp.mqtt.links[GW].mqtt_status == "off", what="mqtt status off")
    await until(lambda: not tp.mqtt.is_connected(GW), what="the clean disconnect")
    assert tp.mqtt.node_status(GW) == "off"
    assert counts(tp)["connects"] == 2 and counts(tp)["disconnects"] == 2


async def test_gateway_status_expires_to_off(
    server: EmulatorServer, tp: ThingPlusEmulator, clock: FakeClock
) -> None:
    async with gateway(server) as client:
        await client.publish(f"v/a/g/{GW}/status", b"on,90", qos=1)
        await until(lambda: tp.mqtt.node_status(GW) == "on", what="node on")
        clock.advance(91)
        assert tp.mqtt.node_status(GW) == "off"


async def test_an_mqtt_outage_cuts_connections_and_refuses_new_ones_until_cleared(
    server: EmulatorServer, tp: ThingPlusEmulator, http: aiohttp.ClientSession
) -> None:
    async with gateway(server) as client:
        await client.publish(STATUS_TOPIC, b"on", qos=1, retain=True)
        await until(lambda: tp.mqtt.node_status(GW) == "on", what="node on")
        status, outage = await call(http, "POST", "/_emulator/thingplus/mqtt-outage", json={})
        assert status == 200 and outage["active"] and outage["cut_now"] == 1
        await until(lambda: not tp.mqtt.is_connected(GW), what="the connection cut")
        with pytest.raises(aiomqtt.MqttError):
            await client.publish(f"v/a/g/{GW}/status", b"on,90", qos=1)
    assert tp.mqtt.node_status(GW) == "err"  # the cut fired the last will, as a lost network does
    with pytest.raises(aiomqtt.MqttError):
        async with gateway(server):
            pass
    status, state = await call(http, "GET", "/_emulator/state")
    assert state["thingplus"]["mqtt"]["outage"]["refused"] == 1
    status, _ = await call(http, "POST", "/_emulator/thingplus/mqtt-outage", json={"seconds": -1})
    assert status == 400
    status, outage = await call(http, "DELETE", "/_emulator/thingplus/mqtt-outage")
    assert status == 200 and not outage["active"]
    async with gateway(server):
        await until(lambda: tp.mqtt.is_connected(GW), what="connected after the outage")
    assert counts(tp)["connects"] == 2
