"""File, command and http sources against real peers: files in tmp_path, child processes, a local server."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gatewayd.errors import ConfigError, SourceError
from gatewayd.inventory.config import parse_inventory
from gatewayd.inventory.sources import CommandSource, FileSource, HttpSource
from gatewayd.sources import http as http_module
from gatewayd.sources.command import MAX_OUTPUT_BYTES, CommandReader
from gatewayd.sources.file import FileReader
from gatewayd.sources.http import HttpReader
from gatewayd.sources.pick import number_or_text
from tests.conftest import VALID

PY = sys.executable


async def eventually(condition: Callable[[], bool], within: float = 2.0) -> bool:
    """Whether ``condition`` holds within ``within`` seconds, polled every 10 ms."""
    for _ in range(int(within / 0.01)):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


# ---------------------------------------------------------------------------------------------- values


def test_number_or_text() -> None:
    assert number_or_text(" 42\n", 1, 0) == 42
    assert number_or_text("48250", 0.001, 0) == pytest.approx(48.25)
    assert number_or_text(True, 1, 0) == 1
    assert number_or_text("open", 1, 0) == "open"  # a text sensor
    with pytest.raises(SourceError, match="scale/offset need a number"):
        number_or_text("open", 2, 0)
    for bad, reason in ((None, "null"), ({"a": 1}, "an object"), ([1], "a list"), ("  ", "empty")):
        with pytest.raises(SourceError, match=reason):
            number_or_text(bad, 1, 0)
    with pytest.raises(SourceError, match="finite"):
        number_or_text("nan", 1, 0)


# ---------------------------------------------------------------------------------------------- file


async def read_file(path: Path, **options: Any) -> Any:
    return await FileReader(FileSource(path=str(path), **options)).read()


async def test_file_plain_number(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("42\n")
    (tmp_path / "b").write_text("  -21.5 \n")
    assert await read_file(tmp_path / "a") == 42
    assert await read_file(tmp_path / "b") == -21.5


async def test_file_sysfs_millidegrees_scaled(tmp_path: Path) -> None:
    (tmp_path / "temp").write_text("48250\n")
    assert await read_file(tmp_path / "temp", scale=0.001) == pytest.approx(48.25)
    assert await read_file(tmp_path / "temp", scale=0.001, offset=-40) == pytest.approx(8.25)


async def test_file_loadavg_fields(tmp_path: Path) -> None:
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("0.52 0.58 0.59 1/389 12345\n")
    assert await read_file(loadavg, field=0) == 0.52
    assert await read_file(loadavg, field=2) == 0.59
    with pytest.raises(SourceError, match=r"loadavg: field 9 wanted, the text has 5"):
        await read_file(loadavg, field=9)


async def test_file_regex_group(tmp_path: Path) -> None:
    path = tmp_path / "status"
    path.write_text("name: probe\ntemp = 23.4 C\n")
    assert await read_file(path, regex=r"temp = ([-\d.]+)") == 23.4
    assert await read_file(path, regex=r"\d+\.\d") == 23.4  # no group: the whole match
    with pytest.raises(SourceError) as info:
        await read_file(path, regex=r"humidity = (\d+)")
    assert str(path) in str(info.value) and "does not match" in str(info.value)


async def test_file_missing(tmp_path: Path) -> None:
    path = tmp_path / "nope"
    with pytest.raises(SourceError) as info:
        await read_file(path)
    assert str(info.value) == f"{path}: no such file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
async def test_file_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("1\n")
    path.chmod(0)
    try:
        with pytest.raises(SourceError) as info:
            await read_file(path)
    finally:
        path.chmod(0o600)
    assert str(info.value) == f"{path}: permission denied"


async def test_file_directory(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is a directory"):
        await read_file(tmp_path)


async def test_file_non_numeric(tmp_path: Path) -> None:
    path = tmp_path / "mode"
    path.write_text("enabled\n")
    with pytest.raises(SourceError) as info:
        await read_file(path, scale=0.001)
    assert str(info.value).startswith(f"{path}: not a number: 'enabled'")
    # Without scale/offset a word is a text sensor's value.
    assert await read_file(path) == "enabled"


async def test_file_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_text("")
    with pytest.raises(SourceError) as info:
        await read_file(path)
    assert str(info.value) == f"{path}: the file is empty"
    path.write_text("\n  \n")
    with pytest.raises(SourceError, match="empty"):
        await read_file(path)


def open_fifo_writer(fifo: Path) -> int | None:
    """A write end of ``fifo`` without blocking: None while no reader has it open."""
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return None


async def test_file_blocking_read_keeps_the_loop_running(tmp_path: Path) -> None:
    """A FIFO with no writer blocks open(): the loop keeps ticking, and the stuck sensor holds one worker."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = FileReader(FileSource(path=str(fifo)))
    plain = tmp_path / "plain"
    plain.write_text("7\n")

    def unblock() -> None:
        fd = open_fifo_writer(fifo)  # a reader waiting in open() gets an empty file
        if fd is not None:
            os.close(fd)

    # Were the read done on the loop, this watchdog would free it and the test would fail, not hang.
    watchdog = threading.Timer(3.0, unblock)
    watchdog.start()
    try:
        task = asyncio.create_task(reader.read())
        ticks = 0
        started = time.monotonic()
        while time.monotonic() - started < 0.2:
            await asyncio.sleep(0.01)
            ticks += 1
        assert not task.done()
        assert ticks >= 5  # the loop was not blocked
        # Other file sensors still read while this one is stuck.
        assert await read_file(plain) == 7
        # The sampler gives up on it (cancels); the next read fails at once rather than taking a second worker.
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(SourceError, match="previous read is still blocked"):
            await reader.read()
        # A writer frees the worker; the sensor reads again.
        unblock()
        pending = reader._pending
        assert pending is not None
        assert await eventually(pending.done)

        async def feed() -> None:
            writer: list[int] = []

            def opened() -> bool:
                fd = open_fifo_writer(fifo)  # succeeds once the reader is waiting in open()
                if fd is not None:
                    writer.append(fd)
                return bool(writer)

            assert await eventually(opened)
            os.write(writer[0], b"31.5\n")
            os.close(writer[0])

        feeder = asyncio.create_task(feed())
        assert await asyncio.wait_for(reader.read(), 2) == 31.5
        await feeder
    finally:
        watchdog.cancel()
        unblock()  # never leave a worker stuck on the FIFO


async def test_file_read_runs_in_a_worker_thread(tmp_path: Path) -> None:
    seen: list[str] = []
    real_open = open

    def spying_open(*args: Any, **kwargs: Any) -> Any:
        seen.append(threading.current_thread().name)
        return real_open(*args, **kwargs)

    path = tmp_path / "v"
    path.write_text("1")
    import builtins

    builtins.open = spying_open  # type: ignore[assignment]
    try:
        assert await read_file(path) == 1
    finally:
        builtins.open = real_open
    assert seen and seen[0].startswith("gatewayd-file-")
    assert seen[0] != threading.current_thread().name


# ---------------------------------------------------------------------------------------------- command


async def run_command(code: str, **options: Any) -> Any:
    return await CommandReader(CommandSource(argv=[PY, "-c", code], **options)).read()


def process_gone(pid: int) -> bool:
    """Gone, or a zombie waiting for a parent that is not us (a container's PID 1 may not reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


async def test_command_plain_number() -> None:
    assert await run_command("print(21.5)") == 21.5
    assert await run_command("print(100)", scale=0.5, offset=-10) == 40


async def test_command_regex_and_json_path() -> None:
    assert await run_command("print('cpu temp: 55.0 C')", regex=r"temp: (\S+)") == 55.0
    doc = json.dumps({"sensors": [{"temp": 12}, {"temp": 13.5}]})
    assert await run_command(f"print({doc!r})", json_path="sensors.1.temp") == 13.5
    with pytest.raises(SourceError, match=r"no field 'sensors.5'"):
        await run_command(f"print({doc!r})", json_path="sensors.5.temp")
    with pytest.raises(SourceError, match="output is not JSON"):
        await run_command("print('hello')", json_path="a")
    with pytest.raises(SourceError, match="does not match"):
        await run_command("print('x')", regex=r"(\d+)")


async def test_command_text_and_non_numeric() -> None:
    assert await run_command("print('RUNNING')") == "RUNNING"
    with pytest.raises(SourceError, match="not a number: 'RUNNING'"):
        await run_command("print('RUNNING')", scale=2)
    with pytest.raises(SourceError, match="printed nothing"):
        await run_command("pass")


async def test_command_nonzero_exit_names_code_and_stderr() -> None:
    code = "import sys; sys.stderr.write('\\nboom: sensor offline\\nsecond line\\n'); sys.exit(3)"
    with pytest.raises(SourceError) as info:
        await run_command(code)
    name = os.path.basename(PY)
    assert str(info.value) == f"command {name}: exited with code 3: boom: sensor offline"


async def test_command_killed_by_signal() -> None:
    with pytest.raises(SourceError, match="killed by signal SIGTERM"):
        await run_command("import os, signal; os.kill(os.getpid(), signal.SIGTERM)")


async def test_command_timeout_kills_the_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    code = (
        "import os, subprocess, sys, time\n"
        f"child = subprocess.Popen([{PY!r}, '-c', 'import time; time.sleep(30)'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "time.sleep(30)\n"
    )
    started = time.monotonic()
    with pytest.raises(SourceError) as info:
        await run_command(code, timeout=1.5)
    elapsed = time.monotonic() - started
    assert "timed out after 1.5s (killed)" in str(info.value)
    assert elapsed < 3.5
    assert pids.exists(), "the command did not start within its timeout (machine overloaded?)"
    parent, grandchild = map(int, pids.read_text().split())
    with pytest.raises(ProcessLookupError):
        os.kill(parent, 0)  # killed and reaped: no zombie left
    assert await eventually(lambda: process_gone(grandchild))


async def test_command_cancelled_read_kills_and_reaps(tmp_path: Path) -> None:
    """The sampler's own timeout (a cancellation) also ends the command."""
    pid_file = tmp_path / "pid"
    code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(30)"
    reader = CommandReader(CommandSource(argv=[PY, "-c", code], timeout=30))
    task = asyncio.create_task(reader.read())
    assert await eventually(lambda: pid_file.exists() and pid_file.read_text() != "", within=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


async def test_command_missing_executable(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-tool")
    with pytest.raises(SourceError) as info:
        await CommandReader(CommandSource(argv=[missing, "--json"])).read()
    assert str(info.value) == f"command no-such-tool: {missing!r} not found"
    not_executable = tmp_path / "script"
    not_executable.write_text("#!/bin/sh\necho 1\n")
    if os.geteuid() != 0:  # root may execute anything with an x bit; this one has none
        with pytest.raises(SourceError, match="is not executable"):
            await CommandReader(CommandSource(argv=[str(not_executable)])).read()


async def test_command_huge_output_is_truncated_and_drained() -> None:
    # 2 MB after the value: the command is not blocked on a full pipe, and only the first 64 KiB is kept.
    code = "import sys; sys.stdout.write('21.5\\n' + 'x' * 2_000_000)"
    assert await run_command(code, regex=r"^([\d.]+)", timeout=5) == 21.5
    big_json = "import json; print(json.dumps({'pad': 'x' * 200_000, 'v': 1}))"
    with pytest.raises(SourceError, match=f"output cut at {MAX_OUTPUT_BYTES} bytes"):
        await run_command(big_json, json_path="v", timeout=5)


# ---------------------------------------------------------------------------------------------- http


class Peer:
    def __init__(self) -> None:
        self.seen_headers: list[dict[str, str]] = []
        self.release = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_get("/doc", self.doc)
        self.app.router.add_get("/fail", self.fail)
        self.app.router.add_get("/text", self.text)
        self.app.router.add_get("/slow", self.slow)
        self.app.router.add_get("/big", self.big)
        self.server = TestServer(self.app, host="127.0.0.1")

    async def doc(self, request: web.Request) -> web.Response:
        self.seen_headers.append(dict(request.headers))
        return web.json_response({"data": {"temp": 23.5, "state": "open", "raw": 2350}, "items": [1, 2]})

    async def fail(self, request: web.Request) -> web.Response:
        return web.json_response({"error": "down"}, status=500)

    async def text(self, request: web.Request) -> web.Response:
        return web.Response(text="<html>not json</html>", content_type="text/html")

    async def slow(self, request: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(self.release.wait(), 5)
        except asyncio.TimeoutError:
            pass
        return web.json_response({"v": 1})

    async def big(self, request: web.Request) -> web.Response:
        return web.json_response({"pad": "x" * 5000})

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    peer = Peer()
    await peer.server.start_server()
    yield peer
    peer.release.set()
    await peer.server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def http_reader(session: aiohttp.ClientSession, url: str, **options: Any) -> HttpReader:
    return HttpReader(HttpSource(url=url, **options), lambda: session)


async def test_http_dotted_path(peer: Peer, session: aiohttp.ClientSession) -> None:
    assert await http_reader(session, peer.url("/doc"), path="data.temp").read() == 23.5
    assert await http_reader(session, peer.url("/doc"), path="items.1").read() == 2
    assert await http_reader(session, peer.url("/doc"), path="data.state").read() == "open"
    scaled = http_reader(session, peer.url("/doc"), path="data.raw", scale=0.01)
    assert await scaled.read() == pytest.approx(23.5)


async def test_http_missing_path_and_object(peer: Peer, session: aiohttp.ClientSession) -> None:
    with pytest.raises(SourceError) as info:
        await http_reader(session, peer.url("/doc"), path="data.humidity").read()
    assert str(info.value) == f"GET {peer.url('/doc')}: no field 'data.humidity' in the document"
    with pytest.raises(SourceError, match="an object"):
        await http_reader(session, peer.url("/doc"), path="data").read()


async def test_http_500(peer: Peer, session: aiohttp.ClientSession) -> None:
    with pytest.raises(SourceError) as info:
        await http_reader(session, peer.url("/fail"), path="v").read()
    assert str(info.value) == f"GET {peer.url('/fail')}: HTTP 500 Internal Server Error"


async def test_http_non_json(peer: Peer, session: aiohttp.ClientSession) -> None:
    with pytest.raises(SourceError, match="the response is not JSON"):
        await http_reader(session, peer.url("/text")).read()


async def test_http_too_big(
    peer: Peer, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_module, "MAX_BODY_BYTES", 1000)
    with pytest.raises(SourceError, match="larger than 1000 bytes"):
        await http_reader(session, peer.url("/big"), path="pad").read()


async def test_http_headers_sent(peer: Peer, session: aiohttp.ClientSession) -> None:
    headers = {"Authorization": "Bearer s3cret", "X-Probe": "gatewayd"}
    assert await http_reader(session, peer.url("/doc"), path="data.temp", headers=headers).read() == 23.5
    (seen,) = peer.seen_headers
    assert seen["Authorization"] == "Bearer s3cret"
    assert seen["X-Probe"] == "gatewayd"


async def test_http_timeout(peer: Peer, session: aiohttp.ClientSession) -> None:
    started = time.monotonic()
    with pytest.raises(SourceError) as info:
        await http_reader(session, peer.url("/slow"), path="v", timeout=0.3).read()
    assert str(info.value) == f"GET {peer.url('/slow')}: timed out after 0.3s"
    assert time.monotonic() - started < 2


async def test_http_connection_refused(session: aiohttp.ClientSession) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SourceError) as info:
        await http_reader(session, f"http://127.0.0.1:{port}/v", path="v", timeout=2).read()
    assert str(info.value).startswith(f"GET http://127.0.0.1:{port}/v: ClientConnectorError")


async def test_http_messages_hide_credentials_and_query(peer: Peer, session: aiohttp.ClientSession) -> None:
    url = peer.url("/fail").replace("http://", "http://user:pa55word@") + "?token=t0ken"
    with pytest.raises(SourceError) as info:
        await http_reader(session, url, path="v").read()
    assert "pa55word" not in str(info.value) and "t0ken" not in str(info.value)
    assert str(info.value).startswith(f"GET {peer.url('/fail')}: HTTP 500")


async def test_http_session_is_taken_at_read_time(peer: Peer) -> None:
    holder: list[aiohttp.ClientSession] = []
    reader = HttpReader(HttpSource(url=peer.url("/doc"), path="data.temp"), lambda: holder[0])
    async with aiohttp.ClientSession() as fresh:
        holder.append(fresh)
        assert await reader.read() == 23.5
    with pytest.raises(SourceError, match="the HTTP session is closed"):
        await reader.read()


# ---------------------------------------------------------------------------------------------- inventory

SIMULATE = "simulate: {pattern: sine, min: 18, max: 26, period: 1h}"


def problems_with(source: str) -> list[str]:
    assert SIMULATE in VALID
    with pytest.raises(ConfigError) as info:
        parse_inventory(VALID.replace(SIMULATE, source), "inv.yaml", env={})
    return [str(p) for p in info.value.problems]


def test_inventory_file_regex_must_compile() -> None:
    (problem,) = problems_with('file: {path: /sys/x, regex: "("}')
    assert problem.startswith(
        "inv.yaml:15:30: devices[0].sensors[0].file.regex: is not a valid regular expression:"
    )


def test_inventory_file_regex_and_field_exclusive() -> None:
    assert problems_with('file: {path: /proc/loadavg, regex: "(\\\\d+)", field: 1}') == [
        "inv.yaml:15:9: devices[0].sensors[0].file: give 'regex' or 'field', not both"
    ]


def test_inventory_command_needs_argv() -> None:
    (problem,) = problems_with("command: {argv: []}")
    assert problem.startswith("inv.yaml:15:19: devices[0].sensors[0].command.argv: ")
    assert "at least 1 item" in problem


def test_inventory_command_regex_and_json_path_exclusive() -> None:
    assert problems_with("command: {argv: [sensors, -j], regex: a, json_path: b}") == [
        "inv.yaml:15:9: devices[0].sensors[0].command: give 'regex' or 'json_path', not both"
    ]


def test_inventory_http_url_must_be_http() -> None:
    assert problems_with('http: {url: "ftp://example.com/x"}') == [
        "inv.yaml:15:16: devices[0].sensors[0].http.url: must be an http:// or https:// URL with a host "
        "(got 'ftp://example.com/x')"
    ]
