"""Shared fixtures: a valid inventory text to mutate, a writer for inventory files, a disk to fill."""

from __future__ import annotations

import errno
import itertools
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import aiohttp
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from tests.helpers.inventories import inventory_yaml

_structlog_configure = structlog.configure


def _configure_without_logger_cache(*args: Any, **kwargs: Any) -> None:
    """gatewayd's logging setup caches each logger on first use (a CPU saving in the daemon). In this
    process, where CLI tests set logging up and later tests capture logs, a cached logger keeps the
    processors of the test that first used it and ``capture_logs`` would miss it: the result of a test
    would depend on which tests ran before. Subprocess tests still run the real, cached setup."""
    kwargs["cache_logger_on_first_use"] = False
    _structlog_configure(*args, **kwargs)


structlog.configure = _configure_without_logger_cache


#: A valid inventory to mutate: tests assert line:column positions in it, so its layout is fixed.
VALID = inventory_yaml(
    devices=textwrap.indent(
        textwrap.dedent(
            """\
            - name: Room 1
              sensors:
                - name: Temperature
                  type: temperature
                  interval: 10
                  simulate: {pattern: sine, min: 18, max: 26, period: 1h}
            """
        ),
        "  ",
    )
)

T = TypeVar("T")

if sys.version_info >= (3, 10):
    from itertools import pairwise
else:  # Python 3.9 (Debian 11): the recipe itertools.pairwise replaced

    def pairwise(iterable: Iterable[T]) -> Iterator[tuple[T, T]]:
        first, second = itertools.tee(iterable)
        next(second, None)
        return zip(first, second)


@contextmanager
def logs_of(*modules: ModuleType) -> Iterator[list[dict[str, Any]]]:
    """structlog's ``capture_logs`` for the module-level ``log`` of ``modules``, reliably.

    gatewayd's logging setup (run in-process by some CLI tests) caches each logger on its first use,
    after which ``capture_logs`` alone no longer sees it; here each module gets a fresh logger while
    capturing, and its own back after.
    """
    saved = [(module, module.log) for module in modules]
    try:
        with capture_logs() as logs:
            for module in modules:
                module.log = structlog.get_logger(module.__name__)
            yield logs
    finally:
        for module, log in saved:
            module.log = log


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


#: A self-signed test CA certificate (no key kept): a ``ca_file`` that loads.
TEST_CA_PEM = """\
-----BEGIN CERTIFICATE-----
MIIBjDCCATOgAwIBAgIUZorQtykH0LfAQNv5mcq9xuWOS8kwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQZ2F0ZXdheWQgdGVzdCBDQTAgFw0yNjEyMDMwNzQyNTNaGA8y
MTI2MTEwOTA3NDI1M1owGzEZMBcGA1UEAwwQZ2F0ZXdheWQgdGVzdCBDQTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABPr6NWyYUtfSDBrVefDlWTuqho/OyGU2o046
n+4kvwV8wJ3dgN8EWg0ektiUkQafCsGNQLAhf+kNwZK9S2IrcP6jUzBRMB0GA1Ud
DgQWBBScrYpRi6Xy08hqmHRqhAzCmNEy7DAfBgNVHSMEGDAWgBScrYpRi6Xy08hq
mHRqhAzCmNEy7DAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIAhh
pgc839/4kZrN4F+FqsDpN0seOG1khIUJDM8pEEXWAiBbroQ7JyLSlytELPR++3KD
CWpOxv39rG1BMc6K++a6Bw==
-----END CERTIFICATE-----
"""


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
