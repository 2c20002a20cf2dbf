"""Fixtures of the emulated Thing+ tests: one emulator on a settable clock, a session, a token.

A test module may define its own ``server`` (another clock, other faults): pytest takes the nearer one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from gatewayd.emulator import EmulatorServer
from gatewayd.emulator.thingplus import ThingPlusEmulator
from tests.emulator import get_token, inventory
from tests.helpers.clocks import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def server(clock: FakeClock) -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(inventory(), report_interval_ms=5000, clock=clock) as srv:
        yield srv


@pytest.fixture
def tp(server: EmulatorServer) -> ThingPlusEmulator:
    return server.emulator.thingplus


@pytest.fixture
async def http(server: EmulatorServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=server.url) as session:
        yield session


@pytest.fixture
async def auth(http: aiohttp.ClientSession) -> dict[str, str]:
    return await get_token(http)
