"""Fixtures for the loctube emulator tests: an emulator on a test server, with a settable clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gatewayd.emulator.loctube import LoctubeEmulator
from gatewayd.inventory.config import LoctubeConfig
from tests.emulator.loctube import CLIENT_ID, DEVICES, KEY, NOW, Client, Env
from tests.helpers.clocks import FakeClock

Start = Callable[..., Awaitable[Env]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    clients: list[Client] = []

    async def _start(
        *, sign: str = "md5", key: str = KEY, client_id: str = CLIENT_ID, now: float = NOW
    ) -> Env:
        clock = FakeClock(now)
        form_only = [False]
        config = LoctubeConfig(
            endpoint="http://127.0.0.1:1", client_id=client_id, secure_key=key, sign=sign, devices=DEVICES
        )
        emulator = LoctubeEmulator(config, clock=clock, oauth2_form_only=lambda: form_only[0])
        app = web.Application()
        app.add_routes(emulator.routes())
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return Env(client, emulator, clock, key, sign, client_id, form_only)

    yield _start
    for client in clients:
        await client.close()


@pytest.fixture
async def env(start: Start) -> Env:
    return await start()
