"""The daemon against clouds that misbehave on the wire: a long Retry-After, forged loctube answers, a
gateway deleted on the cloud side, and a slow inventory reload.

Real HTTP on 127.0.0.1 against the emulator (or a loopback proxy in front of it), real SQLite, real
scheduler, as in ``test_daemon.py``; conditions are awaited with :func:`until`, never with fixed sleeps.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gatewayd.clouds.retry import MAX_DEFERRAL_S
from gatewayd.emulator.faults import RateLimit
from gatewayd.inventory.config import Inventory, load_inventory
from gatewayd.runtime import gatewaywatch, inventorycontrol, pollers
from gatewayd.runtime.service import Hooks
from tests.conftest import logs_of, loopback_server
from tests.helpers.waiting import until

from .conftest import (
    SENSORS,
    THREE_SENSORS,
    Env,
    assert_delivered_exactly_once,
    delivered,
    emulator_env,
    every_sensor_has_points_after,
    now_ms,
    points_of,
    polled_sections,
    running,
)


async def test_a_long_retry_after_defers_thingplus_alone_and_uploads_resume_after_it(tmp_path: Path) -> None:
    async with (
        emulator_env(tmp_path, extra=polled_sections("signature")) as env,
        running(env.inventory()) as run,
    ):
        daemon = run.daemon
        assert daemon.reporting is not None and daemon.uploader is not None and daemon.sampler is not None
        await until(lambda: daemon.registered is not None and delivered(env.tp) > 0, what="delivery")
        deferral = daemon.reporting.client._transport.deferral
        faults = env.server.emulator.faults
        stats, polls = daemon.uploader.stats, daemon.poll_stats.polls

        # Ten minutes: nothing here depends on the box being fast enough to check it all in time.
        faults.set("thingplus", rate_limit=RateLimit(count=1, retry_after=int(MAX_DEFERRAL_S)))
        await until(lambda: deferral.until is not None, what="the deferral to start")
        failed_rounds = stats.status_errors
        await until(lambda: stats.status_errors > failed_rounds, what="a heartbeat round failing fast")
        # From here on (requests sent before the 429 have had their answers), nothing reaches Thing+.
        requests, failed_rounds = sum(env.tp.requests.values()), stats.status_errors
        sampled, loctube_ok = daemon.sampler.stats.sampled, polls.get(("loctube", "ok"), 0)
        await until(
            lambda: (
                stats.status_errors >= failed_rounds + 2
                and daemon.sampler is not None
                and daemon.sampler.stats.sampled >= sampled + 10
                and polls.get(("loctube", "ok"), 0) >= loctube_ok + 2
            ),
            what="heartbeat rounds on schedule, sampling and loctube polls while Thing+ is deferred",
        )
        assert deferral.until is not None and deferral.until > deferral.mono(), "the deferral ended too soon"
        assert sum(env.tp.requests.values()) == requests, "a request was sent while deferred"
        assert faults.get("thingplus").injected["rate_limited"] == 1
        assert stats.errors.get("deferred", 0) >= 2

        # Time passes for the deferral alone: its monotonic clock jumps past the deadline.
        real_mono = deferral.mono
        deferral.mono = lambda: real_mono() + MAX_DEFERRAL_S
        deferred_ms = now_ms()  # points sampled from now on can only be delivered after the deferral
        await until(
            lambda: every_sensor_has_points_after(env.tp, daemon, deferred_ms),
            timeout=10,
            what="uploads to resume after the deferral",
        )
        assert deferral.until is None
        await run.stop()
    assert_delivered_exactly_once(daemon, env.tp)


# ------------------------------------------------------------------------------------------ signatures

#: A bridged sensor on the loctube tracker's state (a string sensor: "online" / "offline").
TRACKER_STATE = """\
- name: Tracker
  sensors:
    - name: State
      type: string
      interval: 100ms
      loctube: {device: test001, field: state.value}
"""


class ForgingProxy:
    """Loopback man in the middle in front of the emulator's loctube: passes answers through untouched,
    or (``forge``) strips their X-Sign/X-Timestamp and rewrites the tracker's state to FORGED."""

    def __init__(self, upstream: str, session: aiohttp.ClientSession) -> None:
        self.upstream = upstream
        self.session = session
        self.forge = False
        self.forged = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.startswith("X-") or k == "Content-Type"}
        async with self.session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=await request.read()
        ) as answer:
            body = await answer.read()
            signature = {k: answer.headers[k] for k in ("X-Sign", "X-Timestamp") if k in answer.headers}
            if not self.forge or answer.status != 200:
                return web.Response(status=answer.status, body=body, headers=signature)
        payload = json.loads(body)
        payload["result"]["state"] = {"text": "forged", "value": "FORGED"}
        self.forged += 1
        return web.json_response(payload)  # no X-Sign, no X-Timestamp


async def test_a_forged_unsigned_loctube_answer_never_reaches_thingplus(tmp_path: Path) -> None:
    polled = polled_sections("signature")
    async with (
        emulator_env(tmp_path, extra=polled) as env,
        aiohttp.ClientSession() as session,
    ):
        proxy = ForgingProxy(env.server.url, session)
        async with loopback_server(proxy.handle) as proxy_url:
            rcms, loctube = polled.split("loctube:")
            extra = rcms + "loctube:" + loctube.replace("@endpoint@", proxy_url)
            inventory = env.inventory(devices=SENSORS + TRACKER_STATE, extra=extra)
            async with running(inventory) as run:
                daemon = run.daemon
                assert daemon.sampler is not None
                (tracker,) = [s for s in daemon.sampler.sensors if s.key == "Tracker/State"]
                polls = daemon.poll_stats.polls
                await until(lambda: bool(points_of(env.tp, tracker.sensor_id)), what="genuine tracker points")
                trusted = daemon.latest.get("loctube", "test001")
                assert trusted is not None

                with logs_of(pollers) as logs:
                    proxy.forge = True
                    await until(
                        lambda: polls.get(("loctube", "tampered"), 0) >= 3 and tracker.status == "err",
                        what="forged answers refused and the bridged sensor in error",
                    )
                    forged_from_ms = now_ms()
                    await until(
                        lambda: any(
                            r.value == "err" and r.received > forged_from_ms
                            for r in env.tp.sensor_statuses.get(tracker.sensor_id, [])
                        ),
                        what="Thing+ told the tracker sensor is in error",
                    )
                assert proxy.forged >= 3
                # never replaced by a forgery (a genuine answer on its way when forging began may land later)
                latest = daemon.latest.get("loctube", "test001")
                assert (
                    latest is not None and latest[0] >= trusted[0] and "FORGED" not in json.dumps(latest[1])
                )
                assert "was refused" in (tracker.last_error or "")
                refusals = [e for e in logs if e["event"] == "loctube.answer_refused"]
                assert refusals and all(e["log_level"] == "error" for e in refusals)

                proxy.forge = False  # a genuine answer heals the sensor
                await until(lambda: tracker.status == "on", what="the sensor back on genuine answers")
                await run.stop()
    values = {p.value for p in points_of(env.tp, tracker.sensor_id)}
    assert values and "FORGED" not in values and values <= {"online", "offline"}
    assert_delivered_exactly_once(daemon, env.tp)


# ------------------------------------------------------------------------------------------ reload


class HeldParse:
    """``inventorycontrol.load_inventory`` held in its worker thread until the test calls :meth:`release`."""

    def __init__(self) -> None:
        self.started, self._release = threading.Event(), threading.Event()
        self.released: list[bool] = []
        self._load = inventorycontrol.load_inventory

    def __call__(self, *args: Any, **kwargs: Any) -> Inventory:
        self.started.set()
        self.released.append(self._release.wait(timeout=10))
        return self._load(*args, **kwargs)

    def release(self) -> None:
        self._release.set()


@pytest.fixture
def held_parse(monkeypatch: pytest.MonkeyPatch) -> HeldParse:
    held = HeldParse()
    monkeypatch.setattr(inventorycontrol, "load_inventory", held)
    return held


async def test_a_slow_reload_parse_leaves_the_event_loop_free(env: Env, held_parse: HeldParse) -> None:
    """The parse is held until the test, running on the daemon's event loop, has seen sampling go on:
    were the parse on the loop, the test could not run, and the parse would time out unreleased."""
    path = env.write_inventory()
    async with running(load_inventory(path), inventory_path=path) as run:
        daemon = run.daemon
        assert daemon.sampler is not None
        await until(lambda: daemon.registered is not None, what="registration")
        env.write_inventory(devices=THREE_SENSORS)
        daemon.reload()
        await until(held_parse.started.is_set, what="the reload's parse to start")
        sampled, delivered_then = daemon.sampler.stats.sampled, delivered(env.tp)
        await until(
            lambda: (
                daemon.sampler is not None
                and daemon.sampler.stats.sampled >= sampled + 10
                and delivered(env.tp) > delivered_then
            ),
            what="sampling and uploads while the parse is held",
        )
        assert not any(s.key == "Cellar/Level" for s in daemon.sampler.sensors)  # not applied yet
        held_parse.release()
        await until(
            lambda: (
                daemon.sampler is not None and any(s.key == "Cellar/Level" for s in daemon.sampler.sensors)
            ),
            what="the reload applied once parsed",
        )
        (added,) = [s.sensor_id for s in daemon.sampler.sensors if s.key == "Cellar/Level"]
        await until(lambda: bool(points_of(env.tp, added)), what="the added sensor registered and delivering")
        await run.stop()
    assert held_parse.released == [True]
    assert_delivered_exactly_once(daemon, env.tp)


async def test_a_reload_parsed_while_the_first_registration_ends_is_checked_against_the_model(
    env: Env, held_parse: HeldParse
) -> None:
    """Unregistered when the parse starts (no model to check types against), registered when it ends:
    the new inventory is checked then, and a type the model lacks is refused like any invalid reload
    (the old inventory keeps running), not applied unchecked and then fatal (exit 2)."""
    path = env.write_inventory()
    faults = env.server.emulator.faults
    faults.set("thingplus", outage_s=math.inf)
    async with running(load_inventory(path), inventory_path=path) as run:
        daemon = run.daemon
        assert daemon.sampler is not None
        env.write_inventory(devices=THREE_SENSORS.replace("type: percent", "type: warp_drive"))
        with logs_of(inventorycontrol) as logs:
            daemon.reload()
            await until(held_parse.started.is_set, what="the reload's parse to start")
            faults.clear("thingplus")
            await until(lambda: daemon.registered is not None, what="registration while the parse is held")
            held_parse.release()
            await until(
                lambda: daemon.fatal is not None or any(e["event"] == "reload.refused" for e in logs),
                what="the reload handled",
            )
        assert daemon.fatal is None
        assert not any(s.key == "Cellar/Level" for s in daemon.sampler.sensors)
        (refused,) = [e for e in logs if e["event"] == "reload.refused"]
        assert "warp_drive" in " ".join(refused["problems"])
        await until(lambda: len(env.tp.sensors) == 2 and delivered(env.tp) > 0, what="old sensors flowing")
        await run.stop()
    assert held_parse.released == [True]
    assert_delivered_exactly_once(daemon, env.tp)


# ------------------------------------------------------------------------------------------ gateway lost


async def test_a_gateway_deleted_on_the_cloud_side_is_registered_again_with_the_same_ids(env: Env) -> None:
    async with running(env.inventory()) as run, aiohttp.ClientSession() as http:
        daemon = run.daemon
        assert daemon.outbox is not None and daemon.sampler is not None
        await until(lambda: daemon.registered is not None and delivered(env.tp) > 0, what="delivery")
        gateway_id = daemon.registry.gateway_id()
        sensor_ids = {s.sensor_id for s in daemon.sampler.sensors}
        device_ids = set(env.tp.devices)

        with logs_of(gatewaywatch) as logs:
            async with http.delete(f"{env.server.url}/_emulator/thingplus/gateways/{gateway_id}") as resp:
                assert resp.status == 200
            deleted_ms = now_ms()
            await until(
                lambda: env.tp.requests["register_gateway"] == 2 and daemon.registered is not None,
                what="the gateway registered again",
            )
            await until(
                lambda: every_sensor_has_points_after(env.tp, daemon, deleted_ms + 500),
                what="delivery after the new registration",
            )
        assert list(env.tp.gateways) == [gateway_id]  # the same ids, not new ones
        assert set(env.tp.devices) == device_ids and set(env.tp.sensors) == sensor_ids
        assert env.tp.requests["register_sensor"] == 2 * len(sensor_ids)
        assert (
            env.tp.rejections["series:NOT_FOUND"] >= 1 or env.tp.rejections["gateway_status:NOT_FOUND"] >= 1
        )
        lost = [e for e in logs if e["event"] == "registration.gateway_lost"]
        assert [(e["log_level"], e["gateway_id"]) for e in lost] == [("error", gateway_id)]  # once
        assert daemon.outbox.stats.dead_lettered == 0
        await run.stop()
    assert_delivered_exactly_once(daemon, env.tp)


async def test_a_reload_while_the_gateway_is_registered_again_is_checked_against_the_model(
    env: Env,
) -> None:
    """Between the loss and the new registration the daemon is not registered, but it knows the model:
    a reload then is checked as any other (refused, the old sensors keep running), not applied unchecked
    and made fatal (exit 2) when the new registration meets the type the model lacks."""
    path = env.write_inventory()
    faults = env.server.emulator.faults

    def on_status(text: str) -> None:  # told synchronously, before the new registration starts
        if text.startswith("Thing+ lost the gateway"):
            faults.set("thingplus", outage_s=math.inf)

    async with (
        running(load_inventory(path), inventory_path=path, hooks=Hooks(on_status=on_status)) as run,
        aiohttp.ClientSession() as http,
    ):
        daemon = run.daemon
        assert daemon.sampler is not None
        await until(lambda: daemon.registered is not None and delivered(env.tp) > 0, what="delivery")
        async with http.delete(
            f"{env.server.url}/_emulator/thingplus/gateways/{daemon.registry.gateway_id()}"
        ):
            pass
        await until(lambda: daemon.registered is None, what="the loss found")
        env.write_inventory(devices=THREE_SENSORS.replace("type: percent", "type: warp_drive"))
        with logs_of(inventorycontrol) as logs:
            daemon.reload()
            await until(lambda: any(e["event"] == "reload.refused" for e in logs), what="refused")
        assert not any(s.key == "Cellar/Level" for s in daemon.sampler.sensors)
        faults.clear("thingplus")
        await until(lambda: daemon.registered is not None, what="registered again")
        await until(lambda: len(env.tp.sensors) == 2, what="the old sensors registered again")
        assert daemon.fatal is None
        await run.stop()
    assert_delivered_exactly_once(daemon, env.tp)
