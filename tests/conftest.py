"""Shared fixtures: a valid inventory text to mutate, and a writer for inventory files."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

VALID = textwrap.dedent(
    """\
    gateway: {name: "Edge Box 1", model: "52"}
    state_dir: ./state
    thingplus:
      endpoint: https://api.sandbox.thingplus.net
      client_id: testClientId
      client_secret: testClientPwd12
      username: serviceadmin
      password: hunter2-password
    devices:
      - name: Room 1
        sensors:
          - name: Temperature
            type: temperature
            interval: 10
            simulate: {pattern: sine, min: 18, max: 26, period: 1h}
    """
)


@pytest.fixture
def write_inventory(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str, name: str = "inventory.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@asynccontextmanager
async def loopback_server(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """A fake cloud: every request to ``handler``, served on 127.0.0.1; yields its base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session for tests that drive a client against a fake cloud."""
    async with aiohttp.ClientSession() as s:
        yield s


class Clocks:
    """A wall clock and a monotonic clock for tests, moved by hand (seconds).

    ``advance`` moves both, as time passing does; ``jump`` moves the wall clock alone, as NTP or a
    manual date change does.
    """

    def __init__(self, wall: float, mono: float = 1000.0) -> None:
        self.wall_s = wall
        self.mono_s = mono

    def wall(self) -> float:
        return self.wall_s

    def mono(self) -> float:
        return self.mono_s

    def advance(self, seconds: float) -> None:
        self.wall_s += seconds
        self.mono_s += seconds

    def jump(self, seconds: float) -> None:
        self.wall_s += seconds
