"""Shared fixtures: a valid inventory text to mutate, a writer for inventory files, a disk to fill."""

from __future__ import annotations

import errno
import os
import subprocess
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
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


@dataclass
class SmallDisk:
    """A small filesystem of its own (a tmpfs), to fill up for real: ``path`` is where it is mounted."""

    path: Path

    @property
    def filler(self) -> Path:
        return self.path / "filler"

    def free_bytes(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave: int = 0) -> None:
        """Take all the free space but ``leave`` bytes (rounded to pages), as a runaway log would."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for chunk in (1024 * 1024, 4096):
                block = bytes(chunk)
                while self.free_bytes() - chunk >= leave:
                    try:
                        os.write(fd, block)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
        finally:
            os.close(fd)

    def unfill(self) -> None:
        """Give the space back."""
        self.filler.unlink()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A 16 MiB tmpfs mounted for the test and unmounted after it.

    Mounting needs root (CAP_SYS_ADMIN), which the test machines and CI have; elsewhere the tests that
    fill a disk are skipped, saying why. A loop-mounted image would need the same privilege.
    """
    where = tmp_path / "small-disk"
    where.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "gatewayd-test", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {mount.stderr.strip()}")
    try:
        yield SmallDisk(where)
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "--lazy", str(where)], capture_output=True, check=False)
